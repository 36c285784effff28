//! `GET /r/<id>/<signature>/<file name>`: the original recording, byte for byte — from
//! the local copy while it exists, else decoded from the store (through the
//! playback cache), or a redirect to a presigned store URL where the object
//! is the original itself. The signature (and expiry), the address, the
//! optional VICIdial login are checked in that order (the signature
//! against the ledger row the id names: it binds the recording itself); a
//! request is audited once its signature checked, never before. Every
//! answer names its reason: 403 bad or expired link or address, 401 login,
//! 429 too many failed logins, 404 unknown, 410 deleted (when and by what),
//! 503 with Retry-After when the store or the database is down, 416 for a
//! Range outside the recording.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use super::body::{Body, Source};
use super::cache::Failure;
use super::link::{self, Link, Refusal};
use super::range::{self, Wanted};
use super::refusals::Refused;
use super::router::{Asker, Via, audit, outcome, refused, reply, with};
use super::{State, auth::Verdict};
use crate::codec;
use crate::config::Codec;
use crate::ledger::LedgerError;
use crate::ledger::audit::subject;
use crate::recording::key::display_text;
use crate::recording::{FileIdentity, Recording, State as Step};
use crate::spool;
use crate::store::Store;
use crate::units::{local_time, now_secs};

/// Seconds a client is told to wait when the store or database is down.
const RETRY_AFTER: &str = "30";

/// Answers a request for a recording; `asker` learns whether a valid link
/// signed it, the user and the recording.
pub async fn serve<B>(state: &Arc<State>, req: &Request<B>, asker: &mut Asker) -> Response<Body> {
    let Some(link) = link::parse(req.uri().path(), req.uri().query()) else {
        let r = reply(StatusCode::FORBIDDEN, "not a valid recording link");
        return refused(r, Refused::BadLink);
    };
    // The signature binds the recording itself: it is checked against the
    // row the id names now (and whether this link was revoked).
    let (id, digest) = (link.id, link::revocation_digest(link.signature));
    let target = match state.ledger.call(move |l| l.link_target(id, &digest)).await {
        Ok(target) => target,
        Err(e) => {
            tracing::warn!("playback: ledger: {e}");
            let r = reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "the ledger is busy; try again",
            );
            return with(r, header::RETRY_AFTER, "5");
        }
    };
    let checked = state.signer.check(
        &link,
        target.recording.as_ref(),
        target.v1_below,
        now_secs(),
    );
    let (Ok(()) | Err(Refusal::Expired), Some(rec)) = (checked, target.recording) else {
        return refused(
            reply(StatusCode::FORBIDDEN, "bad signature"),
            Refused::BadSignature,
        );
    };
    if target.revoked {
        return refused(
            reply(StatusCode::FORBIDDEN, "this link was revoked"),
            Refused::Revoked,
        );
    }
    // The link is signed (if expired): audited from here on, under the
    // recording it names and the kind of link — never the link itself.
    let kind = signed(asker, &link);
    if checked == Err(Refusal::Expired) {
        return reply(StatusCode::FORBIDDEN, "this link has expired");
    }
    if !state.config.allow.iter().any(|c| c.contains(asker.client)) {
        return reply(
            StatusCode::FORBIDDEN,
            "your address may not play recordings",
        );
    }
    if let Some(refusal) = log_in(state, req, asker, link.id).await {
        return refusal;
    }
    asker.recording_id = Some(rec.id);
    asker.subject = format!("{} ({kind} link)", subject(&rec));
    answer(state, req, asker, &rec, link.expires, true).await
}

/// A recording by ledger id for someone the console logged in and who gave
/// `why` (its audit entry says so): the checks after a link's (address,
/// ledger) and the same answer (local copy or store, Range), never a
/// redirect to the store (the console's pages play only from themselves).
pub async fn serve_logged_in<B>(
    state: &Arc<State>,
    req: &Request<B>,
    asker: &mut Asker,
    id: i64,
    why: &str,
) -> Response<Body> {
    asker.signed = true;
    asker.recording_id = Some(id);
    asker.subject = format!("recording {id} (console; {why})");
    if !state.config.allow.iter().any(|c| c.contains(asker.client)) {
        return reply(
            StatusCode::FORBIDDEN,
            "your address may not play recordings",
        );
    }
    let rec = match state.ledger.call(move |l| l.recording(id)).await {
        Ok(rec) => rec,
        Err(LedgerError::NoSuchRecording(_)) => {
            return reply(StatusCode::NOT_FOUND, "no such recording");
        }
        Err(e) => {
            tracing::warn!("playback: ledger: {e}");
            let r = reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "the ledger is busy; try again",
            );
            return with(r, header::RETRY_AFTER, "5");
        }
    };
    asker.subject = format!("{} (console; {why})", subject(&rec));
    answer(state, req, asker, &rec, None, false).await
}

/// Marks `asker` as signed by `link`; returns the link's kind.
fn signed(asker: &mut Asker, link: &Link<'_>) -> &'static str {
    let kind = match link.expires {
        Some(_) => "expiring",
        None => "permanent",
    };
    asker.signed = true;
    asker.recording_id = Some(link.id);
    asker.subject = format!("recording {} ({kind} link)", link.id);
    kind
}

/// With `auth = "vicidial"`: the listener's login, checked (and throttled);
/// the answer if it is refused. `asker` learns the user.
async fn log_in<B>(
    state: &State,
    req: &Request<B>,
    asker: &mut Asker,
    recording: i64,
) -> Option<Response<Body>> {
    let auth = state.auth.as_ref()?;
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth.check_basic(header, asker.client).await {
        Verdict::Allowed(user) => {
            asker.user = Some(user);
            None
        }
        Verdict::Missing => Some(login()),
        Verdict::Denied { user, reason } => {
            tracing::info!(client = %asker.client, user = %display_text(&user), ?reason, "listener refused");
            if let Some(log) = &state.access_log {
                log.refused_login(recording, &user, asker.client);
            }
            asker.user = Some(format!("{user} (refused: {reason:?})"));
            Some(login())
        }
        Verdict::Throttled { user, wait } => {
            asker.user = Some(format!("{user} (throttled)"));
            let r = reply(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed logins, try again later",
            );
            let secs = wait.as_secs().max(1).to_string();
            Some(with(r, header::RETRY_AFTER, &secs))
        }
        Verdict::Unavailable => {
            let r = reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot check your login now (VICIdial's database is unavailable)",
            );
            Some(with(r, header::RETRY_AFTER, RETRY_AFTER))
        }
    }
}

/// Serves `rec` from wherever its bytes are.
async fn answer<B>(
    state: &Arc<State>,
    req: &Request<B>,
    asker: &Asker,
    rec: &Recording,
    expires: Option<i64>,
    may_redirect: bool,
) -> Response<Body> {
    if let Some(r) = gone(rec) {
        return r;
    }
    if let Some((file, size)) = local_copy(state, rec) {
        return respond(
            state,
            req,
            asker,
            rec,
            Source::File(Arc::new(file)),
            size,
            "local copy",
        );
    }
    let Some(key) = rec.object_key.as_deref().filter(|_| rec.is_stored()) else {
        let why = match rec.state {
            Step::Gone => "this recording was removed before it was archived",
            _ => "this recording is not archived yet and its local copy is not readable",
        };
        return reply(StatusCode::NOT_FOUND, why);
    };
    let (Some(store), Some(cache)) = (&state.store, &state.cache) else {
        return reply(StatusCode::SERVICE_UNAVAILABLE, "no store is configured");
    };
    if state.config.redirect
        && may_redirect
        && codec::codec_of(rec) == Codec::None
        && let Some(ttl) = presign_ttl(state.config.presign_ttl, expires, now_secs())
        && let Some(r) = redirect(&**store, key, rec, ttl).await
    {
        if let Some(log) = &state.access_log {
            log.listened(rec.id, asker.user.as_deref(), asker.client);
        }
        return r;
    }
    match cache.open(rec, key).await {
        Ok(entry) => {
            let size = entry.size;
            respond(state, req, asker, rec, Source::Cached(entry), size, "store")
        }
        Err(failure) => cache_failure(failure),
    }
}

/// 410 for a recording erased or deleted (when and by what), else `None`.
fn gone(rec: &Recording) -> Option<Response<Body>> {
    if rec.erasure.is_some() {
        // Erased, or being erased, at a data subject's request: gone for
        // every listener from the moment the erasure was confirmed.
        return Some(reply(
            StatusCode::GONE,
            "this recording was erased at the request of the person recorded",
        ));
    }
    if rec.state == Step::RemoteDeleted || rec.deleted_at.is_some() {
        let why = format!(
            "this recording was deleted on {} ({})",
            rec.deleted_at.map(local_time).unwrap_or_else(|| "-".into()),
            rec.deleted_by.as_deref().unwrap_or("retention")
        );
        return Some(reply(StatusCode::GONE, &why));
    }
    None
}

/// How long a presigned URL a redirect hands out stays valid: `presign_ttl`
/// (at most 5 minutes), and never past the link's own expiry. `None` when
/// the link has less than a second left (the recording is streamed).
fn presign_ttl(max: Duration, expires: Option<i64>, now: i64) -> Option<Duration> {
    match expires {
        None => Some(max),
        Some(e) if e - now >= 1 => Some(max.min(Duration::from_secs((e - now) as u64))),
        Some(_) => None,
    }
}

/// A redirect to a presigned URL (valid `ttl`) of the object stored as is,
/// or `None` where the store cannot presign (the object is streamed instead).
async fn redirect(
    store: &dyn Store,
    key: &str,
    rec: &Recording,
    ttl: Duration,
) -> Option<Response<Body>> {
    match store.presign_get(key, ttl, content_type(&rec.name)).await {
        Ok(Some(url)) => {
            let mut r = with(
                reply(StatusCode::FOUND, "stored as is: redirected to the store"),
                header::LOCATION,
                &url,
            );
            r.extensions_mut().insert(Via("redirect"));
            Some(r)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(key = %key, "cannot presign (streaming instead): {e}");
            None
        }
    }
}

/// The answer when the playback cache cannot give the recording.
fn cache_failure(failure: Failure) -> Response<Body> {
    match failure {
        Failure::Unavailable => {
            let r = reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unavailable; try again later",
            );
            with(r, header::RETRY_AFTER, RETRY_AFTER)
        }
        Failure::Missing => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the recording's object is missing from the store",
        ),
        Failure::Damaged => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the stored object does not decode to the original",
        ),
        Failure::Local => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot write the playback cache",
        ),
    }
}

/// The local copy, if it is still the recording's file (not a link, not a
/// replacement): opened, with its size.
fn local_copy(state: &State, rec: &Recording) -> Option<(File, u64)> {
    if !rec.state.is_local() || !spool::in_spool(&state.spool_dirs, &rec.path) {
        return None;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&rec.path)
        .ok()?;
    let meta = file.metadata().ok()?;
    // Still being written (seen): whatever is there; later, only the file hashed.
    let ours = rec.state == Step::Seen || FileIdentity::of(&meta) == rec.identity;
    (meta.is_file() && ours).then_some((file, meta.len()))
}

/// The response for `size` bytes of `source`: whole, a range, or 416.
fn respond<B>(
    state: &Arc<State>,
    req: &Request<B>,
    asker: &Asker,
    rec: &Recording,
    source: Source,
    size: u64,
    via: &'static str,
) -> Response<Body> {
    let range = req
        .headers()
        .get(header::RANGE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let (status, start, end) = match range::resolve(range.as_deref(), size) {
        Wanted::Whole => (StatusCode::OK, 0, size),
        Wanted::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end + 1),
        Wanted::Unsatisfiable => {
            let r = reply(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range outside the recording",
            );
            return with(r, header::CONTENT_RANGE, &format!("bytes */{size}"));
        }
    };
    // A play starts at byte 0 (a whole GET, or a player's first `bytes=0-`);
    // later ranges are the same listen seeking.
    if req.method() == Method::GET
        && start == 0
        && let Some(log) = &state.access_log
    {
        log.listened(rec.id, asker.user.as_deref(), asker.client);
    }
    let body = if req.method() == Method::HEAD {
        Body::empty()
    } else {
        let (state, asker) = (state.clone(), asker.clone());
        Body::stream(
            source,
            start,
            end,
            Box::new(move |sent, complete| {
                let outcome = if complete { outcome(status) } else { "aborted" };
                let why = if complete {
                    String::new()
                } else {
                    "the client went away".into()
                };
                audit(&state, &asker, (outcome, status.as_u16(), sent, via), why);
            }),
        )
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    content_headers(r.headers_mut(), rec, status, start, end, size);
    // A HEAD's empty body is audited by the router, like any short answer.
    r.extensions_mut().insert(Via(via));
    r
}

/// Type, length, range, ETag and file name of the bytes `start..end` of
/// `size` sent with `status`.
fn content_headers(
    h: &mut HeaderMap,
    rec: &Recording,
    status: StatusCode,
    start: u64,
    end: u64,
    size: u64,
) {
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&rec.name)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    if let Some(sha) = rec.sha256.as_deref()
        && let Ok(v) = HeaderValue::from_str(&format!("\"{sha}\""))
    {
        h.insert(header::ETAG, v);
    }
    let name: String = String::from_utf8_lossy(&rec.name)
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
}

/// 401 asking for VICIdial credentials.
fn login() -> Response<Body> {
    let r = reply(StatusCode::UNAUTHORIZED, "log in with your VICIdial user");
    with(
        r,
        header::WWW_AUTHENTICATE,
        "Basic realm=\"recvault\", charset=\"UTF-8\"",
    )
}

/// The original's media type, by its file name's extension.
pub fn content_type(name: &[u8]) -> &'static str {
    let ext = name
        .rsplit(|b| *b == b'.')
        .next()
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_slice() {
        b"wav" => "audio/wav",
        b"mp3" => "audio/mpeg",
        b"gsm" => "audio/x-gsm",
        b"ogg" | b"opus" => "audio/ogg",
        b"flac" => "audio/flac",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_urls_never_outlive_the_link() {
        let max = Duration::from_secs(300);
        assert_eq!(presign_ttl(max, None, 1000), Some(max));
        assert_eq!(
            presign_ttl(max, Some(1060), 1000),
            Some(Duration::from_secs(60))
        );
        assert_eq!(presign_ttl(max, Some(99_999), 1000), Some(max));
        assert_eq!(presign_ttl(max, Some(1000), 1000), None);
        assert_eq!(presign_ttl(max, Some(900), 1000), None);
    }

    #[test]
    fn media_types_follow_the_extension() {
        assert_eq!(
            content_type(b"20260301-101500_5551234567-all.wav"),
            "audio/wav"
        );
        assert_eq!(content_type(b"x-all.MP3"), "audio/mpeg");
        assert_eq!(content_type(b"x.gsm"), "audio/x-gsm");
        assert_eq!(content_type(b"noext"), "application/octet-stream");
    }
}
