//! One request: the checks every request passes (rate per client, length,
//! method), then `/r/…` (playback), `/healthz`, `/metrics`, or 404. Also the
//! response helpers and where each request ends: in the audit trail when a
//! valid link signed it (`listens`), else counted and rate-limit logged
//! (`refusals`) — never with its target, which may hold a signature.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use super::body::Body;
use super::listens::Listen;
use super::refusals::Refused;
use super::{State, health, playback};
use crate::units::now_secs;

/// The longest request target (path and query) answered; a link is ~70.
const MAX_TARGET: usize = 2048;

/// Who asked, for the audit trail.
#[derive(Debug, Clone)]
pub struct Asker {
    pub client: IpAddr,
    pub user_agent: String,
    /// The authenticated VICIdial user, once known.
    pub user: Option<String>,
    /// The recording, once a valid link named it.
    pub recording_id: Option<i64>,
    /// What was asked for, as the audit entry names it: the recording and
    /// the kind of link, never the link itself.
    pub subject: String,
    /// True once the link's signature checked: only then is the request
    /// audited.
    pub signed: bool,
}

/// Answers one request.
pub async fn handle(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let client = super::listener::client_of(peer.ip());
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let recording = req.uri().path().starts_with("/r/");
    let mut asker = Asker {
        client,
        user_agent: text(req.headers().get(header::USER_AGENT), 200),
        user: None,
        recording_id: None,
        subject: String::new(),
        signed: false,
    };
    let pages = state.pages.clone().filter(|p| p.owns(req.uri().path()));
    if let Some(r) = refusal(&state, client, target, req.method(), pages.is_some()) {
        return finish(&state, &asker, recording, r);
    }
    if let Some(pages) = pages {
        return pages.answer(state, req, asker).await;
    }
    let path = req.uri().path();
    match path {
        "/healthz" | "/metrics" => health_or_metrics(&state, &asker, path).await,
        _ if recording => {
            let r = playback::serve(&state, &req, &mut asker).await;
            // A streamed body reports itself when it ends.
            match r.body() {
                Body::Stream(_) | Body::Chunks(_) => r,
                Body::Text(_) => finish(&state, &asker, true, r),
            }
        }
        _ => {
            let r = reply(StatusCode::NOT_FOUND, "not found");
            finish(&state, &asker, false, refused(r, Refused::NotFound))
        }
    }
}

/// `/healthz` or `/metrics`, for the addresses `metrics_allow` names.
async fn health_or_metrics(state: &State, asker: &Asker, path: &str) -> Response<Body> {
    if !state
        .config
        .metrics_allow
        .iter()
        .any(|c| c.contains(asker.client))
    {
        let r = reply(StatusCode::FORBIDDEN, "not from your address");
        return finish(state, asker, false, refused(r, Refused::MetricsNotAllowed));
    }
    if path == "/healthz" {
        health::healthz(state).await
    } else {
        health::metrics(state).await
    }
}

/// The checks every request passes, in order: the client's rate, the
/// target's length, the method. The answer if one fails.
fn refusal(
    state: &State,
    client: IpAddr,
    target: &str,
    method: &Method,
    any_method: bool,
) -> Option<Response<Body>> {
    if !state.limit.admit(client) {
        let r = reply(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests from your address; slow down",
        );
        return Some(refused(with(r, header::RETRY_AFTER, "1"), Refused::Rate));
    }
    if target.len() > MAX_TARGET {
        let r = reply(StatusCode::URI_TOO_LONG, "request target too long");
        return Some(refused(r, Refused::TargetTooLong));
    }
    // Mounted pages (the console's forms POST) answer other methods themselves.
    if !any_method && method != Method::GET && method != Method::HEAD {
        let r = with(
            reply(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD"),
            header::ALLOW,
            "GET, HEAD",
        );
        return Some(refused(r, Refused::Method));
    }
    None
}

/// `r`, marked as a refusal no link signed (counted, never audited).
pub fn refused(mut r: Response<Body>, why: Refused) -> Response<Body> {
    r.extensions_mut().insert(why);
    r
}

/// Ends a request answered in one piece: a signed recording request into
/// the audit trail with its outcome; anything else refused is counted and
/// logged (rate-limited) by its reason.
pub fn finish(state: &State, asker: &Asker, recording: bool, r: Response<Body>) -> Response<Body> {
    if !asker.signed {
        if recording {
            state.metrics.playback(outcome(r.status()));
        }
        if let Some(why) = r.extensions().get::<Refused>() {
            state.refusals.note(*why, asker.client);
        }
        return r;
    }
    let outcome = outcome(r.status());
    let bytes = match r.body() {
        Body::Text(Some(b)) if r.status().is_success() => b.len() as u64,
        _ => 0,
    };
    let via = r.extensions().get::<Via>().map(|v| v.0).unwrap_or("-");
    let note = match r.body() {
        Body::Text(Some(b)) if r.status().as_u16() >= 300 => {
            shorten(String::from_utf8_lossy(b).trim(), 100)
        }
        _ => String::new(),
    };
    audit(
        state,
        asker,
        (outcome, r.status().as_u16(), bytes, via),
        note,
    );
    r
}

/// Hands one request's entry — (outcome, status, bytes, via) and why it was
/// refused — to the audit writer, and counts its outcome.
pub fn audit(
    state: &State,
    asker: &Asker,
    (outcome, status, bytes, via): (&'static str, u16, u64, &'static str),
    note: String,
) {
    state.metrics.playback(outcome);
    crate::metrics::add(&state.metrics.playback_bytes, bytes);
    state.listens.record(Listen {
        at: now_secs(),
        recording_id: asker.recording_id,
        subject: asker.subject.clone(),
        user: asker.user.clone(),
        client: asker.client,
        user_agent: asker.user_agent.clone(),
        outcome: outcome.to_string(),
        status,
        bytes,
        via: via.to_string(),
        note,
    });
}

/// Where a response's bytes came from (kept in its extensions for the audit).
#[derive(Debug, Clone, Copy)]
pub struct Via(pub &'static str);

/// The `outcome` a status stands for.
pub fn outcome(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "served",
        206 => "partial",
        301..=308 => "redirected",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        410 => "gone",
        429 => "too_many",
        503 => "unavailable",
        400..=499 => "bad_request",
        _ => "error",
    }
}

/// A short plain-text answer.
pub fn reply(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::text(format!("{text}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `r` with one more header.
pub fn with(mut r: Response<Body>, name: header::HeaderName, value: &str) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
    r
}

/// A header's text as sent, cut to `max` characters (stored as given;
/// whoever prints it escapes it, `recording::key::display_text`).
fn text(value: Option<&HeaderValue>, max: usize) -> String {
    let s = value
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    shorten(&s, max)
}

/// `s` cut to `max` characters.
pub fn shorten(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_texts() {
        assert_eq!(outcome(StatusCode::PARTIAL_CONTENT), "partial");
        assert_eq!(outcome(StatusCode::FOUND), "redirected");
        assert_eq!(outcome(StatusCode::RANGE_NOT_SATISFIABLE), "bad_request");
        assert_eq!(outcome(StatusCode::INTERNAL_SERVER_ERROR), "error");
        for o in [
            "served",
            "partial",
            "redirected",
            "unauthorized",
            "forbidden",
            "not_found",
            "gone",
            "too_many",
            "unavailable",
            "bad_request",
            "error",
        ] {
            assert!(crate::metrics::PLAYBACK_OUTCOMES.contains(&o), "{o}");
        }
        assert_eq!(shorten("a\u{7}b\ncd", 3), "a\u{7}b…");
        assert_eq!(shorten("abc", 3), "abc");
    }
}
