//! `recvault ledger check|backup|restore|rebuild`: the operator's tools for a
//! damaged or lost ledger. The work is in `ledger` and `recovery`.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::LedgerCommand;
use crate::config::Config;
use crate::error::Error;
use crate::ledger::Ledger;
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

/// `ledger restore`: the newest backup in place of the ledger.
async fn restore(config: &Config, out: &mut impl Write) -> Result<ExitCode, Error> {
    let path = &config.ledger.path;
    let store = super::open_store(config).await?;
    let (key, aside) =
        backup::reinstate_latest(&*store, &backup_prefix(config)?, &config.daemon.host, path)
            .await?;
    writeln!(out, "restored {} from {key}", path.display())?;
    if let Some(aside) = aside {
        writeln!(out, "the previous ledger is kept as {}", aside.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `ledger rebuild --from-store`: a new ledger from the objects' metadata.
async fn rebuild(config: &Config, force: bool, out: &mut impl Write) -> Result<ExitCode, Error> {
    let store = super::open_store(config).await?;
    let prefix = super::store_config(config)?.prefix.clone();
    let r = rebuild::rebuild(config, &*store, &prefix, force).await?;
    for (key, why) in &r.skipped {
        writeln!(out, "skipped {key}: {why}")?;
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
        r.skipped.len(),
        r.holds
    )?;
    Ok(ExitCode::SUCCESS)
}
