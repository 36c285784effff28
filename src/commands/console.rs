//! `recvault console user add|list|remove`: the console's local accounts.
//! `add` says what it will do before it does it, reads the password from
//! the terminal without echo (or standard input's first line) and keeps
//! only its argon2id hash.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use crate::cli::{ConsoleCommand, ConsoleUserCommand};
use crate::config::Config;
use crate::console::{Role, accounts};
use crate::error::Error;
use crate::ledger::Ledger;
use crate::units::{local_time, now_secs};

pub(super) fn console(
    config: &Config,
    action: ConsoleCommand,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let ConsoleCommand::User { action } = action;
    let ledger = super::open_ledger(config)?;
    match action {
        ConsoleUserCommand::Add { name, role } => add(config, &ledger, &name, &role, out)?,
        ConsoleUserCommand::List => {
            for a in ledger.console_accounts()? {
                writeln!(
                    out,
                    "{}\t{}\tsince {}",
                    a.name,
                    a.role,
                    local_time(a.created_at)
                )?;
            }
        }
        ConsoleUserCommand::Remove { name } => {
            writeln!(out, "removing console account {name}")?;
            if !ledger.remove_console_account(&name)? {
                return Err(Error::Usage(format!("no console account {name}")));
            }
            writeln!(out, "done")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `recvault console user add NAME --role ROLE`: says what it does, then does it.
fn add(
    config: &Config,
    ledger: &Ledger,
    name: &str,
    role: &str,
    out: &mut impl Write,
) -> Result<(), Error> {
    accounts::check_name(name).map_err(Error::Usage)?;
    let role = Role::parse(role).ok_or_else(|| {
        Error::Usage(format!(
            "--role `{role}`: use listener, compliance or admin"
        ))
    })?;
    let existing = ledger.console_account(name)?;
    writeln!(
        out,
        "{} console account {name} with role {} in ledger {}",
        if existing.is_some() {
            "replacing the password and role of"
        } else {
            "adding"
        },
        role.as_str(),
        config.ledger.path.display()
    )?;
    out.flush()?;
    let password = read_password()?;
    accounts::check_password(&password).map_err(Error::Usage)?;
    let hash = accounts::hash(&password).map_err(Error::Local)?;
    ledger.put_console_account(name, role.as_str(), &hash, now_secs())?;
    if config.console.is_none() {
        writeln!(
            out,
            "note: [console] is not enabled in {}: the account is kept for when it is",
            config.source.display()
        )?;
    }
    writeln!(
        out,
        "done: {name} may log in to the console as {}",
        role.as_str()
    )?;
    Ok(())
}

/// The password: typed at the terminal without echo, or standard input's first line.
fn read_password() -> Result<String, Error> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("password (not shown): ");
    }
    let echo = tty.then(no_echo).flatten();
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = echo {
        // SAFETY: restores the terminal settings read by `no_echo`.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &saved) };
        eprintln!();
    }
    read.map_err(Error::Output)?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(Error::Usage(
            "no password: type it, or give it on standard input".into(),
        ));
    }
    Ok(password)
}

/// Turns the terminal's echo off; the settings to restore.
fn no_echo() -> Option<libc::termios> {
    // SAFETY: termios is plain data filled by tcgetattr on fd 0.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) != 0 {
            return None;
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        libc::tcsetattr(0, libc::TCSANOW, &t);
        Some(saved)
    }
}
