//! Debian's OpenSSH `sshd`, run as a child with its own config, host key
//! and authorized key made here (the system's sshd is never touched).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use recvault::config::{SftpConfig, SshKey, parse_host_key};
use recvault::store::SftpStore;

use super::*;
use crate::common::dead_port;

/// An sshd serving SFTP from `root` to the current user, who logs in with
/// `client_key`; its host key is `host_key_line`.
pub struct Sshd {
    pub proc: Proc,
    pub dir: PathBuf,
    /// The remote directory recvault is given (`store.path`).
    pub root: PathBuf,
    pub user: String,
    pub client_key: PathBuf,
}

fn keygen(path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "recvault-test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen (Debian's openssh-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Sshd {
    /// The server's host key as a known_hosts line.
    pub fn host_key_line(&self) -> String {
        let key = std::fs::read_to_string(self.dir.join("host_ed25519.pub")).unwrap();
        let mut words = key.split_whitespace();
        format!(
            "[127.0.0.1]:{} {} {}",
            self.proc.port,
            words.next().unwrap(),
            words.next().unwrap()
        )
    }

    /// Stops it, makes it a new host key and starts it again on the same port.
    pub fn restart_with_new_host_key(&mut self) {
        self.proc.stop();
        keygen(&self.dir.join("host_ed25519"));
        self.proc.start();
    }
}

fn sshd() -> Option<Sshd> {
    let program = PathBuf::from("/usr/sbin/sshd");
    if !installed(&program, "OpenSSH's sshd (apt-get install openssh-server)") {
        return None;
    }
    let dir = workdir("sshd");
    let root = dir.join("archive");
    std::fs::create_dir_all(&root).unwrap();
    keygen(&dir.join("host_ed25519"));
    keygen(&dir.join("client_ed25519"));
    std::fs::copy(dir.join("client_ed25519.pub"), dir.join("authorized_keys")).unwrap();
    let port = dead_port();
    let config = format!(
        "ListenAddress 127.0.0.1\nPort {port}\nHostKey {dir}/host_ed25519\nAuthorizedKeysFile {dir}/authorized_keys\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n\
         StrictModes no\nPidFile none\nSubsystem sftp internal-sftp\nLogLevel ERROR\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("sshd_config"), config).unwrap();
    // sshd started by root needs its privilege-separation directory, which
    // the ssh service makes at boot (/run is a tmpfs).
    if unsafe { libc::geteuid() } == 0 {
        let _ = std::fs::create_dir_all("/run/sshd");
    }
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let proc = Proc {
        name: "sshd",
        program,
        args: vec![
            "-D".into(),
            "-e".into(),
            "-f".into(),
            dir.join("sshd_config").display().to_string(),
        ],
        port,
        child: None,
        log: dir.join("sshd.log"),
    };
    Some(Sshd {
        proc,
        client_key: dir.join("client_ed25519"),
        root,
        dir,
        user,
    })
}

/// The sshd every SFTP test shares.
pub fn shared_sshd() -> Option<&'static Sshd> {
    static SHARED: OnceLock<Option<Sshd>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let mut s = sshd()?;
            s.proc = keep(std::mem::replace(&mut s.proc, placeholder()));
            Some(s)
        })
        .as_ref()
}

/// An sshd of one test's own (outages, a changed host key).
pub fn private_sshd() -> Option<Sshd> {
    let mut s = sshd()?;
    s.proc.start();
    Some(s)
}

impl Sshd {
    pub fn config(&self) -> SftpConfig {
        let text = std::fs::read_to_string(&self.client_key).unwrap();
        SftpConfig {
            host: "127.0.0.1".into(),
            port: self.proc.port,
            user: self.user.clone(),
            key: SshKey(Arc::new(
                russh::keys::decode_secret_key(&text, None).unwrap(),
            )),
            host_key: parse_host_key(&self.host_key_line()).unwrap(),
            path: self.root.display().to_string(),
            connect_timeout: TIMEOUT,
            read_timeout: TIMEOUT,
        }
    }

    pub fn store(&self) -> Arc<SftpStore> {
        Arc::new(SftpStore::new(&self.config(), None))
    }

    /// `[store]` lines for a site.
    pub fn store_toml(&self) -> String {
        format!(
            "kind = \"sftp\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\nkey_file = \"{}\"\nhost_key = \"{}\"\npath = \"{}\"\nconnect_timeout = \"2s\"\nread_timeout = \"10s\"\n",
            self.proc.port,
            self.user,
            self.client_key.display(),
            self.host_key_line(),
            self.root.display()
        )
    }
}
