//! `GET /healthz` (is the ledger writable, the store reachable, the VICIdial
//! database reachable when configured: 200, or 503 naming what fails) and
//! `GET /metrics` (Prometheus text: the daemon's counters, and what the
//! ledger knows — recordings and bytes per state, the backlog and its oldest
//! recording's age, the attribution backlog — read at most every few
//! seconds however often it is scraped).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::State;
use super::body::Body;
use super::router::reply;
use crate::error::Error;
use crate::ledger::{Ledger, StateTotals};
use crate::metrics::metric;
use crate::recording::State as Step;
use crate::units::now_secs;

/// How long one health check may take.
const CHECK: Duration = Duration::from_secs(5);
/// How long the ledger's figures are reused between scrapes.
const LEDGER_FIGURES: Duration = Duration::from_secs(5);

/// The health checks, each `Ok` or what failed.
pub async fn healthz(state: &State) -> Response<Body> {
    let ledger = state.ledger.clone();
    let ledger_check = async {
        ledger
            .call(|l| l.touch_health(now_secs()))
            .await
            .map_err(|e| format!("not writable: {e}"))
    };
    let store_check = async {
        match &state.store {
            None => Ok(()),
            Some(store) => {
                let key = format!("{}.recvault-probe/healthz", state.store_prefix);
                store
                    .head(&key)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("unreachable: {e}"))
            }
        }
    };
    let db_check = async {
        match &state.db {
            None => Ok(()),
            Some(db) => db.ping().await.map_err(|e| format!("unreachable: {e}")),
        }
    };
    let (l, s, d) = tokio::join!(timed(ledger_check), timed(store_check), timed(db_check));
    let mut text = String::new();
    let mut healthy = true;
    for (part, result, configured) in [
        ("ledger", l, true),
        ("store", s, state.store.is_some()),
        ("database", d, state.db.is_some()),
    ] {
        let line = match (configured, result) {
            (false, _) => "not configured".to_string(),
            (true, Ok(())) => "ok".to_string(),
            (true, Err(e)) => {
                healthy = false;
                e
            }
        };
        let _ = writeln!(text, "{part}: {line}");
    }
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let head = if healthy { "ok" } else { "unhealthy" };
    reply(status, &format!("{head}\n{}", text.trim_end()))
}

/// `check`'s result, or a failure if it takes longer than [`CHECK`].
async fn timed(check: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::time::timeout(CHECK, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {CHECK:?}")))
}

/// The metrics page.
pub async fn metrics(state: &State) -> Response<Body> {
    let mut out = String::new();
    state.metrics.render(&mut out);
    match ledger_figures(state).await {
        Ok(figures) => out.push_str(&figures),
        Err(e) => tracing::warn!("metrics: cannot read the ledger: {e}"),
    }
    if let Some(cache) = &state.cache {
        let (files, bytes) = cache.usage();
        metric(
            &mut out,
            "recvault_playback_cache_bytes",
            "gauge",
            "Decoded recordings kept for playback.",
        );
        let _ = writeln!(out, "recvault_playback_cache_bytes {bytes}");
        metric(
            &mut out,
            "recvault_playback_cache_files",
            "gauge",
            "Decoded recordings kept for playback.",
        );
        let _ = writeln!(out, "recvault_playback_cache_files {files}");
    }
    let mut r = Response::new(Body::text(out));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// What the ledger knows, as metrics text (reused for a few seconds).
async fn ledger_figures(state: &State) -> Result<String, Error> {
    {
        let cached = state.figures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, text)) = cached.as_ref()
            && at.elapsed() < LEDGER_FIGURES
        {
            return Ok(text.clone());
        }
    }
    let attribution = state.db.is_some();
    let text = state
        .ledger
        .call(move |l| ledger_text(l, attribution))
        .await?;
    let mut cached = state.figures.lock().unwrap_or_else(|e| e.into_inner());
    *cached = Some((Instant::now(), text.clone()));
    Ok(text)
}

/// The ledger's figures as metrics text, read now; the attribution backlog
/// only when VICIdial's database is configured.
fn ledger_text(l: &Ledger, attribution: bool) -> Result<String, Error> {
    let mut out = String::new();
    let totals = l.totals()?;
    per_state(&mut out, &totals);
    backlog(&mut out, l, &totals)?;
    if attribution {
        metric(
            &mut out,
            "recvault_attribution_backlog",
            "gauge",
            "Recordings waiting for attribution from VICIdial's database.",
        );
        let _ = writeln!(
            out,
            "recvault_attribution_backlog {}",
            l.attribution_backlog()?
        );
    }
    Ok(out)
}

/// Recordings, original bytes and object bytes, per state (every state, zeros included).
fn per_state(out: &mut String, totals: &[(Step, StateTotals)]) {
    let figures = [
        ("recvault_recordings", "Recordings per state.", 0),
        (
            "recvault_recording_bytes",
            "Original bytes of recordings per state.",
            1,
        ),
        (
            "recvault_stored_bytes",
            "Object bytes of recordings per state.",
            2,
        ),
    ];
    for (name, help, which) in figures {
        metric(out, name, "gauge", help);
        for s in Step::ALL {
            let t = totals
                .iter()
                .find(|(st, _)| *st == s)
                .map(|(_, t)| t.clone())
                .unwrap_or_default();
            let v = [t.count, t.bytes, t.object_bytes][which];
            let _ = writeln!(out, "{name}{{state=\"{s}\"}} {v}");
        }
    }
}

/// How many recordings are not yet archived, and the oldest one's age.
fn backlog(out: &mut String, l: &Ledger, totals: &[(Step, StateTotals)]) -> Result<(), Error> {
    let waiting: u64 = totals
        .iter()
        .filter(|(s, _)| {
            matches!(
                s,
                Step::Seen | Step::Settled | Step::Compressed | Step::Uploaded | Step::Failed
            )
        })
        .map(|(_, t)| t.count)
        .sum();
    metric(
        out,
        "recvault_backlog_recordings",
        "gauge",
        "Recordings not yet archived.",
    );
    let _ = writeln!(out, "recvault_backlog_recordings {waiting}");
    let age = l
        .oldest_waiting()?
        .map(|r| (now_secs() - r.identity.mtime_ns.div_euclid(1_000_000_000)).max(0))
        .unwrap_or(0);
    metric(
        out,
        "recvault_backlog_oldest_age_seconds",
        "gauge",
        "Age of the oldest recording not yet archived.",
    );
    let _ = writeln!(out, "recvault_backlog_oldest_age_seconds {age}");
    Ok(())
}
