//! The operator's recovery commands — `recvault ledger check|backup|restore|
//! rebuild` and `recvault verify` — as the command line runs them: open what
//! they need from the config, do the work in `backup`, `rebuild`, `verify`
//! and `ledger::check`, and print a report. `Ok(false)` means "ran, but
//! found problems" (exit 1).

use std::io::Write;
use std::sync::Arc;

use crate::backup;
use crate::cli::LedgerCommand;
use crate::config::{Config, StoreConfig};
use crate::ledger::Ledger;
use crate::rebuild;
use crate::report;
use crate::store::{self, Store};
use crate::verify::{self, Selection};

fn store_config(config: &Config) -> Result<&StoreConfig, String> {
    config.store.as_ref().ok_or_else(|| {
        format!(
            "no store is configured in {}: set [store] first",
            config.source.display()
        )
    })
}

async fn open_store(config: &Config) -> Result<Arc<dyn Store>, String> {
    store::open(store_config(config)?)
        .await
        .map_err(|e| e.to_string())
}

/// This host's ledger-backup prefix in the configured store.
pub fn backup_prefix(config: &Config) -> Result<String, String> {
    Ok(backup::backup_prefix(
        &store_config(config)?.prefix,
        &config.daemon.host,
    ))
}

/// Runs one `recvault ledger …` command.
pub async fn ledger(
    config: &Config,
    action: LedgerCommand,
    out: &mut impl Write,
) -> Result<bool, String> {
    let path = &config.ledger.path;
    match action {
        LedgerCommand::Check => {
            if !path.exists() {
                return Err(format!("no ledger at {}", path.display()));
            }
            let ledger = Ledger::open(path).map_err(|e| e.to_string())?;
            let problems = ledger.check().map_err(|e| e.to_string())?;
            for p in &problems {
                let _ = writeln!(
                    out,
                    "PROBLEM: {} — {} recording(s), ids {:?}",
                    p.rule, p.count, p.ids
                );
            }
            let _ = writeln!(
                out,
                "ledger {}: {}",
                path.display(),
                if problems.is_empty() {
                    "ok"
                } else {
                    "PROBLEMS FOUND"
                }
            );
            Ok(problems.is_empty())
        }
        LedgerCommand::Backup => {
            let store = open_store(config).await?;
            let ledger = Ledger::open(path).map_err(|e| e.to_string())?;
            let r = backup::backup(
                &ledger,
                &*store,
                &backup_prefix(config)?,
                config.ledger.backup_keep,
                &config.spool.staging,
            )
            .await
            .map_err(|e| e.to_string())?;
            let _ = writeln!(
                out,
                "backed up {} to {} ({}), {} old backup(s) removed",
                path.display(),
                r.key,
                report::human_bytes(r.bytes),
                r.pruned.len()
            );
            Ok(true)
        }
        LedgerCommand::Restore => {
            let store = open_store(config).await?;
            let (key, aside) =
                backup::restore_latest(&*store, &backup_prefix(config)?, &config.daemon.host, path)
                    .await
                    .map_err(|e| e.to_string())?;
            let _ = writeln!(out, "restored {} from {key}", path.display());
            if let Some(aside) = aside {
                let _ = writeln!(out, "the previous ledger is kept as {}", aside.display());
            }
            Ok(true)
        }
        LedgerCommand::Rebuild { force, .. } => {
            let store = open_store(config).await?;
            let prefix = store_config(config)?.prefix.clone();
            let r = rebuild::rebuild(config, &*store, &prefix, force)
                .await
                .map_err(|e| e.to_string())?;
            for (key, why) in &r.skipped {
                let _ = writeln!(out, "skipped {key}: {why}");
            }
            if let Some(aside) = &r.moved_aside {
                let _ = writeln!(out, "the previous ledger is kept as {}", aside.display());
            }
            let _ = writeln!(
                out,
                "rebuilt {} from {} objects: {} recordings ({} still in the spool, to be deleted by the daemon), {} skipped, {} legal holds",
                path.display(),
                r.objects,
                r.rebuilt,
                r.still_local,
                r.skipped.len(),
                r.holds
            );
            Ok(true)
        }
    }
}

/// Runs `recvault verify`.
pub async fn verify(
    config: &Config,
    sample: Option<usize>,
    since: Option<String>,
    verbose: bool,
    out: &mut impl Write,
) -> Result<bool, String> {
    let since = since.map(|d| report::parse_date(&d)).transpose()?;
    let store = open_store(config).await?;
    let ledger = Ledger::open(&config.ledger.path).map_err(|e| e.to_string())?;
    let r = verify::verify(
        &ledger,
        &*store,
        Selection { sample, since },
        &config.spool.staging,
        verbose,
        out,
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(r.clean())
}
