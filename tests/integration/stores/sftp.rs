//! The SFTP store against Debian's OpenSSH server.

use super::*;
use crate::servers;

#[test]
fn everything_works_on_sftp() {
    let Some(s) = servers::shared_sshd() else {
        return;
    };
    everything_works("sftp-all", Target::Sftp(s), s.store());
}

#[test]
fn an_sftp_outage_loses_nothing_and_the_backlog_drains() {
    let Some(mut s) = servers::private_sshd() else {
        return;
    };
    let site = site("sftp-outage", Target::Sftp(&s));
    outage(site, &mut s.proc);
}

#[test]
fn a_damaged_sftp_file_is_caught_by_verify() {
    let Some(s) = servers::shared_sshd() else {
        return;
    };
    damage_is_caught_by_verify("sftp-damage", Target::Sftp(s), |key, size| {
        // The server's disk is right here: change the file itself.
        fs::write(s.root.join(key), damaged(size)).unwrap();
    });
}

#[test]
fn a_changed_host_key_is_refused_and_nothing_is_deleted() {
    let Some(mut s) = servers::private_sshd() else {
        return;
    };
    let site = site("sftp-hostkey", Target::Sftp(&s));
    let first = recordings(&site, 2, 3);
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert_eq!(archived(&site), 2);

    s.restart_with_new_host_key();
    let second = recordings(&site, 2, 4);
    let out = site.recvault(&["run", "--once"]);
    let text = output(&out);
    assert!(text.contains("host key mismatch"), "{text}");
    assert!(text.contains("store.host_key"), "{text}");
    for (path, bytes) in &second {
        assert_eq!(
            &fs::read(path).unwrap(),
            bytes,
            "{} touched",
            path.display()
        );
    }
    assert_eq!(
        archived(&site),
        2,
        "nothing archived to a server we cannot trust"
    );
    let out = site.recvault(&["check"]);
    assert_ne!(out.status.code(), Some(0));
    let text = output(&out);
    assert!(
        text.contains("host key mismatch") && text.contains("SHA256:"),
        "{text}"
    );

    // The operator checks the new key and pins it: archiving resumes.
    site.set_option("store", "host_key", &format!("\"{}\"", s.host_key_line()));
    expect_code(&site.recvault(&["run", "--once"]), 0);
    assert_eq!(archived(&site), 4);
    for (path, bytes) in first.iter().chain(&second) {
        assert_eq!(sha256(&restore(&site, name_of(path))), sha256(bytes));
    }
}

#[test]
fn sftp_checks_name_the_setting_at_fault() {
    let Some(s) = servers::shared_sshd() else {
        return;
    };
    check_passes("sftp-check", Target::Sftp(s), "read back and hashed");
    check_names(
        "sftp-nopath",
        Target::Sftp(s),
        |site| {
            site.set_option(
                "store",
                "path",
                &format!("\"{}/missing\"", s.root.display()),
            )
        },
        &["store.path", "does not exist"],
    );
    check_names(
        "sftp-badkey",
        Target::Sftp(s),
        |site| {
            let other = site.root.join("other_key");
            let out = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&other)
                .output()
                .unwrap();
            assert!(out.status.success());
            site.set_option("store", "key_file", &format!("\"{}\"", other.display()));
        },
        &["store.key_file", "refused"],
    );
}
