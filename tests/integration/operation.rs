//! Unattended operation: SIGHUP reload, upload bandwidth limit, upload
//! windows and disk pressure, through the real binary.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Local, Timelike};
use recvault::recording::State;

use crate::common::*;

const HOUR: Duration = Duration::from_secs(3600);

/// Waits (bounded) for the daemon `child` to bring the ledger to `done`.
fn wait_for(site: &Site, child: &mut Child, what: &str, mut done: impl FnMut(&Site) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(site) {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let mut log = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut log);
            panic!(
                "gave up waiting for {what}: {:?}\ndaemon log:\n{log}",
                site.states()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn signal(child: &Child, sig: i32) {
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

fn stop(child: Child) -> String {
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "daemon exit");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn sighup_applies_a_valid_config_and_keeps_the_old_one_on_error() {
    let mut site = Site::new("reload");
    site.configure(Target::Local, "settle = \"1s\"\nupload_after = \"1d\"");
    let first = put_recording(&site.spool, b"first.wav", &wav(1.0, 1), 2 * HOUR);
    let mut child = site
        .command(&["run"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&site, &mut child, "first.wav settled", |s| {
        s.states().get(&State::Settled) == Some(&1)
    });
    assert!(first.exists(), "upload_after = 1d keeps it local");

    site.configure(Target::Local, "settle = \"1s\"\nupload_after = \"0s\"");
    signal(&child, libc::SIGHUP);
    wait_for(&site, &mut child, "archive after reload", |s| {
        s.states().get(&State::LocalDeleted) == Some(&1)
    });

    let good = fs::read_to_string(&site.config).unwrap();
    fs::write(
        &site.config,
        good.replace("upload_after = \"0s\"", "upload_after = \"whenever\""),
    )
    .unwrap();
    signal(&child, libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    put_recording(&site.spool, b"second.wav", &wav(1.0, 2), 2 * HOUR);
    wait_for(&site, &mut child, "archive with the kept config", |s| {
        s.states().get(&State::LocalDeleted) == Some(&2)
    });
    let log = stop(child);
    assert!(log.contains("config reloaded"), "{log}");
    assert!(
        log.contains("reload refused") && log.contains("spool.upload_after"),
        "{log}"
    );
}

/// A TCP proxy to Garage that timestamps every byte the client sends.
struct CountingProxy {
    port: u16,
    sent: Arc<Mutex<Vec<(Instant, usize)>>>,
}

impl CountingProxy {
    fn start(upstream: String) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = sent.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let server = TcpStream::connect(&upstream).unwrap();
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_read, mut c_write) = (server, client);
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        log.lock().unwrap().push((Instant::now(), n));
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        CountingProxy { port, sent }
    }
}

#[test]
fn uploads_keep_to_max_upload_rate() {
    let g = garage();
    let proxy = CountingProxy::start(g.endpoint.trim_start_matches("http://").to_string());
    let mut site = Site::new("rate");
    site.configure(Target::Garage(&g), "settle = \"1s\"\nupload_after = \"0s\"");
    let rate: u64 = 512 * 1024;
    let cfg = fs::read_to_string(&site.config).unwrap();
    let cfg = cfg
        .replace(&g.endpoint, &format!("http://127.0.0.1:{}", proxy.port))
        .replace("[store]\n", "[store]\nmax_upload_rate = \"512KiB\"\n")
        .replace("[compress]", "")
        + "\n[compress]\ncodec = \"none\"\n";
    fs::write(&site.config, cfg).unwrap();
    let mut rng = fastrand::Rng::with_seed(3);
    for i in 0..6 {
        let bytes: Vec<u8> = (0..512 * 1024).map(|_| rng.u8(..)).collect();
        put_recording(&site.spool, format!("r{i}.wav").as_bytes(), &bytes, HOUR);
    }
    expect_code(&site.recvault(&["run", "--once"]), 0);
    let sent = proxy.sent.lock().unwrap().clone();
    let total: usize = sent.iter().map(|(_, n)| n).sum();
    assert!(
        total >= 6 * 512 * 1024,
        "all bodies went through the proxy: {total}"
    );
    let span = sent.last().unwrap().0 - sent.first().unwrap().0;
    let measured = total as f64 / span.as_secs_f64();
    let ratio = measured / rate as f64;
    eprintln!("sent {total} bytes in {span:?}: {measured:.0} B/s, {ratio:.2} of the limit");
    assert!(
        (0.8..=1.2).contains(&ratio),
        "rate {measured:.0} B/s is not within 20% of {rate}"
    );
}

fn window(from_hours: i64, to_hours: i64) -> String {
    let now = Local::now();
    let at = |h: i64| {
        let t = now + chrono::Duration::hours(h);
        format!("{:02}:{:02}", t.hour(), t.minute())
    };
    format!("{}-{}", at(from_hours), at(to_hours))
}

#[test]
fn nothing_is_uploaded_outside_the_upload_windows() {
    let mut site = Site::new("windows");
    let path = put_recording(&site.spool, b"w.wav", &wav(1.0, 1), HOUR);
    site.configure(Target::Local, "settle = \"1s\"\nupload_after = \"0s\"");
    let with_window = |w: String| {
        let cfg = fs::read_to_string(&site.config).unwrap();
        let cfg: String = cfg
            .lines()
            .filter(|l| !l.starts_with("upload_windows"))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(
            &site.config,
            cfg.replace(
                "[store]\n",
                &format!("[store]\nupload_windows = [\"{w}\"]\n"),
            ),
        )
        .unwrap();
    };
    with_window(window(2, 3));
    let out = site.recvault(&["run", "--once"]);
    expect_code(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 waiting for an upload window"));
    assert!(path.exists());
    assert_eq!(
        site.states().get(&State::Settled),
        Some(&1),
        "settled and waiting"
    );
    with_window(window(-1, 1));
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert!(!path.exists());
}

#[test]
fn low_disk_space_makes_recordings_due_before_upload_after() {
    let mut site = Site::new("pressure");
    let path = put_recording(&site.spool, b"p.wav", &wav(1.0, 1), HOUR);
    site.configure(
        Target::Local,
        "settle = \"1s\"\nupload_after = \"1d\"\nmin_free = \"none\"",
    );
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert!(path.exists(), "plenty of space: kept for upload_after");
    // 100% free can never be met: the spool is under pressure.
    site.configure(
        Target::Local,
        "settle = \"1s\"\nupload_after = \"1d\"\nmin_free = \"100%\"",
    );
    let out = site.recvault(&["run", "--once"]);
    expect_code(&out, 0);
    assert!(!path.exists(), "archived early under disk pressure");
    assert!(String::from_utf8_lossy(&out.stderr).contains("below min_free"));
    assert_eq!(site.states().get(&State::LocalDeleted), Some(&1));
}
