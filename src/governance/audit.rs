//! Who acts, as the audit trail names them, and the policy changes it
//! records. The trail itself (table, hash chain) is `ledger::audit`.

use std::ffi::CStr;

use crate::config::Config;
use crate::ledger::audit::{Action, Actor, NewEntry};
use crate::ledger::{Ledger, LedgerError};

impl Actor {
    /// The user this process runs as.
    pub fn current() -> Actor {
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let mut user = user_name(uid).unwrap_or_else(|| format!("uid {uid}"));
        if uid == 0
            && let Ok(by) = std::env::var("SUDO_USER")
            && !by.is_empty()
        {
            user = format!("{user} (sudo by {by})");
        }
        Actor { uid, user }
    }
}

/// The name of `uid` from the password database (getpwuid_r).
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: passwd is plain data; getpwuid_r writes into pwd and buf
        // (whose length we pass) and sets result to &pwd or null.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: pw_name points into buf, NUL-terminated by getpwuid_r.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

/// Records the retention and naming policy in the audit trail if it differs
/// from the one last recorded (a config change that decides deletions).
pub fn note_policy(
    ledger: &Ledger,
    config: &Config,
    actor: &Actor,
    now: i64,
) -> Result<bool, LedgerError> {
    let current = format!(
        "retention: {}; {}",
        config.retention.summary(),
        config.naming.summary()
    );
    if ledger.last_audit_reason(Action::PolicyChange)?.as_deref() == Some(current.as_str()) {
        return Ok(false);
    }
    ledger.audit_record(
        actor,
        now,
        &NewEntry {
            action: Action::PolicyChange,
            case_id: None,
            subject: &format!("config {}", config.source.display()),
            reason: &current,
            recording_id: None,
        },
    )?;
    tracing::info!(policy = %current, "retention policy in force");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_user_has_a_name() {
        let a = Actor::current();
        assert!(!a.user.is_empty());
        assert_eq!(user_name(0).as_deref(), Some("root"));
    }
}
