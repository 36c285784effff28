//! `recvault status`: counts and bytes per state, the backlog, the last errors.

use std::io::Write;
use std::process::ExitCode;

use crate::config::Config;
use crate::error::Error;
use crate::ledger::{Due, Ledger};
use crate::recording::key::{display_name, display_text};
use crate::units::{human_bytes, local_time, now_secs};

pub(super) fn status(config: &Config, out: &mut impl Write) -> Result<ExitCode, Error> {
    let ledger = super::open_ledger(config)?;
    writeln!(out, "ledger: {}", ledger.path().display())?;
    state_totals(&ledger, out)?;
    codec_totals(&ledger, out)?;
    writeln!(
        out,
        "unattributed: {} (no campaign from the file name{})",
        ledger.unattributed_count()?,
        if config.vicidial.is_some() {
            " or VICIdial's database"
        } else {
            ""
        }
    )?;
    if config.vicidial.is_some() {
        vicidial_attribution(&ledger, config, out)?;
        super::move_mix::status_lines(config, &ledger, out)?;
    }
    if let Some(f) = &config.fleet {
        writeln!(
            out,
            "fleet: member through {} ({}); {} changes not yet published to the fleet's catalog; \
             `recvault fleet status` for every box, `status --fleet` for their overviews",
            f.db,
            f.db_source,
            ledger.outbox_len()?
        )?;
    }
    let disputed = ledger.name_time_disputed()?;
    if disputed > 0 {
        writeln!(
            out,
            "name dates not believed: {disputed} (more than [naming] time_tolerance from the file's time; retention counts from the file's time)"
        )?;
    }
    let active = ledger
        .holds()?
        .iter()
        .filter(|h| h.released_at.is_none())
        .count();
    writeln!(out, "legal holds: {active} active")?;
    backlog(&ledger, out)?;
    drain(&ledger, config, out)?;
    last_errors(&ledger, out)?;
    Ok(ExitCode::SUCCESS)
}

/// Count and bytes per state, and the total count.
fn state_totals(ledger: &Ledger, out: &mut impl Write) -> Result<(), Error> {
    writeln!(
        out,
        "{:<15} {:>10} {:>12} {:>12}",
        "state", "count", "original", "stored"
    )?;
    let mut total = 0;
    for (state, t) in ledger.totals()? {
        total += t.count;
        writeln!(
            out,
            "{:<15} {:>10} {:>12} {:>12}",
            state.as_str(),
            t.count,
            human_bytes(t.bytes),
            human_bytes(t.object_bytes)
        )?;
    }
    writeln!(out, "{:<15} {:>10}", "total", total)?;
    Ok(())
}

/// Count, bytes and compression ratio per codec; nothing when nothing is stored.
fn codec_totals(ledger: &Ledger, out: &mut impl Write) -> Result<(), Error> {
    let codecs = ledger.codec_totals()?;
    if codecs.is_empty() {
        return Ok(());
    }
    writeln!(out, "stored as (objects in the store or staged for it):")?;
    for (codec, t) in codecs {
        let percent = match t.bytes {
            0 => 100.0,
            b => t.object_bytes as f64 * 100.0 / b as f64,
        };
        writeln!(
            out,
            "  {:<13} {:>10} {:>12} {:>12} {percent:>5.1}%",
            codec,
            t.count,
            human_bytes(t.bytes),
            human_bytes(t.object_bytes)
        )?;
    }
    Ok(())
}

/// The oldest recording still waiting to be archived.
fn backlog(ledger: &Ledger, out: &mut impl Write) -> Result<(), Error> {
    match ledger.oldest_waiting()? {
        Some(r) => writeln!(
            out,
            "backlog: oldest waiting {} ({} ago, {}): {}",
            local_time(r.time_secs()),
            age(r.time_secs()),
            r.state,
            display_name(&r.name)
        )?,
        None => writeln!(out, "backlog: none")?,
    }
    Ok(())
}

/// The drain estimate, the operator's first question on day one: how
/// fast recordings were archived over the last hour, how many wait (and
/// how many of them are due now), and how long they take at that rate.
fn drain(ledger: &Ledger, config: &Config, out: &mut impl Write) -> Result<(), Error> {
    let now = now_secs();
    let (done, bytes, first) = ledger.drained_since(now - 3600)?;
    let waiting = ledger
        .totals()?
        .into_iter()
        .filter(|(s, _)| s.is_waiting())
        .fold((0, 0), |(n, b), (_, t)| (n + t.count, b + t.bytes));
    let pressure = config.spool.min_free.is_some_and(|m| {
        !crate::pipeline::pressure::under_pressure(&config.spool.dirs, m).is_empty()
    });
    let cutoff = match pressure {
        true => now,
        false => now.saturating_sub(config.spool.upload_after.as_secs() as i64),
    };
    let due = Due {
        upload_cutoff_ns: cutoff.saturating_mul(1_000_000_000),
        now,
        retry_all: false,
    };
    let (due_now, due_bytes) = ledger.due_totals(&due)?;
    writeln!(
        out,
        "waiting: {} recordings ({}); due now: {} ({}){}",
        waiting.0,
        human_bytes(waiting.1),
        due_now,
        human_bytes(due_bytes),
        if pressure {
            " (spool below min_free: everything settled is due, largest first)"
        } else {
            ""
        }
    )?;
    let Some(first) = first.filter(|_| done > 0) else {
        writeln!(
            out,
            "drain: nothing archived in the last hour; time to clear unknown"
        )?;
        return Ok(());
    };
    // Over the last hour, or since archiving started if that is less.
    let span = (now - first.max(now - 3600)).max(60) as f64 / 3600.0;
    let (per_hour, bytes_per_hour) = (done as f64 / span, bytes as f64 / span);
    let clear = match waiting.0 {
        0 => "nothing waiting".to_string(),
        n => {
            let secs = (n as f64 / per_hour * 3600.0).ceil() as u64;
            format!(
                "about {} to clear what waits",
                humantime::format_duration(std::time::Duration::from_secs(
                    secs.max(60) - secs.max(60) % 60
                ))
            )
        }
    };
    writeln!(
        out,
        "drain: {:.0} recordings/h, {}/h over the last {} min; {clear}",
        per_hour,
        human_bytes(bytes_per_hour as u64),
        (span * 60.0).round() as u64
    )?;
    Ok(())
}

/// The five most recent errors.
fn last_errors(ledger: &Ledger, out: &mut impl Write) -> Result<(), Error> {
    let errors = ledger.recent_errors(5)?;
    if errors.is_empty() {
        writeln!(out, "last errors: none")?;
        return Ok(());
    }
    writeln!(out, "last errors:")?;
    for r in errors {
        writeln!(
            out,
            "  {} {} {}: {}",
            local_time(r.updated_at),
            r.state,
            display_name(&r.name),
            display_text(r.last_error.as_deref().unwrap_or(""))
        )?;
    }
    Ok(())
}

/// Where attribution from VICIdial's database stands, and why what waits waits.
fn vicidial_attribution(
    ledger: &Ledger,
    config: &Config,
    out: &mut impl Write,
) -> Result<(), Error> {
    let c = ledger.attribution_counts()?;
    let wait = config
        .retention
        .attribution_wait
        .map(|w| humantime::format_duration(w).to_string())
        .unwrap_or_default();
    writeln!(
        out,
        "VICIdial attribution: {} attributed ({} from archive tables), {} waiting ({} not asked yet, {} no recording_log row yet, {} database unavailable), {} gave up (no recording_log row within attribution_wait = {wait}), {} ambiguous (rows of the name that its times cannot tell apart: the file name's attribution stands)",
        c.done,
        c.from_archive,
        c.waiting(),
        c.not_asked,
        c.missing,
        c.failed,
        c.gave_up,
        c.ambiguous
    )?;
    if let Some(why) = c.last_failure.filter(|_| c.failed > 0) {
        writeln!(out, "  last database failure: {why}")?;
    }
    if let Some((name, why)) = c.last_ambiguous {
        writeln!(out, "  last ambiguous: {}: {why}", display_name(&name))?;
    }
    let l = ledger.location_counts()?;
    writeln!(
        out,
        "listen links in recording_log.location: {} written, {} waiting for the local copy to go, {} in progress, {} left alone (the row pointed elsewhere), {} restored",
        l.rewritten, l.waiting, l.rewriting, l.skipped, l.restored
    )?;
    Ok(())
}

/// How long ago `secs` was, to the minute.
fn age(secs: i64) -> String {
    let d = (now_secs() - secs).max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(d - d % 60)).to_string()
}

/// `status --fleet`: every box as the fleet's database has it. Exit 1 if
/// one is not heard from.
pub(super) async fn fleet(config: &Config, out: &mut impl Write) -> Result<ExitCode, Error> {
    if config.fleet.is_none() {
        return Err(Error::Usage(format!(
            "{}: --fleet needs [fleet] enabled; this box is on its own",
            config.source.display()
        )));
    }
    let catalog = super::catalog(config).await?;
    let boxes = catalog.overview().await?;
    let mut clean = true;
    for b in &boxes {
        clean &= b.reachable || b.forgotten.is_some();
        let heard = b
            .heartbeat
            .map(crate::units::local_time)
            .unwrap_or_else(|| "never".into());
        let state = match (b.forgotten, b.reachable) {
            (Some(_), _) => "forgotten",
            (None, true) => "reachable",
            (None, false) => "UNREACHABLE",
        };
        writeln!(
            out,
            "{}: {state}, recvault {}, heartbeat {heard}, {} waiting, last error: {}",
            b.host,
            b.version,
            b.waiting,
            b.last_errors.first().map(String::as_str).unwrap_or("none")
        )?;
        for s in &b.states {
            writeln!(
                out,
                "  {}: {} ({})",
                s.state,
                s.count,
                crate::units::human_bytes(s.bytes)
            )?;
        }
    }
    super::exit(clean)
}
