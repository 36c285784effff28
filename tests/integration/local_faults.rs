//! Local faults: a full staging disk, an unreadable spool file, a locked or
//! read-only ledger, the spool directory deleted and re-created under the
//! running daemon. Nothing is deleted that was not archived, every failure
//! is findable with `recvault ls --state failed`, and work resumes once the
//! fault is gone.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use recvault::recording::State;

use crate::common::*;

const HOUR: Duration = Duration::from_secs(3600);
const DUE_NOW: &str = "settle = \"1s\"\nupload_after = \"0s\"";

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

fn failed_listing(site: &Site) -> String {
    String::from_utf8_lossy(&site.recvault(&["ls", "--state", "failed"]).stdout).into_owned()
}

/// Mounts a tmpfs of `size` at `dir`; `None` (and a note) where mounting is
/// not permitted, e.g. in an unprivileged container.
fn mount_tmpfs(dir: &Path, size: &str) -> Option<()> {
    fs::create_dir_all(dir).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output()
        .unwrap();
    if out.status.success() {
        return Some(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("permission denied") || err.contains("must be superuser"),
        "mount failed: {err}"
    );
    // CI runs as root, where the mount must work: a skip there would pass
    // the test without running it.
    assert!(
        std::env::var_os("CI").is_none(),
        "cannot mount a tmpfs under CI: {err}"
    );
    eprintln!("SKIPPED: cannot mount a tmpfs here (EPERM): {err}");
    None
}

struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn a_full_staging_disk_fails_the_recording_and_deletes_nothing() {
    let mut site = Site::new("diskfull");
    site.configure(Target::Local, DUE_NOW);
    let staging = site.root.join("staging");
    let Some(()) = mount_tmpfs(&staging, "1M") else {
        return;
    };
    let unmount = Unmount(&staging);
    // Incompressible and bigger than the staging tmpfs.
    let big = random_bytes(3 << 20, 1);
    let big_path = put_recording(&site.spool, b"too-big.wav", &big, HOUR);
    let small = wav(0.5, 2);
    let small_path = put_recording(&site.spool, b"small.wav", &small, HOUR);

    let out = site.recvault(&["run", "--once"]);
    expect_code(&out, 1);
    assert_eq!(fs::read(&big_path).unwrap(), big, "the local copy stays");
    assert!(!small_path.exists(), "a recording that fits is archived");
    let failed = failed_listing(&site);
    assert!(failed.contains("too-big.wav"), "{failed}");
    let status = String::from_utf8_lossy(&site.recvault(&["status"]).stdout).into_owned();
    assert!(status.contains("No space left on device"), "{status}");
    let leftovers: Vec<_> = fs::read_dir(&staging).unwrap().flatten().collect();
    assert!(
        leftovers.is_empty(),
        "partial staging files removed: {leftovers:?}"
    );

    drop(unmount);
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert_eq!(restore(&site, b"too-big.wav"), big);
}

/// Hands the whole site to `nobody`, so the daemon can be run as that user.
fn give_to_nobody(site: &Site) -> (u32, u32) {
    let (uid, gid) = (65534, 65534);
    let mut stack = vec![site.root.clone()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).unwrap();
        if p.is_dir() && !p.is_symlink() {
            stack.extend(fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
        }
    }
    (uid, gid)
}

/// `recvault` as `nobody` holding only CAP_LEASE, the way the systemd unit
/// runs it (its own user, the capability granted, other users' processes
/// invisible in /proc).
fn recvault_as_nobody_with_cap_lease(site: &Site, args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["--inh-caps=-all,+lease", "--ambient-caps=+lease", "--"])
        .arg(recvault_bin())
        .arg("--config")
        .arg(&site.config)
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

/// Issue 13.4: Asterisk (another user) is still writing a recording whose
/// mtime says it settled long ago. Scanning /proc cannot see another user's
/// writer under the unit; the kernel's lease answer can.
#[test]
fn a_recording_another_user_is_still_writing_is_left_alone() {
    let mut site = Site::new("lease");
    site.configure(Target::Local, DUE_NOW);
    let bytes = wav(0.5, 1);
    let path = put_recording(&site.spool, b"in-call.wav", &bytes, HOUR);
    let (_, gid) = give_to_nobody(&site);
    // Owned by the writer (uid 1), readable by recvault's group, as
    // Asterisk's files are to the recvault user.
    std::os::unix::fs::lchown(&path, Some(1), Some(gid)).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let writer = Command::new("setpriv")
        .args(["--reuid=1", "--regid=1", "--clear-groups", "--"])
        .args(["sh", "-c", "exec 3>>\"$0\"; echo open; exec sleep 120"])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut writer = KillOnDrop(writer);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(writer.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "open", "the writer did not start");

    let out = recvault_as_nobody_with_cap_lease(&site, &["run", "--once"]);
    expect_code(&out, 0);
    assert_eq!(fs::read(&path).unwrap(), bytes, "left alone while written");
    assert_eq!(site.states().get(&State::Seen), Some(&1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("cannot take a file lease"), "{err}");

    drop(writer);
    expect_code(
        &recvault_as_nobody_with_cap_lease(&site, &["run", "--once"]),
        0,
    );
    assert!(!path.exists(), "archived once the writer closed it");
    assert_eq!(restore(&site, b"in-call.wav"), bytes);
}

#[test]
fn an_unreadable_spool_file_is_listed_as_failed_and_left_alone() {
    let mut site = Site::new("eacces");
    site.configure(Target::Local, DUE_NOW);
    let secret = wav(0.5, 1);
    let locked = put_recording(&site.spool, b"root-only.wav", &secret, HOUR);
    let fine = put_recording(&site.spool, b"readable.wav", &wav(0.5, 2), HOUR);
    let (uid, gid) = give_to_nobody(&site);
    // Root's file, mode 0600: the daemon (as nobody) may not read it.
    std::os::unix::fs::lchown(&locked, Some(0), Some(0)).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o600)).unwrap();

    let out = site
        .command(&["run", "--once"])
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap();
    expect_code(&out, 1);
    assert!(!fine.exists());
    assert_eq!(fs::read(&locked).unwrap(), secret);
    assert_eq!(fs::metadata(&locked).unwrap().uid(), 0);
    let failed = failed_listing(&site);
    assert!(failed.contains("root-only.wav"), "{failed}");
    let status = String::from_utf8_lossy(&site.recvault(&["status"]).stdout).into_owned();
    assert!(status.contains("Permission denied"), "{status}");

    // Once readable, it is archived.
    std::os::unix::fs::lchown(&locked, Some(uid), Some(gid)).unwrap();
    let out = site
        .command(&["run", "--once"])
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap();
    expect_code(&out, 0);
    assert_eq!(restore(&site, b"root-only.wav"), secret);
}

#[test]
fn a_locked_ledger_stops_the_run_with_a_clear_error_and_deletes_nothing() {
    let mut site = Site::new("locked");
    site.configure(Target::Local, DUE_NOW);
    let bytes = wav(0.5, 1);
    let path = put_recording(&site.spool, b"waiting.wav", &bytes, HOUR);
    drop(site.ledger()); // create it
    let holder = rusqlite::Connection::open(site.ledger_path()).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let out = site.recvault(&["run", "--once"]);
    expect_code(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), bytes);
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert_eq!(restore(&site, b"waiting.wav"), bytes);
}

#[test]
fn a_read_only_ledger_stops_the_run_and_deletes_nothing() {
    let mut site = Site::new("rledger");
    site.configure(Target::Local, DUE_NOW);
    let bytes = wav(0.5, 1);
    let path = put_recording(&site.spool, b"waiting.wav", &bytes, HOUR);
    drop(site.ledger());
    let (uid, gid) = give_to_nobody(&site);
    // The ledger stays root's, 0644: readable, not writable, for the daemon.
    std::os::unix::fs::lchown(site.ledger_path(), Some(0), Some(0)).unwrap();
    let out = site
        .command(&["run", "--once"])
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap();
    expect_code(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ledger"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), bytes);
    std::os::unix::fs::lchown(site.ledger_path(), Some(uid), Some(gid)).unwrap();
    let out = site
        .command(&["run", "--once"])
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap();
    expect_code(&out, 0);
    assert_eq!(restore(&site, b"waiting.wav"), bytes);
}

/// A daemon that does not outlive a failed test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_spool_directory_deleted_and_recreated_is_watched_again() {
    let mut site = Site::new("recreate");
    // A long rescan: only inotify (or the daemon noticing the new directory)
    // can find files written after the directory comes back.
    site.configure(Target::Local, &format!("{DUE_NOW}\nrescan = \"1h\""));
    let log = fs::File::create(site.root.join("daemon.log")).unwrap();
    let mut child = KillOnDrop(
        site.command(&["run"])
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    let first = put_recording(&site.spool, b"before.wav", &wav(0.5, 1), HOUR);
    wait_for(Duration::from_secs(60), "before.wav archived", || {
        !first.exists()
    });
    put_recording(&site.spool, b"doomed.wav", &wav(0.5, 2), Duration::ZERO);
    fs::remove_dir_all(&site.spool).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    fs::create_dir(&site.spool).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let bytes = wav(0.5, 3);
    let after = site.spool.join("after.wav");
    fs::write(&after, &bytes).unwrap();
    wait_for(Duration::from_secs(90), "after.wav archived", || {
        !after.exists()
    });
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
    assert_eq!(restore(&site, b"after.wav"), bytes);
    let states = site.states();
    assert_eq!(states.get(&State::LocalDeleted), Some(&2), "{states:?}");
    // doomed.wav went with the directory before it could be archived: the
    // ledger must not claim it was, and the store holds no object for it.
    for rec in site.ledger().find(b"doomed.wav").unwrap() {
        assert!(rec.object_key.is_none(), "{rec:?}");
        assert!(!matches!(rec.state, State::Verified | State::LocalDeleted));
    }
    let store = recvault::store::LocalStore::new(site.root.join("store"));
    let objects = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(recording_objects(&store, &site.prefix));
    let keys: Vec<_> = objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains("doomed")), "{keys:?}");
}
