//! The overview: per box, recordings per state, the backlog, disk, the
//! store's health and the last errors; the retention policy in force, with
//! a preview of what a change would delete (and spare), and the change
//! itself where the policy is the catalog's to change (a fleet's; one box's
//! policy is its config file's, and the page says so).

use std::fmt::Write as _;

use http::{Response, StatusCode};

use super::errors::Problem;
use super::form::Form;
use super::html::{self, esc};
use super::{Console, Ctx, Role};
use crate::catalog::{BoxOverview, ImpactRow, RetentionChange};
use crate::config::Keep;
use crate::serve::body::Body;
use crate::units::{human_bytes, local_time};

/// `GET /console/overview`.
pub async fn page(console: &Console, ctx: &Ctx) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Listener)?;
    let boxes = console.catalog.overview().await?;
    let mut main = String::new();
    for b in &boxes {
        main.push_str(&box_html(b));
    }
    let view = console.catalog.retention().await?;
    let _ = write!(
        main,
        "<section aria-labelledby=\"h-ret\"><h2 id=\"h-ret\">Retention</h2><p>{} <small>({})</small></p>",
        esc(&view.rules.summary()),
        esc(&view.source)
    );
    if ctx.viewer.who.role >= Role::Compliance {
        let _ = write!(
            main,
            "<form method=\"get\" action=\"/console/retention/preview\"><div class=\"grid\">{}{}</div>\
             <button type=\"submit\">Preview the change</button></form>",
            html::input("campaign", "Campaign (empty: the default rule)", "", ""),
            html::input(
                "keep",
                "Keep (e.g. 90d, 7y, forever; empty: unset the campaign's rule)",
                "",
                ""
            ),
        );
    }
    main.push_str("</section>");
    Ok(super::page(
        StatusCode::OK,
        html::page(Some(&ctx.viewer), "Overview", &main),
    ))
}

/// One box: versions, backlog, disk, store, states, last errors.
fn box_html(b: &BoxOverview) -> String {
    let mut main = String::new();
    let _ = write!(
        main,
        "<section class=\"box\" aria-labelledby=\"h-{0}\"><h2 id=\"h-{0}\">{1}</h2>",
        esc(&b.host.replace(|c: char| !c.is_ascii_alphanumeric(), "-")),
        esc(&b.host)
    );
    let backlog = match b.oldest_waiting {
        Some(t) => format!("{} waiting, oldest from {}", b.waiting, local_time(t)),
        None => format!("{} waiting", b.waiting),
    };
    let disks: Vec<String> = b
        .disks
        .iter()
        .map(|d| {
            format!(
                "{}: {} free of {}",
                d.path,
                human_bytes(d.free),
                human_bytes(d.total)
            )
        })
        .collect();
    let store = format!(
        "{} — {} waiting on an outage, {} refused or unverified",
        b.store.name, b.store.unreachable_failures, b.store.refused_failures
    );
    main.push_str(&html::facts(&[
        ("recvault", esc(&b.version)),
        ("Backlog", esc(&backlog)),
        ("Disk", esc(&disks.join("; "))),
        ("Store", esc(&store)),
        (
            "Heard from",
            if b.reachable {
                "yes".into()
            } else {
                "no".into()
            },
        ),
    ]));
    main.push_str(&states_html(b));
    if !b.last_errors.is_empty() {
        main.push_str("<h3>Last errors</h3><ul>");
        for e in &b.last_errors {
            let _ = write!(main, "<li>{}</li>", esc(e));
        }
        main.push_str("</ul>");
    }
    main.push_str("</section>");
    main
}

/// Recordings per state.
fn states_html(b: &BoxOverview) -> String {
    let mut main = String::new();
    main.push_str("<div class=\"scroll\"><table><thead><tr><th scope=\"col\">State</th><th scope=\"col\">Recordings</th><th scope=\"col\">Bytes</th><th scope=\"col\">In the store</th></tr></thead><tbody>");
    for s in &b.states {
        let _ = write!(
            main,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.state),
            s.count,
            esc(&human_bytes(s.bytes)),
            esc(&human_bytes(s.object_bytes))
        );
    }
    main.push_str("</tbody></table></div>");
    main
}

fn change_of(q: &Form) -> Result<RetentionChange, Problem> {
    let campaign = Some(q.get("campaign").to_string()).filter(|c| !c.is_empty());
    let keep = match q.get("keep") {
        "" if campaign.is_none() => {
            return Err(Problem::bad(
                "the default rule cannot be unset: give a period or `forever`",
            ));
        }
        "" => None,
        k => Some(Keep::parse(k).map_err(|e| Problem::bad(&e))?),
    };
    Ok(RetentionChange { campaign, keep })
}

fn rows(rows: &[ImpactRow]) -> String {
    let mut out = String::from(
        "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Box</th><th scope=\"col\">Campaign</th>\
         <th scope=\"col\">Due</th><th scope=\"col\">Recordings</th><th scope=\"col\">Bytes</th><th scope=\"col\">Held</th></tr></thead><tbody>",
    );
    for r in rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.host),
            esc(r.campaign.as_deref().unwrap_or("(none)")),
            esc(&r.due.map(local_time).unwrap_or_else(|| "next sweep".into())),
            r.recordings,
            esc(&human_bytes(r.bytes)),
            r.held
        );
    }
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"6\">None.</td></tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// `GET /console/retention/preview?campaign=&keep=`.
pub async fn retention_preview(
    console: &Console,
    ctx: &Ctx,
    q: &Form,
) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Compliance)?;
    let change = change_of(q)?;
    let impact = console.catalog.retention_preview(&change).await?;
    let view = console.catalog.retention().await?;
    let (now_n, now_b) = impact.due_now();
    let mut main = format!(
        "{}<p>From <code>{}</code> to <code>{}</code>.</p><p class=\"preview\" role=\"status\">At the next sweep this change deletes \
         <strong>{now_n}</strong> recording(s) ({}) that the policy in force keeps; held recordings are never deleted.</p>\
         <h2>Deleted sooner (next year)</h2>{}<h2>Kept longer</h2>{}",
        html::notice("warn", "Nothing is changed yet."),
        esc(&impact.before),
        esc(&impact.after),
        esc(&human_bytes(now_b)),
        rows(&impact.sooner),
        rows(&impact.spared),
    );
    if !view.editable {
        let _ = write!(
            main,
            "<p>The policy in force is {}: change it there (recvault never writes its config).</p>",
            esc(&view.source)
        );
    } else if ctx.viewer.who.role >= Role::Admin {
        let fields = html::hidden([("campaign", q.get("campaign")), ("keep", q.get("keep"))]);
        main.push_str(&ctx.viewer.post_form(
            "/console/retention/apply",
            &fields,
            "Apply this change",
            "danger",
        ));
    }
    Ok(super::page(
        StatusCode::OK,
        html::page(Some(&ctx.viewer), "Retention change: preview", &main),
    ))
}

/// `POST /console/retention/apply` (admins; refused where the policy is a config file's).
pub async fn retention_apply(
    console: &Console,
    ctx: &Ctx,
    f: &Form,
) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Admin)?;
    let change = change_of(f)?;
    let view = console
        .catalog
        .retention_apply(&ctx.viewer.who.actor(), &change)
        .await?;
    let main = html::notice(
        "ok",
        &format!("Retention is now {}.", esc(&view.rules.summary())),
    );
    Ok(super::page(
        StatusCode::OK,
        html::page(Some(&ctx.viewer), "Retention changed", &main),
    ))
}
