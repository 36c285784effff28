//! The daemon's side of `[vicidial] move_mix`: a pass over the MIX
//! directory when inotify says something there changed (Asterisk closing a
//! leg), when a waiting leg is due (finished, or given up on), and on the
//! spool's rescan interval in case inotify missed something. At each rescan
//! the crontabs are looked at again: if someone put
//! `AST_CRON_audio_1_move_mix.pl` back, mixing pauses (logged) until the line
//! is gone, so the two never take the same legs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::watch::SpoolWatch;
use crate::units::now_ns;
use crate::vicidial::move_mix::{MoveMix, cron};

/// The least time between two passes: a burst of events is one pass.
const SETTLE_EVENTS: Duration = Duration::from_millis(200);

/// Runs move_mix until `stop`.
pub(super) async fn run(mover: Arc<MoveMix>, rescan: Duration, stop: CancellationToken) {
    let dir = mover.config().dir.clone();
    match mover.start().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            files = n,
            "move_mix: removed the temporary files of an interrupted run"
        ),
        Err(e) => tracing::warn!("move_mix: cannot clean its temporary files: {e}"),
    }
    tracing::info!(
        dir = %dir.display(),
        done = %mover.config().done.display(),
        location = %mover.location("NAME"),
        "move_mix: mixing VICIdial's legs as they are finished"
    );
    let mut watch = SpoolWatch::start()
        .inspect_err(|e| tracing::warn!("move_mix: {e}; the MIX directory is only rescanned"))
        .ok();
    let mut next_rescan = Instant::now();
    let mut state = Quiet::default();
    let mut wake = Instant::now();
    loop {
        if Instant::now() >= next_rescan {
            if let Some(w) = watch.as_mut() {
                w.rewatch(std::slice::from_ref(&dir));
            }
            state.cron_blocked = cron_in_the_way(state.cron_blocked);
            next_rescan = Instant::now() + rescan;
        }
        if !state.cron_blocked && Instant::now() >= wake {
            wake = pass(&mover, &dir, &mut state).await.min(next_rescan);
        }
        let until = wake.min(next_rescan).max(Instant::now() + SETTLE_EVENTS);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(until) => {}
            Some(_) = next_event(&mut watch) => {
                // A burst of events (both legs closing) is one pass.
                tokio::time::sleep(SETTLE_EVENTS).await;
                if let Some(w) = watch.as_mut() {
                    while w.events.try_recv().is_ok() {}
                }
                wake = Instant::now();
            }
        }
    }
}

/// What is logged once until it changes.
#[derive(Default)]
struct Quiet {
    cron_blocked: bool,
    list_error: Option<String>,
}

/// One pass; returns when the next is due.
async fn pass(mover: &MoveMix, dir: &Path, state: &mut Quiet) -> Instant {
    match mover.pass().await {
        Ok(pass) => {
            if state.list_error.take().is_some() {
                tracing::info!(dir = %dir.display(), "move_mix: the MIX directory can be listed again");
            }
            match pass.next_due_ns {
                Some(due) => {
                    let wait = (due - now_ns()).max(0) as u64;
                    Instant::now() + Duration::from_nanos(wait)
                }
                None => Instant::now() + Duration::from_secs(24 * 3600),
            }
        }
        Err(e) => {
            let text = e.to_string();
            if state.list_error.as_deref() != Some(text.as_str()) {
                tracing::warn!(dir = %dir.display(), "move_mix: cannot list the MIX directory: {text}");
                state.list_error = Some(text);
            }
            Instant::now() + Duration::from_secs(5)
        }
    }
}

/// True (logged when it starts and ends) while a crontab runs the script.
fn cron_in_the_way(was: bool) -> bool {
    match cron::scan().refusal() {
        Some(refusal) => {
            if !was {
                tracing::error!("move_mix paused: {refusal}");
            }
            true
        }
        None => {
            if was {
                tracing::info!(
                    "move_mix: cron no longer runs AST_CRON_audio_1_move_mix.pl; mixing again"
                );
            }
            false
        }
    }
}

/// The next inotify event, or never without a watcher.
async fn next_event(watch: &mut Option<SpoolWatch>) -> Option<()> {
    match watch {
        Some(w) => w.events.recv().await.map(|_| ()),
        None => std::future::pending().await,
    }
}
