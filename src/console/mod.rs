//! The compliance console: server-rendered pages under `/console/` on the
//! `[serve]` listener, for the people who answer a regulator, place a
//! litigation hold or handle "delete my data" without a shell. It asks the
//! [`Catalog`] (one box's ledger, or a fleet's database: it cannot tell)
//! and never SQL; its own rows are the local accounts and the export jobs
//! in the ledger.
//!
//! - pages, one file each: `login`, `search`, `recording`, `holds`,
//!   `erasure`, `exports`, `audit`, `overview`; `export_jobs`: the
//!   exports made in the background, resumed after a restart;
//! - security plumbing beside them: `sessions` (who, for how long),
//!   `csrf` (every form's proof), `cookies`, `accounts` (argon2id),
//!   `pending` (the two-person rule), `form` (bounded input), `errors`;
//! - `html`: escaping and the page frame; `assets/`: the stylesheet,
//!   compiled in. No JavaScript: every page works with plain forms, and the
//!   Content-Security-Policy allows no script at all.

use std::sync::Arc;

use async_trait::async_trait;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::catalog::{Catalog, LocalCatalog};
use crate::config::ConsoleConfig;
use crate::governance::requests::key;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::serve::auth::Auth;
use crate::serve::body::Body;
use crate::serve::router::Asker;
use crate::serve::throttle::Logins;
use crate::serve::{Mount, MountParts, Pages, State};
use crate::vicidial::db::VicidialDb;
use export_jobs::ExportJobs;

pub mod accounts;
mod audit;
pub mod cookies;
pub mod csrf;
mod erasure;
mod errors;
mod export_jobs;
mod exports;
mod form;
mod holds;
pub mod html;
mod login;
mod overview;
mod pending;
mod recording;
mod search;
mod sessions;

use errors::Problem;
use form::Form;
use sessions::{Sessions, Viewer};

/// What a user may do; each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Search and listen.
    Listener,
    /// + holds, erasure requests, the audit trail.
    Compliance,
    /// + release a hold, confirm an erasure, change retention.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Listener => "listener",
            Role::Compliance => "compliance",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::Listener, Role::Compliance, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

/// `N` random bytes from the kernel.
pub fn random<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    let mut filled = 0;
    while filled < N {
        // SAFETY: writes at most N - filled bytes into buf from filled on.
        let n = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), N - filled, 0) };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            // getrandom(2) does not fail on Linux ≥ 3.17 once the pool is up.
            panic!("getrandom: {}", std::io::Error::last_os_error());
        }
    }
    buf
}

/// The console the daemon mounts, asking the catalog `catalog` makes of
/// this box's own (itself on one box; the fleet's, which falls back to it,
/// in a cluster): the console never knows which it got.
pub fn mount(catalog: impl FnOnce(LocalCatalog) -> Arc<dyn Catalog> + Send + 'static) -> Mount {
    Box::new(move |parts: MountParts<'_>| {
        let console = parts.config.console.clone()?;
        let serve = parts.config.serve.as_ref()?;
        let catalog = catalog(
            LocalCatalog::new(parts.config.clone(), parts.ledger.clone())
                .with_store(parts.store.clone()),
        );
        tracing::info!(listen = %serve.listen, two_person = console.two_person, "serving the compliance console under /console/");
        let jobs = match key::load_or_create(&parts.config.ledger.path) {
            Ok(key) => {
                let jobs = ExportJobs::new(
                    parts.ledger.clone(),
                    catalog.clone(),
                    parts.store.clone(),
                    key,
                );
                Some(Arc::new(jobs))
            }
            Err(e) => {
                tracing::error!("console exports are off: {e}");
                None
            }
        };
        let mut pages = Console::new(
            console,
            serve.tls.is_some(),
            catalog,
            parts.ledger.clone(),
            parts.db.clone(),
            parts.metrics.clone(),
        );
        if let Some(jobs) = &jobs {
            // Unfinished jobs (a stop interrupted them) are made first.
            jobs.start();
        }
        pages.jobs = jobs;
        Some(Arc::new(pages) as Arc<dyn Pages>)
    })
}

/// The console: its settings, what it asks, and who is logged in.
pub struct Console {
    config: ConsoleConfig,
    tls: bool,
    catalog: Arc<dyn Catalog>,
    /// Local accounts only.
    ledger: Arc<Ledger>,
    vicidial: Option<Auth>,
    sessions: Sessions,
    pending: pending::Pending,
    /// Keys the login form's proof (with the pre-login cookie).
    key: [u8; 32],
    /// Failed logins, per name and per address: local accounts and
    /// VICIdial users (through `vicidial`, which shares it) add up.
    logins: Arc<Logins>,
    /// Export jobs (none without the pseudonym key the audit trail needs).
    jobs: Option<Arc<ExportJobs>>,
}

impl Drop for Console {
    fn drop(&mut self) {
        // The runner stops with the console; a job it was making is made
        // again at the next start.
        if let Some(jobs) = &self.jobs {
            jobs.stop();
        }
    }
}

impl Console {
    pub fn new(
        config: ConsoleConfig,
        tls: bool,
        catalog: Arc<dyn Catalog>,
        ledger: Arc<Ledger>,
        db: Option<Arc<VicidialDb>>,
        metrics: Arc<Metrics>,
    ) -> Console {
        let logins = Arc::new(Logins::new());
        let vicidial = match (config.vicidial, db) {
            (Some(levels), Some(db)) => {
                Some(Auth::sharing(db, levels.listener, metrics, logins.clone()))
            }
            _ => None,
        };
        Console {
            sessions: Sessions::new(config.idle_timeout, config.max_session),
            pending: pending::Pending::new(config.pending_ttl),
            config,
            tls,
            catalog,
            ledger,
            vicidial,
            key: random(),
            logins,
            jobs: None,
        }
    }

    /// Every answer's headers: no script, no framing, no caching, no referrer.
    fn harden(&self, mut r: Response<Body>) -> Response<Body> {
        let h = r.headers_mut();
        let set = |h: &mut http::HeaderMap, k: header::HeaderName, v: &'static str| {
            h.insert(k, HeaderValue::from_static(v));
        };
        set(
            h,
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; media-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        );
        set(h, header::X_FRAME_OPTIONS, "DENY");
        set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        set(h, header::REFERRER_POLICY, "no-referrer");
        set(
            h,
            "cross-origin-opener-policy".parse().expect("header"),
            "same-origin",
        );
        if !h.contains_key(header::CACHE_CONTROL) {
            set(h, header::CACHE_CONTROL, "no-store");
        }
        if self.tls {
            set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
        }
        r
    }
}

/// A page answer.
pub(crate) fn page(status: StatusCode, html: String) -> Response<Body> {
    let mut r = Response::new(Body::text(html));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// 303 to `to` (a path of the console).
pub(crate) fn redirect(to: &str) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A problem as a page, with the navigation when someone is logged in.
fn problem_page(viewer: Option<&Viewer>, p: &Problem) -> Response<Body> {
    let title = p.status.canonical_reason().unwrap_or("Error");
    let body = html::notice("error", &html::esc(&p.message));
    let mut r = page(p.status, html::page(viewer, title, &body));
    if p.status == StatusCode::SERVICE_UNAVAILABLE || p.status == StatusCode::TOO_MANY_REQUESTS {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    }
    r
}

/// One logged-in request.
pub(crate) struct Ctx {
    pub state: Arc<State>,
    pub viewer: Viewer,
    pub asker: Asker,
}

impl Ctx {
    /// Refuses users below `role`.
    pub fn need(&self, role: Role) -> Result<(), Problem> {
        if self.viewer.who.role >= role {
            Ok(())
        } else {
            Err(Problem::forbidden(&format!(
                "this needs the {} role; you are {}",
                role.as_str(),
                self.viewer.who.role.as_str()
            )))
        }
    }
}

#[async_trait]
impl Pages for Console {
    fn owns(&self, path: &str) -> bool {
        path == "/console" || path.starts_with("/console/")
    }

    async fn answer(
        &self,
        state: Arc<State>,
        req: Request<Incoming>,
        asker: Asker,
    ) -> Response<Body> {
        let r = self.route(state, req, asker).await;
        self.harden(r)
    }
}

impl Console {
    async fn route(
        &self,
        state: Arc<State>,
        req: Request<Incoming>,
        asker: Asker,
    ) -> Response<Body> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let get = method == Method::GET || method == Method::HEAD;
        if let Some(r) = self.public(&path, &method, &req) {
            return r;
        }
        if path == "/console/login" && method == Method::POST {
            return login::submit(self, req, asker.client).await;
        }
        let session = cookies::get(req.headers(), cookies::SESSION).map(str::to_string);
        let Some(viewer) = session.as_deref().and_then(|id| self.sessions.view(id)) else {
            if get {
                return redirect("/console/login");
            }
            let p = Problem::new(
                StatusCode::UNAUTHORIZED,
                "your session has ended; log in again (nothing was changed)",
            );
            return problem_page(None, &p);
        };
        let mut asker = asker;
        asker.user = Some(viewer.who.label());
        let ctx = Ctx {
            state,
            viewer,
            asker,
        };
        let answer = if get {
            self.get(&ctx, &path, req).await
        } else if method == Method::POST {
            match form::read(req).await {
                Ok(form) if ctx.viewer.check(&path, form.get("csrf")) => {
                    self.post(&ctx, &path, form).await
                }
                Ok(_) => Err(Problem::forbidden(
                    "this form is too old or was not served to you here; reload the page and try again (nothing was changed)",
                )),
                Err(p) => Err(p),
            }
        } else {
            let mut r = problem_page(
                Some(&ctx.viewer),
                &Problem::new(StatusCode::METHOD_NOT_ALLOWED, "only GET and POST"),
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
            return r;
        };
        answer.unwrap_or_else(|p| problem_page(Some(&ctx.viewer), &p))
    }

    /// What needs no session: the stylesheet, the icon, the login page.
    fn public<B>(&self, path: &str, method: &Method, req: &Request<B>) -> Option<Response<Body>> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        match path {
            "/console/assets/console.css" => Some(asset(
                include_str!("assets/console.css"),
                "text/css; charset=utf-8",
            )),
            "/console/assets/favicon.svg" => {
                Some(asset(include_str!("assets/favicon.svg"), "image/svg+xml"))
            }
            "/console/login" => Some(login::form(self, req.headers(), None)),
            _ => None,
        }
    }

    async fn get(
        &self,
        ctx: &Ctx,
        path: &str,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Problem> {
        let q = Form::of_query(&req)?;
        let rest = path.strip_prefix("/console").unwrap_or("");
        let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        match parts.as_slice() {
            [] => Ok(redirect("/console/search")),
            ["search"] => search::page(self, ctx, &q).await,
            ["search.csv"] => search::csv(self, ctx, &q).await,
            ["recordings", host, id] => recording::page(self, ctx, host, id).await,
            ["recordings", host, id, "audio"] => {
                recording::audio(self, ctx, host, id, &req, false).await
            }
            ["recordings", host, id, "original"] => {
                recording::audio(self, ctx, host, id, &req, true).await
            }
            ["holds"] => holds::page(self, ctx, &q).await,
            ["holds", "preview"] => holds::preview(self, ctx, &q).await,
            ["erasure"] => erasure::page(self, ctx).await,
            ["erasure", "progress"] => erasure::progress(self, ctx, &q).await,
            ["erasure", "report.csv"] => erasure::report(self, ctx, &q).await,
            ["exports"] => exports::list(self, ctx).await,
            ["exports", id] => exports::page(self, ctx, id).await,
            ["exports", id, "download"] => exports::download(self, ctx, id, &q).await,
            ["audit"] => audit::page(self, ctx, &q).await,
            ["overview"] => overview::page(self, ctx).await,
            ["retention", "preview"] => overview::retention_preview(self, ctx, &q).await,
            _ => Err(Problem::not_found("no such page")),
        }
    }

    async fn post(&self, ctx: &Ctx, path: &str, form: Form) -> Result<Response<Body>, Problem> {
        let rest = path.strip_prefix("/console").unwrap_or("");
        let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        match parts.as_slice() {
            ["logout"] => Ok(login::logout(self, ctx)),
            ["recordings", host, id, "listen"] => {
                recording::listen(self, ctx, host, id, &form).await
            }
            ["holds", "place"] => holds::place(self, ctx, &form).await,
            ["holds", "release"] => holds::release(self, ctx, &form).await,
            ["pending", id, "approve"] => holds::approve(self, ctx, id).await,
            ["pending", id, "cancel"] => holds::cancel(self, ctx, id),
            ["erasure", "preview"] => erasure::preview(self, ctx, &form).await,
            ["erasure", "request"] => erasure::request(self, ctx, &form).await,
            ["exports", "start"] => exports::start(self, ctx, &form).await,
            ["retention", "apply"] => overview::retention_apply(self, ctx, &form).await,
            _ => Err(Problem::not_found("no such form")),
        }
    }
}

/// A file compiled in (the stylesheet, the icon).
fn asset(text: &'static str, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::text(text));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    r
}
