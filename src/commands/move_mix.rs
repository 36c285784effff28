//! `[vicidial] move_mix` as the operator sees it: `recvault vicidial
//! cron-check` (the unit's privileged `ExecStartPre`: refuses while a
//! crontab still runs `AST_CRON_audio_1_move_mix.pl`), the same refusal
//! when the daemon starts, what `check` says it will do, and its part of
//! `status`.

use std::io::Write;
use std::process::ExitCode;

use crate::config::{Config, MoveMixConfig};
use crate::error::Error;
use crate::ledger::Ledger;
use crate::ledger::move_mix::MixEvent;
use crate::units::{local_time, now_ns};
use crate::vicidial::move_mix::{self, cron};

fn move_mix_of(config: &Config) -> Option<&MoveMixConfig> {
    config.vicidial.as_ref().and_then(|v| v.move_mix.as_ref())
}

/// `recvault vicidial cron-check`: exit 1 naming each crontab line that
/// runs the script (or each crontab it cannot read) while move_mix is on.
pub(super) fn cron_check(config: &Config, out: &mut impl Write) -> Result<ExitCode, Error> {
    if move_mix_of(config).is_none() {
        writeln!(
            out,
            "[vicidial] move_mix is off: cron may run AST_CRON_audio_1_move_mix.pl"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let scan = cron::scan();
    if let Some(refusal) = scan.refusal() {
        return Err(Error::Local(refusal));
    }
    if !scan.unreadable.is_empty() {
        for (file, e) in &scan.unreadable {
            writeln!(out, "cannot read {}: {e}", file.display())?;
        }
        writeln!(
            out,
            "whether cron still runs AST_CRON_audio_1_move_mix.pl is not known (run this as root)"
        )?;
        return Ok(ExitCode::from(1));
    }
    writeln!(out, "no crontab runs AST_CRON_audio_1_move_mix.pl")?;
    Ok(ExitCode::SUCCESS)
}

/// Before the daemon starts: the refusal, if a crontab still runs the
/// script. Crontabs it cannot read (root's, as the `recvault` user) are
/// named in the log: the unit's `ExecStartPre` checked them as root.
pub(super) fn refuse_if_cron_runs_script(config: &Config) -> Result<(), Error> {
    if move_mix_of(config).is_none() {
        return Ok(());
    }
    let scan = cron::scan();
    if let Some(refusal) = scan.refusal() {
        return Err(Error::Local(refusal));
    }
    for (file, e) in &scan.unreadable {
        tracing::info!(
            file = %file.display(),
            "cannot read this crontab ({e}) to see whether it runs AST_CRON_audio_1_move_mix.pl; `recvault vicidial cron-check` (the unit's ExecStartPre, as root) did"
        );
    }
    Ok(())
}

/// What `check` says move_mix will do, and whether cron is in its way.
pub(super) fn check_lines(config: &Config, out: &mut impl Write) -> Result<(), Error> {
    let (Some(mm), Some(vc)) = (move_mix_of(config), config.vicidial.as_ref()) else {
        return Ok(());
    };
    let scheme = if mm.https { "https" } else { "http" };
    writeln!(
        out,
        "move_mix: legs NAME-in.wav + NAME-out.wav in {} mixed into {}/NAME-all.wav once untouched for {}, the legs moved to {}; recording_log.location = {scheme}://{}/RECORDINGS/NAME-all.wav; a leg not mixed {} after its last write goes to ORIG unmixed",
        mm.dir.display(),
        mm.done.display(),
        humantime::format_duration(config.spool.settle),
        mm.orig().display(),
        vc.db.server_ip,
        humantime::format_duration(mm.orphan_after),
    )?;
    if !mm.dir.is_dir() {
        writeln!(
            out,
            "warning: move_mix: {} does not exist (yet)",
            mm.dir.display()
        )?;
    }
    let scan = cron::scan();
    if let Some(refusal) = scan.refusal() {
        return Err(Error::Local(refusal));
    }
    for (file, e) in &scan.unreadable {
        writeln!(
            out,
            "warning: move_mix: cannot read {} ({e}); `recvault vicidial cron-check` as root checks it",
            file.display()
        )?;
    }
    Ok(())
}

/// move_mix's lines in `status`: what waits in MIX now, and what was done.
pub(super) fn status_lines(
    config: &Config,
    ledger: &Ledger,
    out: &mut impl Write,
) -> Result<(), Error> {
    let Some(mm) = move_mix_of(config) else {
        return Ok(());
    };
    match move_mix::survey(&mm.dir) {
        Ok(s) => {
            let oldest = s
                .oldest_ns
                .map(|ns| format!(", oldest written {} ago", ago(ns)))
                .unwrap_or_default();
            writeln!(
                out,
                "move_mix {}: {} pairs and {} legs without their partner waiting{oldest}; {} other files (never touched)",
                mm.dir.display(),
                s.pairs,
                s.lone,
                s.others
            )?;
        }
        Err(e) => writeln!(out, "move_mix {}: cannot list: {e}", mm.dir.display())?,
    }
    let tally = ledger.mix_tally()?;
    let of = |event| tally.iter().find(|t| t.event == event);
    let line = |event, what: &str| match of(event) {
        Some(t) => format!("{} {what} (last {})", t.count, local_time(t.last_at)),
        None => format!("0 {what}"),
    };
    writeln!(
        out,
        "move_mix done: {}; {}; {}",
        line(MixEvent::Mixed, "pairs mixed"),
        line(
            MixEvent::Unmixed,
            "legs moved to ORIG unmixed (no partner, audio recvault cannot mix, or the name taken; names in the log)"
        ),
        line(MixEvent::NoRow, "mixes without a recording_log row"),
    )?;
    Ok(())
}

/// How long ago `ns` was, to the second.
fn ago(ns: i64) -> String {
    let secs = ((now_ns() - ns) / 1_000_000_000).max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}
