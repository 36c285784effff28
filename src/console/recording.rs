//! One recording: its facts, every copy and where, the holds on it, who
//! listened and when; and, once its user has said why (required or
//! optional by `[console] reason`), a player that seeks with Range requests
//! through the playback path and a download of the original, both audited
//! with the user, the address and the reason. A download carries the
//! original's SHA-256 (`Repr-Digest`) and comes only from a local copy
//! that is still the file hashed or from an object that decoded to it.

use std::fmt::Write as _;

use base64::Engine as _;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use super::errors::Problem;
use super::form::Form;
use super::html::{self, esc, segment};
use super::{Console, Ctx, Role, redirect};
use crate::catalog::{Detail, Place, RecordingRef};
use crate::config::ReasonRule;
use crate::serve::body::Body;
use crate::serve::{playback, router};
use crate::units::{human_bytes, local_time};

/// The longest reason kept.
const MAX_REASON: usize = 300;

/// The recording a URL's host and id segments name.
fn reference(host: &str, id: &str) -> Result<RecordingRef, Problem> {
    let host: String = form_urlencoded::parse(format!("h={host}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let id: i64 = id
        .parse()
        .map_err(|_| Problem::not_found("no such recording"))?;
    if host.is_empty() || host.len() > 255 {
        return Err(Problem::not_found("no such recording"));
    }
    Ok(RecordingRef { host, id })
}

fn base(r: &RecordingRef) -> String {
    format!("/console/recordings/{}/{}", segment(&r.host), r.id)
}

/// `GET /console/recordings/HOST/ID`.
pub async fn page(
    console: &Console,
    ctx: &Ctx,
    host: &str,
    id: &str,
) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Listener)?;
    let which = reference(host, id)?;
    let d = console.catalog.recording(&which).await?;
    let mut main = facts(&d);
    main.push_str(&player(console, ctx, &which, &d));
    main.push_str(&copies(&d));
    main.push_str(&holds(&d));
    main.push_str(&listens(&d));
    let title = format!("Recording {}", d.entry.name);
    Ok(super::page(
        StatusCode::OK,
        html::page(Some(&ctx.viewer), &title, &main),
    ))
}

fn facts(d: &Detail) -> String {
    let e = &d.entry;
    let opt = |v: &Option<String>| esc(v.as_deref().unwrap_or("—"));
    html::facts(&[
        ("Recording", esc(&e.reference().to_string())),
        ("State", esc(e.status())),
        ("Where", esc(&e.whereabouts())),
        ("Call time", esc(&local_time(e.time))),
        (
            "Length",
            esc(&e
                .call_length
                .map(|l| format!("{l} s"))
                .unwrap_or_else(|| "—".into())),
        ),
        ("Campaign", opt(&e.campaign)),
        ("Agent", opt(&e.agent)),
        ("Phone", opt(&e.phone)),
        ("Lead", opt(&e.lead_id)),
        ("Size", esc(&human_bytes(e.size))),
        ("SHA-256", format!("<code>{}</code>", opt(&e.sha256))),
        ("Codec", opt(&e.codec)),
        (
            "VICIdial recording_id",
            esc(&e
                .vicidial_recording_id
                .map(|v| v.to_string())
                .unwrap_or_else(|| "—".into())),
        ),
        (
            "Legal holds",
            if e.held_by.is_empty() {
                "none".into()
            } else {
                esc(&e.held_by.join(", "))
            },
        ),
    ])
}

fn player(console: &Console, ctx: &Ctx, which: &RecordingRef, d: &Detail) -> String {
    let e = &d.entry;
    let mut out = String::from(
        "<section id=\"player\" aria-labelledby=\"h-player\"><h2 id=\"h-player\">Listen</h2>",
    );
    let playable = e.erasure.is_none() && e.deleted_at.is_none() && e.status() != "gone";
    if !playable {
        let _ = write!(
            out,
            "<p>This recording cannot be played: {}.</p></section>",
            esc(&e.whereabouts())
        );
        return out;
    }
    if which.host != console.catalog.scope().host() {
        let _ = write!(
            out,
            "<p>This recording is played from its own box, {}: open its console there.</p></section>",
            esc(&which.host)
        );
        return out;
    }
    let url = base(which);
    match console.sessions.granted(&ctx.viewer.id, which) {
        Some(why) => out.push_str(&audio_html(&url, &why, e.sha256.as_deref())),
        None => out.push_str(&reason_form(console, ctx, &url)),
    }
    out.push_str("</section>");
    out
}

/// The player and the download, once a reason was given.
fn audio_html(url: &str, why: &str, sha256: Option<&str>) -> String {
    format!(
        "<p>Reason given: {}</p>\
         <audio controls preload=\"metadata\" src=\"{}/audio\">Your browser cannot play this recording; download it instead.</audio>\
         <p><a href=\"{}/original\" download>Download the original</a> \
         (checked against SHA-256 <code>{}</code>)</p>",
        esc(why),
        esc(url),
        esc(url),
        esc(sha256.unwrap_or("unknown"))
    )
}

/// The form asking why (required or optional by `[console] reason`).
fn reason_form(console: &Console, ctx: &Ctx, url: &str) -> String {
    let required = console.config.reason == ReasonRule::Required;
    let label = if required {
        "Why are you listening? (required, recorded in the audit trail)"
    } else {
        "Why are you listening? (optional, recorded in the audit trail)"
    };
    let extra = format!(
        "maxlength=\"{MAX_REASON}\"{}",
        if required { " required" } else { "" }
    );
    let field = html::input("reason", label, "", &extra);
    ctx.viewer
        .post_form(&format!("{url}/listen"), &field, "Listen", "listen")
}

fn copies(d: &Detail) -> String {
    let mut out =
        String::from("<section aria-labelledby=\"h-copies\"><h2 id=\"h-copies\">Copies</h2><ul>");
    for c in &d.copies {
        let (kind, place) = match &c.place {
            Place::Spool { path } => ("local file", path),
            Place::Staging { path } => ("staging", path),
            Place::Store { key } => ("store object", key),
        };
        let _ = write!(
            out,
            "<li>{kind} <code>{}</code> on {}</li>",
            esc(place),
            esc(&c.host)
        );
    }
    if d.copies.is_empty() {
        out.push_str("<li>none</li>");
    }
    out.push_str("</ul></section>");
    out
}

fn holds(d: &Detail) -> String {
    let mut out = String::from(
        "<section aria-labelledby=\"h-holds\"><h2 id=\"h-holds\">Holds on it</h2><ul>",
    );
    for h in &d.holds {
        let _ = write!(
            out,
            "<li>case <strong>{}</strong>: {} — by {} on {} ({})</li>",
            esc(&h.case_id),
            esc(&h.reason),
            esc(&h.created_by),
            esc(&local_time(h.created_at)),
            esc(&h.describe())
        );
    }
    if d.holds.is_empty() {
        out.push_str("<li>none</li>");
    }
    out.push_str("</ul></section>");
    out
}

fn listens(d: &Detail) -> String {
    let mut out = String::from(
        "<section aria-labelledby=\"h-listens\"><h2 id=\"h-listens\">Who listened</h2>\
         <div class=\"scroll\"><table><thead><tr><th scope=\"col\">When</th><th scope=\"col\">Who</th><th scope=\"col\">What</th></tr></thead><tbody>",
    );
    for l in d.listens.iter().rev() {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&local_time(l.at)),
            esc(&l.user),
            esc(&l.what)
        );
    }
    if d.listens.is_empty() {
        out.push_str("<tr><td colspan=\"3\">Nobody yet.</td></tr>");
    }
    out.push_str("</tbody></table></div></section>");
    out
}

/// `POST …/listen`: the reason to hear it; the player appears.
pub async fn listen(
    console: &Console,
    ctx: &Ctx,
    host: &str,
    id: &str,
    form: &Form,
) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Listener)?;
    let which = reference(host, id)?;
    let why = form.get("reason");
    if why.is_empty() && console.config.reason == ReasonRule::Required {
        return Err(Problem::bad(
            "say why you are listening: the reason is required here (go back and type it)",
        ));
    }
    if why.chars().count() > MAX_REASON {
        return Err(Problem::bad("the reason is longer than 300 characters"));
    }
    // Refused for a recording that does not exist.
    console.catalog.recording(&which).await?;
    let why = if why.is_empty() {
        "no reason given".to_string()
    } else {
        why.to_string()
    };
    console.sessions.grant(&ctx.viewer.id, which.clone(), why);
    Ok(redirect(&format!("{}#player", base(&which))))
}

/// `GET …/audio` and `GET …/original`: the bytes, through the playback path.
pub async fn audio<B>(
    console: &Console,
    ctx: &Ctx,
    host: &str,
    id: &str,
    req: &Request<B>,
    download: bool,
) -> Result<Response<Body>, Problem> {
    ctx.need(Role::Listener)?;
    let which = reference(host, id)?;
    if which.host != console.catalog.scope().host() {
        return Err(Problem::not_found(
            "this recording is played from its own box",
        ));
    }
    let Some(why) = console.sessions.granted(&ctx.viewer.id, &which) else {
        return Err(Problem::forbidden(
            "say why you are listening first (on the recording's page)",
        ));
    };
    let kind = if download { "download" } else { "player" };
    let mut asker = ctx.asker.clone();
    // The reason rides with the user, so "who listened" shows it beside them.
    asker.user = Some(format!("{}; reason: {why}", ctx.viewer.who.label()));
    let note = format!("{kind}; reason: {why}");
    let mut r = playback::serve_logged_in(&ctx.state, req, &mut asker, which.id, &note).await;
    if download && r.status().is_success() {
        let sha = console
            .catalog
            .recording(&which)
            .await
            .ok()
            .and_then(|d| d.entry.sha256);
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(
            &h.get(header::CONTENT_DISPOSITION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("inline; filename=\"recording\"")
                .replacen("inline", "attachment", 1),
        ) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        if let Some(bytes) = sha.and_then(|s| hex::decode(s).ok()) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            if let Ok(v) = HeaderValue::from_str(&format!("sha-256=:{b64}:")) {
                h.insert("repr-digest", v);
            }
        }
    }
    // Streamed answers are audited when they end; short ones now.
    Ok(match r.body() {
        Body::Text(_) => router::finish(&ctx.state, &asker, true, r),
        _ => r,
    })
}
