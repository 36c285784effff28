//! The audit trail: filter by user, action, recording, case and date; the
//! newest entries first; and whether each box's hash chain verifies.

use std::fmt::Write as _;

use http::{Response, StatusCode};

use super::errors::Problem;
use super::form::Form;
use super::html::{self, esc};
use super::{Console, Ctx, Role};
use crate::catalog::{AuditLine, AuditQuery, RecordingRef};
use crate::ledger::audit::Action;
use crate::serve::body::Body;
use crate::units::{local_time, parse_date, parse_date_end};

/// Entries shown at most.
const SHOWN: usize = 500;

fn query_of(q: &Form) -> Result<AuditQuery, Problem> {
    let action = match q.get("action") {
        "" => None,
        a if Action::ALL.iter().any(|x| x.as_str() == a) => Some(a.to_string()),
        a => return Err(Problem::bad(&format!("`{a}` is not an audit action"))),
    };
    let recording = match q.get("recording") {
        "" => None,
        r => Some(r.parse::<RecordingRef>().map_err(|e| Problem::bad(&e))?),
    };
    let date = |k: &str, end: bool| -> Result<Option<i64>, Problem> {
        match q.get(k) {
            "" => Ok(None),
            t if end => parse_date_end(t).map(Some).map_err(|e| Problem::bad(&e)),
            t => parse_date(t).map(Some).map_err(|e| Problem::bad(&e)),
        }
    };
    let none_if_empty = |k: &str| Some(q.get(k).to_string()).filter(|v| !v.is_empty());
    Ok(AuditQuery {
        user: none_if_empty("user"),
        action,
        recording,
        case: none_if_empty("case"),
        from: date("from", false)?,
        to: date("to", true)?,
        limit: SHOWN,
    })
}

/// `GET /console/audit`.
pub async fn page(console: &Console, ctx: &Ctx, q: &Form) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Compliance)?;
    let query = query_of(q)?;
    let found = console.catalog.audit(&query).await?;
    let mut main = String::new();
    for c in &found.chains {
        let notice = match &c.verified {
            Ok((n, head)) => html::notice(
                "ok",
                &format!(
                    "Audit chain of {}: verified, {n} entries, head <code>{}</code>.",
                    esc(&c.host),
                    esc(head)
                ),
            ),
            Err(e) => html::notice(
                "error",
                &format!("Audit chain of {}: BROKEN — {}", esc(&c.host), esc(e)),
            ),
        };
        main.push_str(&notice);
    }
    let mut actions: Vec<(&str, &str)> = vec![("", "any")];
    actions.extend(Action::ALL.iter().map(|a| (a.as_str(), a.as_str())));
    let _ = write!(
        main,
        "<form method=\"get\" action=\"/console/audit\"><div class=\"grid\">{}{}{}{}{}{}</div>\
         <button type=\"submit\">Filter</button></form>",
        html::input("user", "User contains", q.get("user"), ""),
        html::select("action", "Action", q.get("action"), &actions),
        html::input("recording", "Recording (HOST/ID)", q.get("recording"), ""),
        html::input("case", "Case", q.get("case"), ""),
        html::input("from", "From (YYYY-MM-DD)", q.get("from"), ""),
        html::input("to", "To (YYYY-MM-DD, included)", q.get("to"), ""),
    );
    if found.truncated {
        let _ = write!(
            main,
            "<p>Showing the newest {SHOWN} entries; narrow the filter to see older ones.</p>"
        );
    }
    main.push_str(&table(&found.lines));
    Ok(super::page(
        StatusCode::OK,
        html::page(Some(&ctx.viewer), "Audit trail", &main),
    ))
}

/// The entries as a table.
fn table(lines: &[AuditLine]) -> String {
    let mut main = String::new();
    main.push_str(
        "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">#</th><th scope=\"col\">When</th>\
         <th scope=\"col\">Who</th><th scope=\"col\">Action</th><th scope=\"col\">Case</th>\
         <th scope=\"col\">Subject</th><th scope=\"col\">Why / what</th></tr></thead><tbody>",
    );
    for l in lines {
        let _ = write!(
            main,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            l.id,
            esc(&local_time(l.at)),
            esc(&l.user),
            esc(&l.action),
            esc(l.case_id.as_deref().unwrap_or("")),
            esc(&l.subject),
            esc(&l.reason)
        );
    }
    if lines.is_empty() {
        main.push_str("<tr><td colspan=\"7\">No entry matches.</td></tr>");
    }
    main.push_str("</tbody></table></div>");
    main
}
