//! `recvault vicidial restore-locations [--dry-run]`: puts back every
//! `recording_log.location` recvault pointed at a listen link (before
//! uninstalling, or to stop using links), where it still holds recvault's
//! link. Prints every change before making any; each is one compare-and-set
//! after its intent is recorded, so an interrupted run is finished by
//! running it again.

use std::io::Write;
use std::process::ExitCode;

use crate::config::Config;
use crate::error::Error;
use crate::ledger::locations::Rewritten;
use crate::ledger::lock::InstanceLock;
use crate::recording::key::display_name;
use crate::vicidial::db::{DbOptions, VicidialDb};
use crate::vicidial::location::LocationUpdate;

pub(super) async fn restore_locations(
    config: &Config,
    dry_run: bool,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let Some(vc) = &config.vicidial else {
        return Err(Error::Usage(format!(
            "{}: [vicidial] is not enabled: there is no database to restore locations in",
            config.source.display()
        )));
    };
    // The daemon would rewrite what this puts back: it must be stopped.
    let _lock = match dry_run {
        true => None,
        false => Some(InstanceLock::acquire(&config.ledger.path).map_err(|source| Error::Busy {
            source,
            hint: "stop the daemon first (systemctl stop recvault), and set [vicidial] rewrite_locations = false before starting it again",
        })?),
    };
    let ledger = super::open_ledger(config)?;
    let rows = ledger.locations_rewritten()?;
    print_plan(&rows, out)?;
    if dry_run || rows.is_empty() {
        if dry_run {
            writeln!(out, "dry run: nothing changed")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    out.flush()?;
    let db = VicidialDb::new(&vc.db, DbOptions::from_config(vc));
    let (mut restored, mut left) = (0, 0);
    for r in rows {
        let id = r.recording_id;
        ledger.location_restoring(id)?;
        let (to, detail) = restore_one(&db, &r).await?;
        if to == "restored" {
            restored += 1;
        } else {
            left += 1;
            writeln!(
                out,
                "  recording_log {}: {detail}",
                r.vicidial_recording_id as u32
            )?;
        }
        ledger.location_done(id, to, &detail)?;
    }
    db.close().await;
    writeln!(
        out,
        "restored {restored}, left {left} that someone else changed since"
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Every change, before any is made.
fn print_plan(rows: &[Rewritten], out: &mut impl Write) -> Result<(), Error> {
    writeln!(out, "{} recording_log location(s) to restore:", rows.len())?;
    for r in rows {
        writeln!(
            out,
            "  recording_log {} ({}): {} -> {}",
            r.vicidial_recording_id,
            display_name(&r.name),
            r.new,
            r.old
        )?;
    }
    Ok(())
}

/// Puts one location back if it still holds recvault's link: "restored" or
/// "skipped", and what happened.
async fn restore_one(db: &VicidialDb, r: &Rewritten) -> Result<(&'static str, String), Error> {
    let vid = r.vicidial_recording_id as u32;
    let mut update = db.replace_location(vid, &r.new, &r.old).await?;
    // A re-signing cut short may have left its link there instead.
    if let (LocationUpdate::Changed { current: Some(c) }, Some(p)) = (&update, &r.pending)
        && c == p
    {
        update = db.replace_location(vid, p, &r.old).await?;
    }
    Ok(match update {
        LocationUpdate::Updated => ("restored", format!("back to {}", r.old)),
        // Already the old value: a run cut short after the database changed.
        LocationUpdate::Changed { current: Some(c) } if c == r.old => {
            ("restored", format!("back to {}", r.old))
        }
        LocationUpdate::Changed { current } => (
            "skipped",
            format!(
                "not restored: it holds {} now, not recvault's link",
                current.as_deref().unwrap_or("NULL")
            ),
        ),
        LocationUpdate::Missing => (
            "skipped",
            "not restored: the recording_log row is gone".into(),
        ),
    })
}
