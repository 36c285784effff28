//! Erasure ("delete my data"): a request by phone, lead or recording; its
//! preview (what goes, where each copy is, what a hold keeps), sent as a
//! POST so the person's number stays out of URLs and histories; the
//! confirmation by a second person (two-person rule, `pending`) with the
//! preview's token, so exactly the previewed set is reserved; its progress
//! while the daemon erases every copy; and the final report as a download.

use std::fmt::Write as _;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::errors::Problem;
use super::form::Form;
use super::html::{self, esc, query};
use super::pending::Change;
use super::{Console, Ctx, Role};
use crate::catalog::{CopyOutcome, ErasurePlan, RecordingRef, Selector, Standing};
use crate::recording::phone::normalize;
use crate::serve::body::Body;
use crate::units::{human_bytes, local_time, now_secs};

const FIELDS: [&str; 4] = ["request", "phone", "lead", "recording"];

fn request_form(ctx: &Ctx) -> String {
    let fields = format!(
        "<div class=\"grid\">{}{}{}{}</div><p class=\"hint\">The request reference is kept with the erasure \
         and in the audit trail: never put the person's name or number in it.</p>",
        html::input(
            "request",
            "Request reference (ticket)",
            "",
            "required maxlength=\"100\""
        ),
        html::input(
            "phone",
            "Phone (any format)",
            "",
            "inputmode=\"tel\" autocomplete=\"off\""
        ),
        html::input("lead", "Lead id", "", "autocomplete=\"off\""),
        html::input(
            "recording",
            "Recording (HOST/ID, id or file name)",
            "",
            "autocomplete=\"off\""
        ),
    );
    ctx.viewer.post_form(
        "/console/erasure/preview",
        &fields,
        "Preview the erasure",
        "erasure",
    )
}

/// `GET /console/erasure`.
pub async fn page(console: &Console, ctx: &Ctx) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Compliance)?;
    let mut main = super::holds::waiting_html(console, ctx, true);
    main.push_str("<section aria-labelledby=\"h-req\"><h2 id=\"h-req\">New request</h2>");
    main.push_str(&request_form(ctx));
    main.push_str(
        "</section><section aria-labelledby=\"h-prog\"><h2 id=\"h-prog\">Progress of a confirmed request</h2>\
         <form method=\"get\" action=\"/console/erasure/progress\">",
    );
    main.push_str(&html::input_as(
        "progress",
        "request",
        "Request reference",
        "",
        "required",
    ));
    main.push_str("<button type=\"submit\">Show progress</button></form></section>");
    Ok(super::page(
        StatusCode::OK,
        html::page(Some(&ctx.viewer), "Erasure", &main),
    ))
}

/// The request reference and selectors a form names.
fn request_of(console: &Console, f: &Form) -> Result<(String, Vec<Selector>), Problem> {
    let request = f.get("request");
    if request.is_empty() || request.chars().count() > 100 {
        return Err(Problem::bad(
            "an erasure needs a request reference (at most 100 characters)",
        ));
    }
    let mut selectors = Vec::new();
    for p in f.all("phone") {
        selectors.push(Selector::Phone(normalize(p).map_err(|e| Problem::bad(&e))?));
    }
    for l in f.all("lead") {
        selectors.push(Selector::Lead(l.to_string()));
    }
    for r in f.all("recording") {
        let s = match r.parse::<RecordingRef>() {
            Ok(rr) if rr.host == console.catalog.scope().host() => Selector::Id(rr.id),
            Ok(rr) => {
                return Err(Problem::bad(&format!(
                    "recording {rr} is on another box: erase it from there, or by phone or lead"
                )));
            }
            Err(_) => match r.parse::<i64>() {
                Ok(id) => Selector::Id(id),
                Err(_) => Selector::Recording(r.to_string()),
            },
        };
        selectors.push(s);
    }
    if selectors.is_empty() {
        return Err(Problem::bad(
            "give a phone, a lead or a recording: an erasure of everything is not a request",
        ));
    }
    Ok((request.to_string(), selectors))
}

fn standing(s: &Standing) -> String {
    match s {
        Standing::Erase => "erased by this request".into(),
        Standing::Held(cases) => format!("kept: held by {}", cases.join(", ")),
        Standing::Other {
            request,
            done: true,
        } => format!("already erased by request {request}"),
        Standing::Other {
            request,
            done: false,
        } => format!("being erased by request {request}"),
    }
}

fn summary(plan: &ErasurePlan) -> String {
    let (n, bytes) = plan.left();
    let held = plan.held().count();
    format!(
        "{n} recording(s) to erase ({}), {held} kept by a legal hold, {} in all",
        human_bytes(bytes),
        plan.items.len()
    )
}

fn plan_html(plan: &ErasurePlan) -> String {
    let mut out = format!(
        "<p class=\"preview\" role=\"status\">{}.</p><div class=\"scroll\"><table><thead><tr>\
         <th scope=\"col\">Recording</th><th scope=\"col\">Call time</th><th scope=\"col\">State</th>\
         <th scope=\"col\">Outcome</th><th scope=\"col\">Copies removed</th></tr></thead><tbody>",
        esc(&summary(plan))
    );
    for i in &plan.items {
        let copies: Vec<String> = i.copies.iter().map(|c| esc(&c.to_string())).collect();
        let _ = write!(
            out,
            "<tr><td>{} <small>{}</small></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&i.entry.name),
            esc(&i.entry.reference().to_string()),
            esc(&local_time(i.entry.time)),
            esc(i.entry.status()),
            esc(&standing(&i.standing)),
            if copies.is_empty() {
                "none left".into()
            } else {
                copies.join("<br>")
            },
        );
    }
    if plan.items.is_empty() {
        out.push_str("<tr><td colspan=\"5\">No recording matches.</td></tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// `POST /console/erasure/preview`.
pub async fn preview(console: &Console, ctx: &Ctx, f: &Form) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Compliance)?;
    let (request, selectors) = request_of(console, f)?;
    let plan = console
        .catalog
        .erasure_preview(&request, &selectors)
        .await?;
    let mut main = html::notice(
        "warn",
        "Nothing is erased yet: check what goes, then ask for it.",
    );
    let _ = write!(main, "<p>Request <strong>{}</strong>.</p>", esc(&request));
    main.push_str(&plan_html(&plan));
    if plan.left().0 > 0 {
        let mut pairs: Vec<(&str, &str)> = FIELDS
            .iter()
            .flat_map(|k| f.all(k).into_iter().map(move |v| (*k, v)))
            .collect();
        pairs.push(("token", plan.token.as_str()));
        let label = if console.config.two_person {
            "Ask a second person to confirm this erasure"
        } else {
            "Erase these recordings"
        };
        main.push_str(&ctx.viewer.post_form(
            "/console/erasure/request",
            &html::hidden(pairs),
            label,
            "danger",
        ));
    }
    main.push_str("<p><a href=\"/console/erasure\">Back</a></p>");
    Ok(super::page(
        StatusCode::OK,
        html::page(Some(&ctx.viewer), "Erasure: preview", &main),
    ))
}

/// `POST /console/erasure/request`: waits for a second person, or (rule
/// off, an admin) confirms at once.
pub async fn request(console: &Console, ctx: &Ctx, f: &Form) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Compliance)?;
    let (request, selectors) = request_of(console, f)?;
    let token = f.get("token").to_string();
    if token.is_empty() {
        return Err(Problem::bad("preview the erasure first"));
    }
    let plan = console
        .catalog
        .erasure_preview(&request, &selectors)
        .await?;
    if plan.token != token {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "the recordings this request covers changed since the preview; nothing was asked. Preview it again.",
        ));
    }
    let done = |html_msg: String| {
        let main =
            html::notice("ok", &html_msg) + "<p><a href=\"/console/erasure\">Erasure</a></p>";
        super::page(
            StatusCode::OK,
            html::page(Some(&ctx.viewer), "Erasure", &main),
        )
    };
    if !console.config.two_person {
        ctx.need(Role::Admin)?;
        let alone = format!(
            "confirmed by {} alone: two_person = false",
            ctx.viewer.who.label()
        );
        return super::holds::erase_now(console, ctx, &request, &selectors, &token, &alone).await;
    }
    let change = Change::Erasure {
        request: request.clone(),
        selectors,
        token,
        summary: summary(&plan),
    };
    let w = console
        .pending
        .add(change, ctx.viewer.who.clone(), now_secs())
        .map_err(|e| Problem::new(StatusCode::CONFLICT, &e))?;
    tracing::info!(request = %request, user = %ctx.viewer.who.key(), "console: erasure asked; waits for a second person");
    Ok(done(format!(
        "Erasure request <strong>{}</strong> ({}) waits for a second person with the admin role, until {}. Nothing is erased until then.",
        esc(&request),
        esc(&summary(&plan)),
        esc(&local_time(w.expires))
    )))
}

fn outcome(o: &CopyOutcome) -> String {
    match o {
        CopyOutcome::Erased { at } => format!("erased {}", local_time(*at)),
        CopyOutcome::Waiting { until, why } => {
            format!("waiting until {} ({why})", local_time(*until))
        }
        CopyOutcome::Pending { why } => format!("pending ({why})"),
        CopyOutcome::Closed { by } => format!("closed by {by}"),
    }
}

/// `GET /console/erasure/progress?request=REF`.
pub async fn progress(console: &Console, ctx: &Ctx, q: &Form) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Compliance)?;
    let request = q.get("request");
    if request.is_empty() {
        return Err(Problem::bad("name the request"));
    }
    let p = console.catalog.erasure_progress(request).await?;
    let [erased, waiting, pending, closed] = p.counts();
    let total = p.lines.len() as u64;
    let done = erased + closed;
    let mut main = format!(
        "<p role=\"status\">Request <strong>{}</strong>: {}.</p>\
         <progress max=\"{}\" value=\"{done}\" aria-label=\"Recordings erased\">{done} of {total}</progress>\
         <p>{erased} erased, {waiting} waiting for Object Lock, {pending} pending, {closed} closed, of {total}.</p>",
        esc(request),
        if p.complete {
            "complete: every copy is gone"
        } else {
            "under way"
        },
        total.max(1),
    );
    for h in &p.open {
        let _ = write!(
            main,
            "<p>{} still holds {} recording(s){}.</p>",
            esc(&h.host),
            h.copies,
            if h.reachable {
                ""
            } else {
                " and is not heard from"
            }
        );
    }
    let _ = write!(
        main,
        "<p><a href=\"/console/erasure/report.csv?{0}\">Download the report (CSV)</a> · \
         <a href=\"/console/erasure/progress?{0}\">Refresh</a></p>",
        esc(&query([("request", request)]))
    );
    main.push_str("<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Recording</th><th scope=\"col\">Name</th><th scope=\"col\">Outcome</th></tr></thead><tbody>");
    for l in &p.lines {
        let _ = write!(
            main,
            "<tr><td>{}/{}</td><td>{}</td><td>{}</td></tr>",
            esc(&l.host),
            l.id,
            esc(&l.name),
            esc(&outcome(&l.outcome))
        );
    }
    main.push_str("</tbody></table></div>");
    Ok(super::page(
        StatusCode::OK,
        html::page(Some(&ctx.viewer), "Erasure progress", &main),
    ))
}

/// `GET /console/erasure/report.csv?request=REF`: the report, one line per recording.
pub async fn report(console: &Console, ctx: &Ctx, q: &Form) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Compliance)?;
    let request = q.get("request");
    if request.is_empty() {
        return Err(Problem::bad("name the request"));
    }
    let p = console.catalog.erasure_progress(request).await?;
    let mut out = format!(
        "# erasure request {},{}\r\nhost,id,name,outcome\r\n",
        request.replace([',', '\r', '\n', '"'], " "),
        if p.complete { "complete" } else { "under way" }
    );
    for l in &p.lines {
        let _ = write!(
            out,
            "{},{},{},{}\r\n",
            l.host.replace([',', '\r', '\n'], " "),
            l.id,
            l.name.replace([',', '\r', '\n'], " "),
            outcome(&l.outcome).replace([',', '\r', '\n'], " ")
        );
    }
    let mut r = Response::new(Body::text(out));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    let name: String = request
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"erasure-{name}.csv\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}
