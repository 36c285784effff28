//! A TCP proxy that adds a fixed one-way delay to every byte in both
//! directions, so a store on loopback looks like one far away (R2 from
//! another continent: `delay_proxy 127.0.0.1:3900 50` gives 100 ms RTT).
//! The kernel's netem would do it per packet, but it is not always there
//! (no sch_netem module, no CAP_NET_ADMIN) and it would slow every loopback
//! user on a shared machine; this delays only the connections made to it.
//!
//! Bandwidth is not limited and TCP's slow start over the long path is not
//! modelled: only the round trips each request costs.
//!
//!   cargo run --release --example delay_proxy -- UPSTREAM ONE_WAY_MS
//!
//! Prints `listening 127.0.0.1:PORT`, then serves until killed.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(upstream), Some(ms)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: delay_proxy UPSTREAM_ADDR ONE_WAY_DELAY_MS");
        std::process::exit(2);
    };
    let delay = Duration::from_millis(ms.parse().expect("delay in milliseconds"));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    println!("listening {}", listener.local_addr().expect("address"));
    for client in listener.incoming().flatten() {
        let upstream = upstream.clone();
        thread::spawn(move || {
            if let Ok(server) = TcpStream::connect(&upstream) {
                relay(client, server, delay);
            }
        });
    }
}

/// Pumps both directions, each delayed, until both sides are done.
fn relay(client: TcpStream, server: TcpStream, delay: Duration) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let pumps = [
        (client.try_clone(), server.try_clone()),
        (server.try_clone(), client.try_clone()),
    ];
    let mut handles = Vec::new();
    for (from, to) in pumps {
        let (Ok(from), Ok(to)) = (from, to) else {
            return;
        };
        handles.push(thread::spawn(move || pump(from, to, delay)));
    }
    for h in handles {
        let _ = h.join();
    }
}

/// Reads `from` as fast as it comes and writes each piece to `to` once it
/// is `delay` old; an end of stream is passed on (half-close) the same way.
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = thread::spawn(move || {
        for (due, bytes) in rx {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if bytes.is_empty() {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            if to.write_all(&bytes).is_err() {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    });
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = from.read(&mut buf).unwrap_or(0);
        if tx
            .send((Instant::now() + delay, buf[..n].to_vec()))
            .is_err()
            || n == 0
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.join();
}
