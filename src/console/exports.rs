//! Exports: the compliance role starts one from a search's results or a
//! hold case, with a reason; the job is made in the background
//! (`export_jobs`) and its page shows a progress bar that refreshes itself
//! (an HTTP-equiv refresh: no script), then the download — the same zip
//! `recvault export` writes. Starting, finishing and every download are in
//! the audit trail with the user, the address and the reason; the trail
//! names people's numbers only by their pseudonyms.

use std::fmt::Write as _;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use tokio::io::AsyncReadExt;

use super::errors::Problem;
use super::form::Form;
use super::html::{self, esc};
use super::{Console, Ctx, Role, redirect, search};
use crate::catalog::{Paging, Search, StateFilter};
use crate::config::ReasonRule;
use crate::governance::requests::for_audit;
use crate::ledger::audit::{Action, NewEntry};
use crate::ledger::console_exports::{ExportJob, JobState};
use crate::recording::pseudonym::PseudonymKey;
use crate::serve::body::Body;
use crate::units::{human_bytes, local_time, now_secs};

/// The longest reason kept.
const MAX_REASON: usize = 300;
/// Jobs the list shows.
const LISTED: u32 = 50;
/// The most recordings one export from the console may hold (its zip
/// goes beside the ledger; bigger ones are `recvault export`'s, to a disk
/// the operator chooses).
const MAX_RECORDINGS: u64 = 10_000;
/// Seconds between refreshes of an unfinished job's page.
const REFRESH: u32 = 2;

/// What `s` selects, as the audit trail may say it: numbers, leads and
/// names as pseudonyms (`key`), or only how many selectors without one.
pub(super) fn describe(s: &Search, key: Option<&PseudonymKey>) -> String {
    let mut parts = Vec::new();
    if let Some(case) = &s.case {
        parts.push(format!("hold case {case}"));
    }
    if !s.selectors.is_empty() {
        parts.push(match key {
            Some(k) => for_audit(&s.selectors, k),
            None => format!("{} selector(s)", s.selectors.len()),
        });
    }
    match s.state {
        None => {}
        Some(StateFilter::State(st)) => parts.push(format!("state {}", st.as_str())),
        Some(StateFilter::Ledger(st)) => parts.push(format!("ledger state {}", st.as_str())),
        Some(StateFilter::Erasing) => parts.push("being erased".into()),
        Some(StateFilter::Erased) => parts.push("erased".into()),
    }
    match s.held {
        None => {}
        Some(true) => parts.push("held".into()),
        Some(false) => parts.push("not held".into()),
    }
    match parts.is_empty() {
        true => "every recording".into(),
        false => parts.join(", "),
    }
}

/// The reason a form gives: required or optional by `[console] reason`.
pub(super) fn reason_of(console: &Console, f: &Form, what: &str) -> Result<String, Problem> {
    let why = f.get("reason");
    if why.chars().count() > MAX_REASON {
        return Err(Problem::bad("the reason is longer than 300 characters"));
    }
    if why.is_empty() {
        if console.config.reason == ReasonRule::Required {
            return Err(Problem::bad(&format!(
                "say why you {what}: the reason is required here (go back and type it)"
            )));
        }
        return Ok("no reason given".into());
    }
    Ok(why.to_string())
}

/// The reason input of a form (`what`: "downloading", "exporting").
pub(super) fn reason_input(console: &Console, id: &str, what: &str) -> String {
    let required = console.config.reason == ReasonRule::Required;
    let label = format!(
        "Why are you {what}? ({}, recorded in the audit trail)",
        if required { "required" } else { "optional" }
    );
    let extra = format!(
        "maxlength=\"{MAX_REASON}\"{}",
        if required { " required" } else { "" }
    );
    html::input_as(id, "reason", &label, "", &extra)
}

/// Writes a download into the audit trail: who (with the address), what, why.
pub(super) async fn audit_download(
    console: &Console,
    ctx: &Ctx,
    subject: String,
    reason: String,
) -> Result<(), Problem> {
    let actor = ctx.viewer.who.actor();
    console
        .ledger
        .call(move |l| {
            let entry = NewEntry {
                action: Action::Download,
                case_id: None,
                subject: &subject,
                reason: &reason,
                recording_id: None,
            };
            l.audit_record(&actor, now_secs(), &entry)
        })
        .await
        .map(drop)
        .map_err(|e| {
            tracing::warn!("console: cannot audit a download: {e}");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the download could not be written to the audit trail, so it was not served; try again",
            )
        })
}

/// The form starting an export of the search in `q` (on the search page).
pub(super) fn start_form(console: &Console, ctx: &Ctx, q: &Form, total: u64) -> String {
    if ctx.viewer.who.role < Role::Compliance || total == 0 {
        return String::new();
    }
    if total > MAX_RECORDINGS {
        return format!(
            "<p class=\"hint\">Too many to export from the console ({total}; at most {MAX_RECORDINGS}): \
             narrow the search, or run <code>recvault export</code> on the box.</p>"
        );
    }
    let fields = html::hidden(search::KEYS[..9].iter().map(|k| (*k, q.get(k))))
        + &reason_input(console, "export-reason", "exporting these recordings");
    let button = format!(
        "Export {total} recording{} as a zip",
        if total == 1 { "" } else { "s" }
    );
    ctx.viewer
        .post_form("/console/exports/start", &fields, &button, "export")
}

fn jobs_of(console: &Console) -> Result<&std::sync::Arc<super::export_jobs::ExportJobs>, Problem> {
    console.jobs.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "exports are unavailable: the pseudonym key beside the ledger could not be read (the daemon's log says why)",
        )
    })
}

/// What an export form asks to export: a hold case, else a search; refused
/// over [`MAX_RECORDINGS`].
async fn wanted(console: &Console, f: &Form) -> Result<Search, Problem> {
    let search = match f.get("case") {
        "" => {
            let (s, _, _) = search::search_of(f)?;
            Search {
                paging: Search::default().paging,
                ..s
            }
        }
        case => {
            // Refused (404) for a case without holds.
            console.catalog.holds(Some(case)).await?;
            Search {
                case: Some(case.to_string()),
                ..Search::default()
            }
        }
    };
    let first = Search {
        paging: Paging::Offset {
            offset: 0,
            limit: 1,
        },
        ..search.clone()
    };
    let matched = console.catalog.search(&first).await?.total.unwrap_or(0);
    if matched > MAX_RECORDINGS {
        return Err(Problem::bad(&format!(
            "this would export {matched} recordings; the console exports at most {MAX_RECORDINGS} at once \
             (narrow the search, or run `recvault export` on the box)"
        )));
    }
    Ok(search)
}

/// `POST /console/exports/start`: queues the job (and says so in the
/// audit trail, with who and why); its page follows it.
pub async fn start(console: &Console, ctx: &Ctx, f: &Form) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Compliance)?;
    let jobs = jobs_of(console)?;
    let reason = reason_of(console, f, "are exporting")?;
    let search = wanted(console, f).await?;
    let what = describe(&search, Some(jobs.key()));
    let json = serde_json::to_string(&search)
        .map_err(|_| Problem::bad("this search cannot be exported"))?;
    let who = ctx.viewer.who.label();
    let actor = ctx.viewer.who.actor();
    let id = console
        .ledger
        .call(move |l| {
            let id = l.export_job_add(&who, now_secs(), &reason, &what, &json)?;
            let entry = NewEntry {
                action: Action::Export,
                case_id: None,
                subject: &format!("console export job {id} queued: {what}"),
                reason: &reason,
                recording_id: None,
            };
            l.audit_record(&actor, now_secs(), &entry)?;
            Ok::<_, crate::ledger::LedgerError>(id)
        })
        .await
        .map_err(|e| {
            tracing::warn!("console: cannot queue an export: {e}");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the ledger is busy; try again",
            )
        })?;
    jobs.queued();
    tracing::info!(job = id, user = %ctx.viewer.who.key(), "console: export queued");
    Ok(redirect(&format!("/console/exports/{id}")))
}

fn job_id(id: &str) -> Result<i64, Problem> {
    id.parse().map_err(|_| Problem::not_found("no such export"))
}

async fn job(console: &Console, id: i64) -> Result<ExportJob, Problem> {
    console
        .ledger
        .call(move |l| l.export_job(id))
        .await
        .map_err(|e| {
            tracing::warn!("console: {e}");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the ledger is busy; try again",
            )
        })?
        .ok_or_else(|| Problem::not_found("no such export"))
}

/// A job's state in words, with its progress bar while it runs.
fn progress_html(j: &ExportJob) -> String {
    match j.state {
        JobState::Queued => "<p role=\"status\">Waiting to start.</p>".into(),
        JobState::Running => {
            let pct = match j.total_bytes {
                0 => 0,
                t => (j.bytes.saturating_mul(100) / t).min(100),
            };
            format!(
                "<p role=\"status\"><label for=\"progress\">{} of {} recordings, {} of {} ({pct}%)</label></p>\
                 <progress id=\"progress\" max=\"100\" value=\"{pct}\">{pct}%</progress>",
                j.done,
                j.total,
                esc(&human_bytes(j.bytes)),
                esc(&human_bytes(j.total_bytes))
            )
        }
        JobState::Done => format!(
            "<p role=\"status\">Done {}: {} of {} recordings exported, {} failed, {} with nothing left to export.</p>",
            esc(&j.finished_at.map(local_time).unwrap_or_default()),
            j.exported,
            j.total,
            j.failed,
            j.gone
        ),
        JobState::Failed => format!(
            "<p role=\"alert\">Failed: {}.</p>",
            esc(j.error.as_deref().unwrap_or("unknown"))
        ),
        JobState::Expired => {
            "<p>Expired: its zip was removed a day after it was made. Start it again if it is still needed.</p>".into()
        }
    }
}

/// `GET /console/exports/ID`: the job, refreshing itself while unfinished.
pub async fn page(console: &Console, ctx: &Ctx, id: &str) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Compliance)?;
    let j = job(console, job_id(id)?).await?;
    let mut main = html::facts(&[
        ("Export", j.id.to_string()),
        ("Of", esc(&j.what)),
        ("Asked by", esc(&j.created_by)),
        ("When", esc(&local_time(j.created_at))),
        ("Reason", esc(&j.reason)),
        ("State", j.state.as_str().to_string()),
    ]);
    main.push_str(&progress_html(&j));
    if j.state == JobState::Done {
        main.push_str(&download_html(console, &j));
    }
    main.push_str("<p><a href=\"/console/exports\">Every export</a></p>");
    let title = format!("Export {}", j.id);
    let body = match j.state.unfinished() {
        true => html::page_refreshing(Some(&ctx.viewer), &title, &main, REFRESH),
        false => html::page(Some(&ctx.viewer), &title, &main),
    };
    Ok(super::page(StatusCode::OK, body))
}

fn download_html(console: &Console, j: &ExportJob) -> String {
    let Some(size) = j.zip_size else {
        return "<p>No recording matched: there is nothing to download.</p>".into();
    };
    format!(
        "<form method=\"get\" action=\"/console/exports/{}/download\" class=\"download\">{}\
         <button type=\"submit\">Download the zip ({})</button></form>\
         <p class=\"hint\">Each recording in it is proven against its SHA-256 (listed in SHA256SUMS); \
         recordings.csv says what became of every one.</p>",
        j.id,
        reason_input(console, "download-reason", "downloading this export"),
        esc(&human_bytes(size))
    )
}

/// `GET /console/exports`: every recent job, and a hold case's export.
pub async fn list(console: &Console, ctx: &Ctx) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Compliance)?;
    let jobs = console
        .ledger
        .call(|l| l.export_jobs(LISTED))
        .await
        .map_err(|e| {
            tracing::warn!("console: {e}");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the ledger is busy; try again",
            )
        })?;
    let fields = html::input("case", "Hold case", "", "required maxlength=\"100\"")
        + &reason_input(console, "case-reason", "exporting this case");
    let mut main = format!(
        "<section aria-labelledby=\"h-case\"><h2 id=\"h-case\">Export a hold case</h2>\
         <p class=\"hint\">To export a search's results, search first and use the export button under them.</p>{}</section>\
         <section aria-labelledby=\"h-jobs\"><h2 id=\"h-jobs\">Exports</h2><div class=\"scroll\"><table><thead><tr>\
         <th scope=\"col\">Export</th><th scope=\"col\">Of</th><th scope=\"col\">Asked by</th>\
         <th scope=\"col\">When</th><th scope=\"col\">State</th></tr></thead><tbody>",
        ctx.viewer.post_form(
            "/console/exports/start",
            &fields,
            "Export the case",
            "export"
        )
    );
    for j in &jobs {
        let state = match j.state {
            JobState::Running if j.total > 0 => format!("running, {} of {}", j.done, j.total),
            s => s.as_str().to_string(),
        };
        let _ = write!(
            main,
            "<tr><td><a href=\"/console/exports/{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td></tr>",
            j.id,
            esc(&j.what),
            esc(&j.created_by),
            esc(&local_time(j.created_at)),
            esc(&state)
        );
    }
    if jobs.is_empty() {
        main.push_str("<tr><td colspan=\"5\">No export yet.</td></tr>");
    }
    main.push_str("</tbody></table></div></section>");
    let body = match jobs.iter().any(|j| j.state.unfinished()) {
        true => html::page_refreshing(Some(&ctx.viewer), "Exports", &main, REFRESH * 5),
        false => html::page(Some(&ctx.viewer), "Exports", &main),
    };
    Ok(super::page(StatusCode::OK, body))
}

/// `GET /console/exports/ID/download?reason=…`: the zip, audited first.
pub async fn download(
    console: &Console,
    ctx: &Ctx,
    id: &str,
    q: &Form,
) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Compliance)?;
    let jobs = jobs_of(console)?;
    let id = job_id(id)?;
    // A zip an erasure may have reached into is never served.
    jobs.expire().await;
    let j = job(console, id).await?;
    if j.state != JobState::Done || j.zip_size.is_none() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            &format!(
                "export {} has no zip to download ({})",
                j.id,
                j.state.as_str()
            ),
        ));
    }
    let reason = reason_of(console, q, "are downloading it")?;
    let path = jobs.zip_path(j.id);
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        tracing::warn!(job = j.id, "console export zip {}: {e}", path.display());
        Problem::new(StatusCode::GONE, "this export's zip is no longer there")
    })?;
    let subject = format!("console export job {} zip: {}", j.id, j.what);
    audit_download(console, ctx, subject, reason).await?;
    let mut r = Response::new(streamed(file));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"recvault-export-{}.zip\"",
        j.id
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// The rest of `file`, read by a task of its own as the client takes it.
fn streamed(mut file: tokio::fs::File) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match file.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => {
                    if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // The download ends short: the zip's own directory is then unreadable.
                    tracing::warn!("console export download cut short: {e}");
                    return;
                }
            }
        }
    });
    Body::Chunks(rx)
}
