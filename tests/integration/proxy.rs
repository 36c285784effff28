//! A fault-injecting HTTP proxy in front of Garage, for the store fault suite.
//!
//! Every client connection carries exactly one request: the proxy adds
//! `Connection: close` to what it forwards, so a response ends when Garage
//! closes and nothing needs parsing beyond the request head. Each request is
//! logged, then handled as the current [`Fault`] rule says: passed through,
//! answered with an S3 error, reset half-way through its body, stalled, or
//! forwarded with one body byte flipped.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the proxy does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward unchanged.
    Pass,
    /// Answer `500 InternalError` without asking Garage.
    Status500,
    /// Answer `503 SlowDown` without asking Garage.
    SlowDown,
    /// Forward the head and half the body, then reset both connections.
    Reset,
    /// Read the request and never answer (until the proxy is dropped).
    Stall,
    /// Stop reading the body half-way and never answer.
    StallBody,
    /// Forward with one byte of the body flipped.
    Corrupt,
    /// Forward, but at most `bytes_per_sec` of body (keeps uploads in flight).
    Slow { bytes_per_sec: u64 },
    /// Forward; drop every `x-amz-checksum-*` header from the response (a
    /// store that reports no checksum of its own).
    NoChecksum,
    /// Forward; flip one byte of the response body and drop its checksum
    /// headers (a store that reports none and serves damaged bytes).
    CorruptResponse,
    /// Forward the response head and its first body bytes, then hold the
    /// connection open without sending more (a download stopped midway).
    StallResponse,
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub fault: Fault,
}

impl Seen {
    /// True for requests that write an object or a part of one.
    pub fn is_write(&self) -> bool {
        self.method == "PUT" || self.method == "POST"
    }
}

type Rule = Box<dyn Fn(&Seen) -> Fault + Send + Sync>;

struct Shared {
    upstream: String,
    rule: Mutex<Rule>,
    log: Mutex<Vec<Seen>>,
    closing: AtomicBool,
    in_flight_writes: AtomicUsize,
}

/// A running proxy; stops accepting when dropped.
pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            rule: Mutex::new(Box::new(|_: &Seen| Fault::Pass)),
            log: Mutex::new(Vec::new()),
            closing: AtomicBool::new(false),
            in_flight_writes: AtomicUsize::new(0),
        });
        let accept = shared.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if accept.closing.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let shared = accept.clone();
                thread::spawn(move || {
                    let _ = handle(&shared, conn);
                });
            }
        });
        Proxy { port, shared }
    }

    /// In front of the test Garage.
    pub fn garage(g: &crate::common::Garage) -> Proxy {
        let upstream = g
            .endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        Proxy::start(&upstream)
    }

    /// Applies `fault` to every request from now on.
    pub fn set(&self, fault: Fault) {
        self.set_rule(move |_| fault);
    }

    /// Decides per request from now on.
    pub fn set_rule(&self, rule: impl Fn(&Seen) -> Fault + Send + Sync + 'static) {
        *self.shared.rule.lock().unwrap() = Box::new(rule);
    }

    /// Every request seen so far.
    pub fn log(&self) -> Vec<Seen> {
        self.shared.log.lock().unwrap().clone()
    }

    /// PUT/POST requests whose body is being forwarded right now.
    pub fn writes_in_flight(&self) -> usize {
        self.shared.in_flight_writes.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads up to and including the blank line ending the request head.
fn read_head(conn: &mut TcpStream) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok(Some((buf, rest)));
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 1 << 20 {
            return Err(io::Error::other("request head too long"));
        }
    }
}

fn header<'a>(lines: &'a [&'a str], name: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn handle(shared: &Shared, mut client: TcpStream) -> io::Result<()> {
    let Some((head, mut early)) = read_head(&mut client)? else {
        return Ok(());
    };
    if shared.closing.load(Ordering::SeqCst) {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    let mut first = lines.first().copied().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
    let body_len: u64 = header(&lines, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let expect_continue = header(&lines, "expect").is_some_and(|v| v.contains("100"));
    let mut seen = Seen {
        method,
        target,
        fault: Fault::Pass,
    };
    seen.fault = (shared.rule.lock().unwrap())(&seen);
    shared.log.lock().unwrap().push(seen.clone());
    let fault = seen.fault;

    match fault {
        Fault::Status500 | Fault::SlowDown => {
            if !expect_continue {
                drain(&mut client, body_len.saturating_sub(early.len() as u64))?;
            }
            let (status, code) = if fault == Fault::SlowDown {
                ("503 Slow Down", "SlowDown")
            } else {
                ("500 Internal Server Error", "InternalError")
            };
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
            );
            write!(
                client,
                "HTTP/1.1 {status}\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )?;
            client.flush()?;
            let _ = client.shutdown(Shutdown::Write);
            return Ok(());
        }
        Fault::Stall => {
            if !expect_continue {
                drain(&mut client, body_len.saturating_sub(early.len() as u64))?;
            }
            stall(shared);
            return Ok(());
        }
        _ => {}
    }

    // Forward: the head with `Connection: close`, then the body as the fault says.
    let mut upstream = TcpStream::connect(&shared.upstream)?;
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 && line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("connection: close\r\n\r\n");
    upstream.write_all(out.as_bytes())?;

    // Responses (including `100 Continue`) flow back while the body goes up.
    let mut from_up = upstream.try_clone()?;
    let mut to_client = client.try_clone()?;
    let aborted = Arc::new(AtomicBool::new(false));
    let back = thread::spawn({
        let aborted = aborted.clone();
        move || {
            let _ = pump_response(&mut from_up, &mut to_client, fault);
            if !aborted.load(Ordering::SeqCst) {
                let _ = to_client.shutdown(Shutdown::Write);
            }
        }
    });

    let writing = seen.is_write() && body_len > 0;
    if writing {
        shared.in_flight_writes.fetch_add(1, Ordering::SeqCst);
    }
    let sent = send_body(
        shared,
        &mut client,
        &mut upstream,
        &mut early,
        body_len,
        fault,
    );
    if writing {
        shared.in_flight_writes.fetch_sub(1, Ordering::SeqCst);
    }
    match sent {
        Ok(true) => {
            let _ = back.join();
        }
        // Reset or stalled: tear both sides down with RST, not a clean close.
        // (SHUT_RD sends nothing; it only ends the response pump. The sockets
        // reset when the last descriptor closes, at the end of this function.)
        Ok(false) | Err(_) => {
            aborted.store(true, Ordering::SeqCst);
            reset(&client);
            reset(&upstream);
            let _ = upstream.shutdown(Shutdown::Read);
            let _ = back.join();
        }
    }
    Ok(())
}

/// Sends `len` body bytes from client to upstream, applying `fault`.
/// `Ok(false)` means the connection must be reset now.
fn send_body(
    shared: &Shared,
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    early: &mut Vec<u8>,
    len: u64,
    fault: Fault,
) -> io::Result<bool> {
    let half = len / 2;
    let mut sent = 0u64;
    let started = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    while sent < len {
        let mut chunk = if !early.is_empty() {
            std::mem::take(early)
        } else {
            let want = buf.len().min((len - sent) as usize);
            let n = client.read(&mut buf[..want])?;
            if n == 0 {
                return Ok(false);
            }
            buf[..n].to_vec()
        };
        chunk.truncate((len - sent) as usize);
        let end = sent + chunk.len() as u64;
        match fault {
            Fault::Reset | Fault::StallBody if end >= half => {
                let keep = (half - sent) as usize;
                upstream.write_all(&chunk[..keep])?;
                if fault == Fault::StallBody {
                    stall(shared);
                }
                return Ok(false);
            }
            Fault::Corrupt if sent <= half && half < end => {
                chunk[(half - sent) as usize] ^= 0x5a;
            }
            Fault::Slow { bytes_per_sec } => {
                let due = Duration::from_secs_f64(end as f64 / bytes_per_sec.max(1) as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    thread::sleep(wait);
                }
            }
            _ => {}
        }
        upstream.write_all(&chunk)?;
        sent = end;
    }
    Ok(true)
}

/// Copies the response back; for the response faults, its head without
/// checksum headers (and, for `CorruptResponse`, one body byte flipped).
/// Meant for HEAD and GET: an interim `100 Continue` is passed on as is.
fn pump_response(from: &mut TcpStream, to: &mut TcpStream, fault: Fault) -> io::Result<()> {
    if fault == Fault::StallResponse {
        let mut chunk = [0u8; 8192];
        let n = from.read(&mut chunk)?;
        to.write_all(&chunk[..n])?;
        to.flush()?;
        // Bounded: the test kills what waits long before.
        thread::sleep(Duration::from_secs(120));
        return Ok(());
    }
    if !matches!(fault, Fault::NoChecksum | Fault::CorruptResponse) {
        return io::copy(from, to).map(|_| ());
    }
    let Some((head, mut body)) = read_head(from)? else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(&head).into_owned();
    if text.starts_with("HTTP/1.1 100") {
        to.write_all(&head)?;
        to.write_all(&body)?;
        return io::copy(from, to).map(|_| ());
    }
    let kept: String = text
        .split_inclusive("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("x-amz-checksum-"))
        .collect();
    to.write_all(kept.as_bytes())?;
    if fault == Fault::CorruptResponse {
        if body.is_empty() {
            let mut chunk = [0u8; 8192];
            let n = from.read(&mut chunk)?;
            body.extend_from_slice(&chunk[..n]);
        }
        if let Some(b) = body.first_mut() {
            *b ^= 0x5a;
        }
    }
    to.write_all(&body)?;
    io::copy(from, to).map(|_| ())
}

fn drain(conn: &mut TcpStream, mut len: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    while len > 0 {
        let want = buf.len().min(len as usize);
        let n = conn.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        len -= n as u64;
    }
    Ok(())
}

/// Holds the connection open without answering until the proxy is dropped
/// (bounded, so a forgotten proxy never keeps a thread forever).
fn stall(shared: &Shared) {
    let until = Instant::now() + Duration::from_secs(600);
    while !shared.closing.load(Ordering::SeqCst) && Instant::now() < until {
        thread::sleep(Duration::from_millis(100));
    }
}

/// Makes the next close send RST instead of FIN.
fn reset(conn: &TcpStream) {
    use std::os::unix::io::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a valid socket with a correctly sized struct.
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
