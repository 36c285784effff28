//! `recvault ledger check|backup|restore|rebuild`: the operator's tools for a
//! damaged or lost ledger. The work is in `ledger` and `recovery`.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::LedgerCommand;
use crate::config::Config;
use crate::error::Error;
use crate::ledger::Ledger;
use crate::recovery::catch_up::{CaughtUp, HostArchive};
use crate::recovery::{backup, rebuild};
use crate::units::human_bytes;

/// This host's ledger-backup prefix in the configured store.
fn backup_prefix(config: &Config) -> Result<String, Error> {
    Ok(backup::backup_prefix(
        &super::store_config(config)?.prefix,
        &config.daemon.host,
    ))
}

/// Runs one `recvault ledger …` command.
pub(super) async fn ledger(
    config: &Config,
    action: LedgerCommand,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    match action {
        LedgerCommand::Check => check(config, out),
        LedgerCommand::Backup => backup(config, out).await,
        LedgerCommand::Restore => restore(config, out).await,
        LedgerCommand::Rebuild { force, .. } => rebuild(config, force, out).await,
    }
}

/// `ledger check`: the invariants, one line per broken rule.
fn check(config: &Config, out: &mut impl Write) -> Result<ExitCode, Error> {
    let path = &config.ledger.path;
    if !path.exists() {
        return Err(Error::Local(format!("no ledger at {}", path.display())));
    }
    let problems = Ledger::open(path)?.check()?;
    for p in &problems {
        writeln!(
            out,
            "PROBLEM: {} — {} recording(s), ids {:?}",
            p.rule, p.count, p.ids
        )?;
    }
    let verdict = if problems.is_empty() {
        "ok"
    } else {
        "PROBLEMS FOUND"
    };
    writeln!(out, "ledger {}: {verdict}", path.display())?;
    super::exit(problems.is_empty())
}

/// `ledger backup`: a consistent copy to the store now.
async fn backup(config: &Config, out: &mut impl Write) -> Result<ExitCode, Error> {
    let path = &config.ledger.path;
    let store = super::open_store(config).await?;
    let ledger = Ledger::open(path)?;
    let r = backup::backup(
        &ledger,
        &*store,
        &backup_prefix(config)?,
        config.ledger.backup_keep,
        &config.spool.staging,
    )
    .await?;
    writeln!(
        out,
        "backed up {} to {} ({}), {} old backup(s) removed",
        path.display(),
        r.key,
        human_bytes(r.bytes),
        r.pruned.len()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `ledger restore`: the newest backup in place of the ledger, brought up
/// to what the store knows that is newer; says what it brought back.
async fn restore(config: &Config, out: &mut impl Write) -> Result<ExitCode, Error> {
    let path = &config.ledger.path;
    let store = super::open_store(config).await?;
    let archive = HostArchive {
        store: &*store,
        store_prefix: &super::store_config(config)?.prefix,
        host: &config.daemon.host,
        spool_dirs: &config.spool.dirs,
    };
    let r = backup::reinstate_latest(&archive, path).await?;
    writeln!(out, "restored {} from {}", path.display(), r.key)?;
    if let Some(aside) = &r.moved_aside {
        writeln!(out, "the previous ledger is kept as {}", aside.display())?;
    }
    print_caught_up(&r.caught_up, out)?;
    Ok(ExitCode::SUCCESS)
}

/// What a restore brought back from the store, and what it could not.
fn print_caught_up(c: &CaughtUp, out: &mut impl Write) -> Result<(), Error> {
    let plural = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    let h = &c.holds;
    match &c.hold_copy {
        Some((key, true)) => writeln!(
            out,
            "holds: {} ({} placed and {} released after the backup, from {key})",
            plural(h.total, "legal hold"),
            h.added,
            h.released
        )?,
        Some((key, false)) => writeln!(
            out,
            "holds: {} ({} missing from the backup added from {key}, which is older than the backup)",
            plural(h.total, "legal hold"),
            h.added
        )?,
        None => writeln!(
            out,
            "holds: {} (no hold copy in the store)",
            plural(h.total, "legal hold")
        )?,
    }
    writeln!(
        out,
        "recordings: {} brought back from the store ({} the backup did not have, {} it had \
         before they were archived; {} still in the spool, to be deleted by the daemon), \
         {} of earlier uploads now tracked, {} given a new id (another recording has theirs here)",
        plural(c.added + c.moved_on, "recording"),
        c.added,
        c.moved_on,
        c.still_local,
        plural(c.more_keys, "object"),
        c.renumbered
    )?;
    writeln!(
        out,
        "read {} the backup did not know ({} of other hosts left alone)",
        plural(c.objects, "object"),
        c.foreign
    )?;
    for (key, why) in &c.unreadable {
        writeln!(out, "could not bring back {key}: {why}")?;
    }
    writeln!(
        out,
        "next recording id {} (above every id handed out before)",
        c.next_id
    )?;
    Ok(())
}

/// `ledger rebuild --from-store`: a new ledger from the objects' metadata.
async fn rebuild(config: &Config, force: bool, out: &mut impl Write) -> Result<ExitCode, Error> {
    let store = super::open_store(config).await?;
    let prefix = super::store_config(config)?.prefix.clone();
    let r = rebuild::rebuild(config, &*store, &prefix, force).await?;
    for (key, why) in &r.skipped {
        writeln!(out, "skipped {key}: {why}")?;
    }
    if r.foreign > 0 {
        writeln!(out, "skipped {} objects archived by other hosts", r.foreign)?;
    }
    if r.more_keys > 0 {
        writeln!(
            out,
            "{} objects are earlier uploads of a rebuilt recording (tracked with it: erasure and retention delete them too)",
            r.more_keys
        )?;
    }
    if let Some(aside) = &r.moved_aside {
        writeln!(out, "the previous ledger is kept as {}", aside.display())?;
    }
    writeln!(
        out,
        "rebuilt {} from {} objects: {} recordings ({} still in the spool, to be deleted by the daemon), {} skipped, {} legal holds",
        config.ledger.path.display(),
        r.objects,
        r.rebuilt,
        r.still_local,
        r.skipped.len() + r.foreign,
        r.holds
    )?;
    writeln!(
        out,
        "next recording id {} (above every id handed out before)",
        r.next_id
    )?;
    Ok(ExitCode::SUCCESS)
}
