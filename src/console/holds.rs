//! Holds: every case with its reason, who, when and how many recordings it
//! covers (on which boxes); a new hold previewed — how many recordings and
//! which boxes — before it is placed; a release asked by one person and
//! confirmed by a second (the two-person rule, `pending`), or by an admin
//! alone where `[console] two_person = false`.

use std::fmt::Write as _;

use http::{Response, StatusCode};

use super::errors::Problem;
use super::form::Form;
use super::html::{self, esc, query};
use super::pending::{Change, Waiting};
use super::{Console, Ctx, Role, search};
use crate::catalog::{Coverage, ErasureConfirmation, HoldInfo, NewHold, Selector};
use crate::serve::body::Body;
use crate::units::{local_time, now_secs};

const FIELDS: [&str; 8] = [
    "case",
    "reason",
    "phone",
    "agent",
    "campaign",
    "recording",
    "from",
    "to",
];

fn coverage_html(c: &Coverage) -> String {
    let boxes: Vec<String> = c
        .per_host
        .iter()
        .map(|(h, n)| format!("{} on {}", n, esc(h)))
        .collect();
    let mut out = format!(
        "<strong>{}</strong> recording{}",
        c.recordings,
        if c.recordings == 1 { "" } else { "s" }
    );
    if !boxes.is_empty() {
        let _ = write!(out, " ({})", boxes.join(", "));
    }
    if c.being_deleted > 0 {
        let _ = write!(
            out,
            "; {} of them were already being deleted before the hold and go anyway",
            c.being_deleted
        );
    }
    out
}

/// The waiting changes of one kind, with confirm and cancel buttons for
/// whoever may press them.
pub(super) fn waiting_html(console: &Console, ctx: &Ctx, erasures: bool) -> String {
    let waiting: Vec<Waiting> = console
        .pending
        .list(now_secs())
        .into_iter()
        .filter(|w| matches!(w.change, Change::Erasure { .. }) == erasures)
        .collect();
    let mut out = String::from(
        "<section aria-labelledby=\"h-waiting\"><h2 id=\"h-waiting\">Waiting for a second person</h2>",
    );
    if waiting.is_empty() {
        out.push_str("<p>Nothing waits.</p></section>");
        return out;
    }
    out.push_str("<ul class=\"waiting\">");
    let me = ctx.viewer.who.key();
    for w in waiting {
        let detail = match &w.change {
            Change::Release { reason, .. } => format!("reason: {}", esc(reason)),
            Change::Erasure { summary, .. } => esc(summary),
        };
        let _ = write!(
            out,
            "<li><strong>{}</strong> — {detail}; asked by {} on {}, expires {}. ",
            esc(&w.change.title()),
            esc(&w.by.label()),
            esc(&local_time(w.at)),
            esc(&local_time(w.expires))
        );
        let action = format!("/console/pending/{}/", w.id);
        if w.by.key() == me {
            out.push_str("<em>A second person with the admin role must confirm it.</em>");
        } else if ctx.viewer.who.role >= Role::Admin {
            out.push_str(&ctx.viewer.post_form(
                &format!("{action}approve"),
                "",
                "Confirm",
                "inline",
            ));
        }
        if w.by.key() == me || ctx.viewer.who.role >= Role::Admin {
            out.push_str(
                &ctx.viewer
                    .post_form(&format!("{action}cancel"), "", "Cancel", "inline"),
            );
        }
        out.push_str("</li>");
    }
    out.push_str("</ul></section>");
    out
}

/// `GET /console/holds`.
pub async fn page(console: &Console, ctx: &Ctx, q: &Form) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Compliance)?;
    let holds = console.catalog.holds(None).await?;
    let waiting = console.pending.list(now_secs());
    let mut main = waiting_html(console, ctx, false);
    main.push_str("<section aria-labelledby=\"h-new\"><h2 id=\"h-new\">Place a hold</h2>");
    main.push_str(&new_form(q));
    main.push_str("</section><section aria-labelledby=\"h-cases\"><h2 id=\"h-cases\">Holds</h2>");
    main.push_str(
        "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Case</th><th scope=\"col\">Covers</th>\
         <th scope=\"col\">Selectors</th><th scope=\"col\">Reason</th><th scope=\"col\">Placed</th>\
         <th scope=\"col\">Status</th></tr></thead><tbody>",
    );
    for h in &holds {
        let covers = h.coverage.as_ref().map(coverage_html).unwrap_or_default();
        let status = match (&h.released_at, &h.released_by) {
            (Some(at), by) => format!(
                "released {} by {} ({})",
                esc(&local_time(*at)),
                esc(by.as_deref().unwrap_or("?")),
                esc(h.release_reason.as_deref().unwrap_or(""))
            ),
            (None, _) => format!("active {}", release_html(console, ctx, &waiting, h)),
        };
        let _ = write!(
            main,
            "<tr><td><strong>{}</strong></td><td>{covers}</td><td>{}</td><td>{}</td><td>{} by {}</td><td>{status}</td></tr>",
            esc(&h.case_id),
            esc(&h.describe()),
            esc(&h.reason),
            esc(&local_time(h.created_at)),
            esc(&h.created_by),
        );
    }
    if holds.is_empty() {
        main.push_str("<tr><td colspan=\"6\">No hold has been placed.</td></tr>");
    }
    main.push_str("</tbody></table></div></section>");
    Ok(super::page(
        StatusCode::OK,
        html::page(Some(&ctx.viewer), "Legal holds", &main),
    ))
}

/// An active hold's release: the form asking for it, or, while a release
/// of its case already waits for a second person, that request (asking
/// twice would only be refused).
fn release_html(console: &Console, ctx: &Ctx, waiting: &[Waiting], h: &HoldInfo) -> String {
    let asked = waiting
        .iter()
        .find(|w| matches!(&w.change, Change::Release { case, .. } if *case == h.case_id));
    if let Some(w) = asked {
        return format!(
            "<p class=\"pending\">release asked by {} on {}; waits for a second person until {} \
             (<a href=\"#h-waiting\">see it above</a>)</p>",
            esc(&w.by.label()),
            esc(&local_time(w.at)),
            esc(&local_time(w.expires))
        );
    }
    let fields = html::hidden([("case", h.case_id.as_str())])
        + &format!(
            "<label for=\"release-{0}\">Why release it</label>\
             <input id=\"release-{0}\" name=\"reason\" required maxlength=\"500\">",
            h.id
        );
    let label = if console.config.two_person {
        "Ask to release"
    } else {
        "Release"
    };
    ctx.viewer
        .post_form("/console/holds/release", &fields, label, "release")
}

fn new_form(q: &Form) -> String {
    format!(
        "<form method=\"get\" action=\"/console/holds/preview\" class=\"hold\">\
         <div class=\"grid\">{}{}{}{}{}{}{}{}</div>\
         <p class=\"hint\">Selectors of one kind are alternatives; a recording must match every kind given. \
         Recordings that arrive later are covered too.</p>\
         <button type=\"submit\">Preview what it covers</button></form>",
        html::input("case", "Case", q.get("case"), "required maxlength=\"100\""),
        html::input(
            "reason",
            "Reason",
            q.get("reason"),
            "required maxlength=\"500\""
        ),
        html::input(
            "phone",
            "Phone (any format)",
            q.get("phone"),
            "inputmode=\"tel\""
        ),
        html::input("agent", "Agent", q.get("agent"), ""),
        html::input("campaign", "Campaign", q.get("campaign"), ""),
        html::input(
            "recording",
            "Recording (id or file name)",
            q.get("recording"),
            ""
        ),
        html::input("from", "From (YYYY-MM-DD)", q.get("from"), ""),
        html::input("to", "To (YYYY-MM-DD, included)", q.get("to"), ""),
    )
}

/// The hold a form asks for.
fn new_hold(f: &Form) -> Result<NewHold, Problem> {
    let (case, reason) = (f.get("case"), f.get("reason"));
    if case.is_empty() || case.chars().count() > 100 {
        return Err(Problem::bad("a hold needs a case (at most 100 characters)"));
    }
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(Problem::bad(
            "a hold needs a reason (at most 500 characters)",
        ));
    }
    if !f.all("lead").is_empty() {
        return Err(Problem::bad(
            "holds select by phone, agent, campaign, recording or dates, not lead",
        ));
    }
    let selectors: Vec<Selector> = search::selectors(f)?;
    if selectors.is_empty() {
        return Err(Problem::bad(
            "give at least one selector (phone, agent, campaign, recording, from/to): a hold on everything is not a hold",
        ));
    }
    Ok(NewHold {
        case_id: case.to_string(),
        reason: reason.to_string(),
        selectors,
    })
}

/// `GET /console/holds/preview`: what the hold would cover; the button that places it.
pub async fn preview(console: &Console, ctx: &Ctx, q: &Form) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Compliance)?;
    let hold = match new_hold(q) {
        Ok(h) => h,
        Err(p) => {
            let main = html::notice("error", &esc(&p.message)) + &new_form(q);
            let body = html::page(Some(&ctx.viewer), "Place a hold", &main);
            return Ok(super::page(StatusCode::BAD_REQUEST, body));
        }
    };
    let coverage = console.catalog.hold_preview(&hold.selectors).await?;
    let fields = html::hidden(FIELDS.iter().map(|k| (*k, q.get(k))));
    let main = format!(
        "{}<p>Case <strong>{}</strong>, {}.</p><p class=\"preview\" role=\"status\">Placed now, this hold would cover {}.</p>{}\
         <p><a href=\"/console/holds?{}\">Change it</a></p>",
        html::notice(
            "warn",
            "Nothing is placed yet: check the count, then place it."
        ),
        esc(&hold.case_id),
        esc(&crate::ledger::holds::describe(&hold.selectors)),
        coverage_html(&coverage),
        ctx.viewer
            .post_form("/console/holds/place", &fields, "Place this hold", "place"),
        esc(&query(FIELDS.iter().map(|k| (*k, q.get(k))))),
    );
    Ok(super::page(
        StatusCode::OK,
        html::page(Some(&ctx.viewer), "Place a hold: preview", &main),
    ))
}

/// `POST /console/holds/place`.
pub async fn place(console: &Console, ctx: &Ctx, f: &Form) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Compliance)?;
    let hold = new_hold(f)?;
    let placed = console
        .catalog
        .place_hold(&ctx.viewer.who.actor(), &hold)
        .await?;
    tracing::info!(case = %hold.case_id, user = %ctx.viewer.who.key(), recordings = placed.coverage.recordings, "console: hold placed");
    let mut main = html::notice(
        "ok",
        &format!(
            "Hold {} placed for case <strong>{}</strong>: it covers {}. Nothing it covers will be deleted.",
            placed.id,
            esc(&hold.case_id),
            coverage_html(&placed.coverage)
        ),
    );
    if let Some(Err(e)) = &placed.aftermath.copied {
        main.push_str(&html::notice(
            "warn",
            &format!(
                "The copy of the hold table in the store failed ({}); the hold stands.",
                esc(e)
            ),
        ));
    }
    main.push_str("<p><a href=\"/console/holds\">Back to holds</a></p>");
    Ok(super::page(
        StatusCode::OK,
        html::page(Some(&ctx.viewer), "Hold placed", &main),
    ))
}

/// `POST /console/holds/release`: asks for a release (two-person rule) or
/// releases (an admin, where the rule is off).
pub async fn release(console: &Console, ctx: &Ctx, f: &Form) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Compliance)?;
    let (case, reason) = (f.get("case"), f.get("reason"));
    if case.is_empty() || reason.is_empty() || reason.chars().count() > 500 {
        return Err(Problem::bad(
            "a release needs the case and a reason (at most 500 characters)",
        ));
    }
    let active = console
        .catalog
        .holds(Some(case))
        .await?
        .iter()
        .any(|h| h.active());
    if !active {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            &format!("case {case} has no active hold"),
        ));
    }
    if !console.config.two_person {
        ctx.need(Role::Admin)?;
        let done = console
            .catalog
            .release_hold(&ctx.viewer.who.actor(), case, reason)
            .await?;
        return Ok(done_page(
            ctx,
            &format!(
                "Released {} hold(s) of case {}; retention resumes at the next sweep.",
                done.released,
                esc(case)
            ),
        ));
    }
    let change = Change::Release {
        case: case.to_string(),
        reason: reason.to_string(),
    };
    let w = console
        .pending
        .add(change, ctx.viewer.who.clone(), now_secs())
        .map_err(|e| Problem::new(StatusCode::CONFLICT, &e))?;
    tracing::info!(case = %case, user = %ctx.viewer.who.key(), "console: hold release asked; waits for a second person");
    Ok(done_page(
        ctx,
        &format!(
            "The release of case <strong>{}</strong> waits for a second person with the admin role, until {}. The hold stands until then.",
            esc(case),
            esc(&local_time(w.expires))
        ),
    ))
}

fn done_page(ctx: &Ctx, message_html: &str) -> Response<Body> {
    let main = html::notice("ok", message_html)
        + "<p><a href=\"/console/holds\">Holds</a> · <a href=\"/console/erasure\">Erasure</a></p>";
    super::page(StatusCode::OK, html::page(Some(&ctx.viewer), "Done", &main))
}

/// `POST /console/pending/ID/approve`: the second person confirms.
pub async fn approve(console: &Console, ctx: &Ctx, id: &str) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Admin)?;
    let id: u64 = id
        .parse()
        .map_err(|_| Problem::not_found("no such request"))?;
    let Some(w) = console.pending.take(id, now_secs()) else {
        return Err(Problem::not_found(
            "no such request waits (it was confirmed, cancelled or expired)",
        ));
    };
    if w.by.key() == ctx.viewer.who.key() {
        console.pending.put_back(w);
        return Err(Problem::forbidden(
            "the two-person rule: a second person must confirm what you asked for",
        ));
    }
    let asked = format!(
        "asked by {}, confirmed by {}",
        w.by.label(),
        ctx.viewer.who.label()
    );
    let done = match &w.change {
        Change::Release { case, reason } => release_now(console, ctx, case, reason, &asked).await,
        Change::Erasure {
            request,
            selectors,
            token,
            ..
        } => erase_now(console, ctx, request, selectors, token, &asked).await,
    };
    match done {
        Ok(r) => Ok(r),
        // Refused as it stands (the set changed): asked for again from the preview.
        Err(p) if p.status == StatusCode::CONFLICT => Err(p),
        Err(p) => {
            console.pending.put_back(w);
            Err(p)
        }
    }
}

/// The confirmed release of `case`.
async fn release_now(
    console: &Console,
    ctx: &Ctx,
    case: &str,
    reason: &str,
    asked: &str,
) -> Result<Response<Body>, Problem> {
    let why = format!("{reason} ({asked})");
    let done = console
        .catalog
        .release_hold(&ctx.viewer.who.actor(), case, &why)
        .await?;
    tracing::info!(case = %case, user = %ctx.viewer.who.key(), "console: hold released by two people");
    Ok(done_page(
        ctx,
        &format!(
            "Released {} hold(s) of case <strong>{}</strong> ({}); retention resumes at the next sweep.",
            done.released,
            esc(case),
            esc(asked)
        ),
    ))
}

/// The confirmed erasure `request`: exactly its previewed set (`token`).
pub(super) async fn erase_now(
    console: &Console,
    ctx: &Ctx,
    request: &str,
    selectors: &[Selector],
    token: &str,
    asked: &str,
) -> Result<Response<Body>, Problem> {
    let actor = ctx.viewer.who.actor();
    match console
        .catalog
        .erasure_confirm(&actor, request, selectors, Some(token))
        .await?
    {
        ErasureConfirmation::Reserved(plan) => {
            let (n, _) = plan.left();
            tracing::info!(request = %request, user = %ctx.viewer.who.key(), recordings = n, "console: erasure confirmed by two people");
            Ok(done_page(
                ctx,
                &format!(
                    "Erasure request <strong>{}</strong> confirmed ({}): {} recording(s) are reserved and the daemon erases every copy. \
                     <a href=\"/console/erasure/progress?{}\">Follow its progress</a>.",
                    esc(request),
                    esc(asked),
                    n,
                    esc(&query([("request", request)]))
                ),
            ))
        }
        ErasureConfirmation::Changed(_) => Err(Problem::new(
            StatusCode::CONFLICT,
            "the recordings this request covers changed since its preview; nothing was erased. Preview it again and ask again.",
        )),
    }
}

/// `POST /console/pending/ID/cancel`: the asker or an admin withdraws it.
pub fn cancel(console: &Console, ctx: &Ctx, id: &str) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Compliance)?;
    let id: u64 = id
        .parse()
        .map_err(|_| Problem::not_found("no such request"))?;
    let Some(w) = console.pending.take(id, now_secs()) else {
        return Err(Problem::not_found("no such request waits"));
    };
    if w.by.key() != ctx.viewer.who.key() && ctx.viewer.who.role < Role::Admin {
        console.pending.put_back(w);
        return Err(Problem::forbidden(
            "only its asker or an admin may cancel it",
        ));
    }
    Ok(done_page(
        ctx,
        &format!("Cancelled: {}.", esc(&w.change.title())),
    ))
}
