//! The operator commands, one file each: open what the command needs from
//! the config, call the layers below, print the result. Output formatting
//! lives with its command; nothing below this folder prints.

use std::io::{BufWriter, Stdout};
use std::process::ExitCode;
use std::sync::Arc;

use crate::catalog::{Catalog, LocalCatalog};
use crate::cli::Command;
use crate::config::{Config, StoreConfig};
use crate::error::Error;
use crate::ledger::Ledger;
use crate::store::{self, Store};
use crate::units::{parse_date, parse_date_end};

mod audit;
mod check;
mod console;
mod erase;
mod export;
mod find;
mod fleet;
mod hold;
mod ledger;
mod links;
mod ls;
mod move_mix;
mod restore;
mod retention;
mod run;
mod scrub;
mod status;
mod url;
mod vicidial;

/// Runs one command; `Ok` carries its exit code (1: it ran and found
/// problems), `Err` is printed by `main`.
// One arm per command: a long match, but splitting it would scatter the dispatch table.
pub async fn dispatch(command: Command, config: Config) -> Result<ExitCode, Error> {
    match command {
        Command::Run { once } => run::run(config, once).await,
        Command::Check { offline } => check::check(&config, offline, &mut stdout()).await,
        Command::Status { fleet: false } => status::status(&config, &mut stdout()),
        Command::Status { fleet: true } => status::fleet(&config, &mut stdout()).await,
        Command::Ls {
            state,
            since,
            until,
            name,
            fleet: false,
        } => ls::ls(&config, state, since, until, name, &mut stdout()),
        Command::Ls {
            state,
            since,
            until,
            name,
            fleet: true,
        } => ls::ls_fleet(&config, state, since, until, name, &mut stdout()).await,
        Command::Restore {
            target,
            output,
            force,
        } => restore::restore(&config, &target, &output, force, &mut stdout()).await,
        Command::Erase {
            select,
            request,
            confirm,
        } => erase::erase(&config, select, request, confirm, &mut stdout()).await,
        Command::Export {
            select,
            output,
            force,
        } => export::export(&config, select, &output, force, &mut stdout()).await,
        Command::Find { select, json } => find::find(&config, select, json, &mut stdout()).await,
        Command::Fleet { action } => fleet::fleet(action, &config, &mut stdout()).await,
        Command::Retention { action } => retention::retention(action, &config, &mut stdout()).await,
        Command::Hold { action } => hold::hold(action, &config, &mut stdout()).await,
        Command::Audit {
            since,
            case,
            recording,
            kind,
            action,
        } => {
            let filter = audit::Wanted {
                since,
                case,
                recording,
                kind,
            };
            audit::audit(&config, filter, action, &mut stdout())
        }
        Command::Ledger { action } => ledger::ledger(&config, action, &mut stdout()).await,
        Command::Verify {
            sample,
            all,
            since,
            verbose,
        } => {
            let sample = (!all).then_some(sample);
            scrub::scrub(&config, sample, since, verbose, &mut stdout()).await
        }
        Command::Url {
            action: Some(action),
            ..
        } => links::links(&config, action, &mut stdout()).await,
        Command::Url {
            recording,
            ttl,
            permanent,
            presigned,
            action: None,
        } => {
            let ttl = (!permanent).then_some(ttl);
            let recording = recording.unwrap_or_default();
            url::url(&config, &recording, ttl, presigned, &mut stdout()).await
        }
        Command::Vicidial { action } => match action {
            crate::cli::VicidialCommand::RestoreLocations { dry_run } => {
                vicidial::restore_locations(&config, dry_run, &mut stdout()).await
            }
            crate::cli::VicidialCommand::CronCheck => move_mix::cron_check(&config, &mut stdout()),
        },
        Command::Console { action } => console::console(&config, action, &mut stdout()),
        Command::Man | Command::Completions { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// Standard output, buffered: `ls` and `retention plan` may print hundreds
/// of thousands of lines; a line-buffered stdout would make one write per
/// line. Flushed when dropped at the end of the command.
fn stdout() -> BufWriter<Stdout> {
    BufWriter::new(std::io::stdout())
}

/// 0 if a command found nothing wrong, 1 if it found problems.
fn exit(clean: bool) -> Result<ExitCode, Error> {
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The configured ledger.
fn open_ledger(config: &Config) -> Result<Arc<Ledger>, Error> {
    Ok(Arc::new(Ledger::open(&config.ledger.path)?))
}

/// The catalog this box answers from: its own ledger, or with `[fleet]`
/// the fleet's shared database.
async fn catalog(config: &Config) -> Result<Arc<dyn Catalog>, Error> {
    let ledger = open_ledger(config)?;
    ledger.attribute_pending(&config.naming)?;
    let local = LocalCatalog::new(Arc::new(config.clone()), ledger);
    Ok(match crate::fleet::Fleet::of(config)? {
        Some(fleet) => Arc::new(crate::fleet::FleetCatalog::new(fleet, local)),
        None => Arc::new(local),
    })
}

/// With `[fleet]`: the fleet's deletion gate for a command that deletes
/// (`retention run`, `erase`), its policy read. `None`: one box.
async fn fleet_gate(config: &Config) -> Result<Option<Arc<crate::fleet::FleetGate>>, Error> {
    crate::fleet::gate::for_command(config).await
}

/// The configured store's settings, or why there is none.
fn store_config(config: &Config) -> Result<&StoreConfig, Error> {
    config
        .store
        .as_ref()
        .ok_or_else(|| Error::NoStore(config.source.clone()))
}

/// The configured store.
async fn open_store(config: &Config) -> Result<Arc<dyn Store>, Error> {
    Ok(store::open(store_config(config)?).await?)
}

/// The configured store, or `None` where none is configured.
async fn store_if_configured(config: &Config) -> Result<Option<Arc<dyn Store>>, Error> {
    match &config.store {
        Some(c) => Ok(Some(store::open(c).await?)),
        None => Ok(None),
    }
}

/// A date given on the command line (the start of a range).
fn date(text: Option<String>) -> Result<Option<i64>, Error> {
    text.map(|d| parse_date(&d).map_err(Error::Usage))
        .transpose()
}

/// A date given on the command line as the end of a range (a plain date
/// includes its whole day).
fn date_end(text: Option<String>) -> Result<Option<i64>, Error> {
    text.map(|d| parse_date_end(&d).map_err(Error::Usage))
        .transpose()
}
