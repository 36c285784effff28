//! Logging in and out. A local account is checked first (argon2id), else
//! the VICIdial user (VICIdial's own password check and lockout, through
//! `serve::auth`), its level mapped to a role by `[console]`. Failures of
//! both kinds are counted in one throttle (`serve::throttle::Logins`, which
//! `serve::auth` shares) and slowed per name and per address before
//! anything is checked; the page
//! never says whether the name or the password was wrong. The form's proof
//! is bound to a pre-login cookie, so another site cannot log a browser in.

use std::net::IpAddr;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::errors::Problem;
use super::sessions::{Source, Who};
use super::{Console, Ctx, Role, accounts, cookies, csrf, form, html, page, redirect};
use crate::config::LevelRoles;
use crate::serve::auth::Verdict;
use crate::serve::body::Body;
use crate::units::now_secs;

const ACTION: &str = "/console/login";

fn login_key(console: &Console, cookie: &str) -> Vec<u8> {
    [console.key.as_slice(), cookie.as_bytes()].concat()
}

/// The login page; `problem` says why the last attempt failed.
pub fn form(console: &Console, headers: &HeaderMap, problem: Option<&Problem>) -> Response<Body> {
    let (cookie, fresh) = match cookies::get(headers, cookies::LOGIN) {
        Some(c) if c.len() == 32 => (c.to_string(), false),
        _ => (hex::encode(super::random::<16>()), true),
    };
    let token = csrf::token(&login_key(console, &cookie), ACTION, now_secs());
    let who = if console.vicidial.is_some() {
        "your VICIdial user or console account"
    } else {
        "your console account"
    };
    let mut body = String::new();
    if let Some(p) = problem {
        body.push_str(&html::notice("error", &html::esc(&p.message)));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"{ACTION}\" class=\"login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
         <p class=\"hint\">Log in with {who}.</p>{}{}\
         <button type=\"submit\">Log in</button></form>",
        html::input(
            "user",
            "User",
            "",
            "autocomplete=\"username\" required autofocus"
        ),
        html::input(
            "password",
            "Password",
            "",
            "type=\"password\" autocomplete=\"current-password\" required"
        ),
    ));
    let status = problem.map(|p| p.status).unwrap_or(StatusCode::OK);
    let mut r = page(status, html::page(None, "Log in", &body));
    if fresh && let Ok(v) = HeaderValue::from_str(&cookies::set(cookies::LOGIN, &cookie, 3600)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    }
    r
}

/// A login form sent from `client`.
pub async fn submit(console: &Console, req: Request<Incoming>, client: IpAddr) -> Response<Body> {
    let cookie = cookies::get(req.headers(), cookies::LOGIN).map(str::to_string);
    let headers = req.headers().clone();
    let fail = |p: Problem| form(console, &headers, Some(&p));
    let fields = match form::read(req).await {
        Ok(f) => f,
        Err(p) => return fail(p),
    };
    let proof_ok = cookie.as_deref().is_some_and(|c| {
        csrf::check(
            &login_key(console, c),
            ACTION,
            Some(fields.get("csrf")),
            now_secs(),
        )
    });
    if !proof_ok {
        return fail(Problem::forbidden(
            "this login form is too old or was not served here; try again",
        ));
    }
    let (user, password) = (fields.get("user").to_string(), fields.get("password"));
    if user.is_empty() || password.is_empty() || user.len() > 64 {
        return fail(Problem::bad("type a user name and a password"));
    }
    match check(console, &user, password, client).await {
        Ok(who) => {
            tracing::info!(user = %who.key(), role = who.role.as_str(), client = %client, "console login");
            let id = console.sessions.start(who);
            let mut r = redirect("/console/search");
            let max = console.config.max_session.as_secs();
            for c in [
                cookies::set(cookies::SESSION, &id, max),
                cookies::clear(cookies::LOGIN),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    r.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            r
        }
        Err(p) => {
            tracing::info!(user = %crate::recording::key::display_text(&user), client = %client, status = p.status.as_u16(), "console login refused");
            fail(p)
        }
    }
}

/// Whoever `user` is, if `password` is theirs and they may log in now.
async fn check(
    console: &Console,
    user: &str,
    password: &str,
    client: IpAddr,
) -> Result<Who, Problem> {
    if let Some(wait) = console.logins.wait(user, client) {
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "too many failed logins; try again in {} seconds",
                wait.as_secs().max(1)
            ),
        ));
    }
    let lookup = user.to_string();
    let account = console
        .ledger
        .call(move |l| l.console_account(&lookup))
        .await
        .map_err(|e| {
            tracing::warn!("console login: {e}");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the ledger is busy; try again",
            )
        })?;
    if account.is_some() || console.vicidial.is_none() {
        return check_local(console, user, password, client, account).await;
    }
    check_vicidial(console, user, password, client).await
}

/// `password` against local account `account` (a hash is computed without one).
async fn check_local(
    console: &Console,
    user: &str,
    password: &str,
    client: IpAddr,
    account: Option<crate::ledger::console_accounts::Account>,
) -> Result<Who, Problem> {
    let (hash, role) = match &account {
        Some(a) => (Some(a.password_hash.clone()), accounts::role_of(&a.role)),
        None => (None, None),
    };
    let typed = password.to_string();
    let good = tokio::task::spawn_blocking(move || accounts::verify(&typed, hash.as_deref()))
        .await
        .unwrap_or(false);
    match (good, role) {
        (true, Some(role)) => {
            console.logins.succeeded(user);
            Ok(Who {
                name: user.to_string(),
                source: Source::Local,
                role,
                client,
            })
        }
        _ => {
            console.logins.failed(user, client);
            Err(wrong())
        }
    }
}

/// `user` and `password` against VICIdial's users (its check and lockout).
async fn check_vicidial(
    console: &Console,
    user: &str,
    password: &str,
    client: IpAddr,
) -> Result<Who, Problem> {
    let (Some(auth), Some(levels)) = (&console.vicidial, console.config.vicidial) else {
        return Err(wrong());
    };
    match auth.log_in_level(user, password, client).await {
        // `auth` shares the console's throttle: it counted (or forgot) this attempt.
        (Verdict::Allowed(name), Some(level)) => Ok(Who {
            name,
            source: Source::Vicidial,
            role: role_of_level(levels, level),
            client,
        }),
        (Verdict::Throttled { wait, .. }, _) => Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "too many failed logins; try again in {} seconds",
                wait.as_secs().max(1)
            ),
        )),
        (Verdict::Unavailable, _) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cannot check your login now (VICIdial's database is unavailable)",
        )),
        _ => Err(wrong()),
    }
}

/// The answer to any wrong name or password.
fn wrong() -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "wrong user name or password")
}

/// The role a VICIdial `user_level` maps to (at least listener: lower
/// levels were refused by the login check).
pub fn role_of_level(levels: LevelRoles, level: u8) -> Role {
    if level >= levels.admin {
        Role::Admin
    } else if level >= levels.compliance {
        Role::Compliance
    } else {
        Role::Listener
    }
}

/// Logs out: the session ends now, its cookie is cleared.
pub fn logout(console: &Console, ctx: &Ctx) -> Response<Body> {
    console.sessions.end(&ctx.viewer.id);
    tracing::info!(user = %ctx.viewer.who.key(), "console logout");
    let mut r = redirect("/console/login");
    if let Ok(v) = HeaderValue::from_str(&cookies::clear(cookies::SESSION)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}
