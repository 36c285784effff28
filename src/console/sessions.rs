//! Who is logged in: sessions in the daemon's memory, named by a random
//! 256-bit id in a cookie, ended by logout, by `idle_timeout` without use,
//! or `max_session` after login (a daemon restart ends them all: nothing to
//! steal from disk). Each session has its own CSRF secret, and the
//! recordings its user gave a reason to hear ([`Sessions::grant`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Role, csrf};
use crate::catalog::{Actor, RecordingRef};
use crate::units::now_secs;

/// Sessions at most; a new login past it drops the expired, then the oldest.
const MAX_SESSIONS: usize = 10_000;
/// A reason to listen holds this long.
const GRANT_FOR: Duration = Duration::from_secs(30 * 60);

/// Where a user's password was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Local,
    Vicidial,
}

/// The person behind a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub name: String,
    pub source: Source,
    pub role: Role,
    pub client: IpAddr,
}

impl Who {
    /// Who this is for the two-person rule (a local account and a VICIdial
    /// user of the same name are two people).
    pub fn key(&self) -> String {
        match self.source {
            Source::Local => format!("local:{}", self.name),
            Source::Vicidial => format!("vicidial:{}", self.name.to_lowercase()),
        }
    }

    /// The user as the audit trail names them: name, where checked, address.
    pub fn label(&self) -> String {
        let source = match self.source {
            Source::Local => "console account",
            Source::Vicidial => "VICIdial user",
        };
        format!("{} ({source}, console from {})", self.name, self.client)
    }

    /// The actor of the changes this user makes.
    pub fn actor(&self) -> Actor {
        Actor {
            uid: Actor::current().uid,
            user: self.label(),
        }
    }
}

struct Session {
    who: Who,
    csrf_key: [u8; 32],
    started: Instant,
    last: Instant,
    /// Recordings this user may hear, with the reason given and when.
    grants: HashMap<RecordingRef, (String, Instant)>,
}

/// A logged-in request's view of its session.
#[derive(Clone)]
pub struct Viewer {
    pub id: String,
    pub who: Who,
    csrf_key: [u8; 32],
}

impl Viewer {
    /// The CSRF proof for a form posting to `action`.
    pub fn token(&self, action: &str) -> String {
        csrf::token(&self.csrf_key, action, now_secs())
    }

    /// True if `proof` is this session's for `action`.
    pub fn check(&self, action: &str, proof: &str) -> bool {
        csrf::check(&self.csrf_key, action, Some(proof), now_secs())
    }

    /// A POST form to `action` with its proof, `fields` (HTML) and a button.
    pub fn post_form(&self, action: &str, fields: &str, button: &str, class: &str) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "<form method=\"post\" action=\"{}\" class=\"{class}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">{fields}\
             <button type=\"submit\">{}</button></form>",
            super::html::esc(action),
            self.token(action),
            super::html::esc(button)
        );
        out
    }
}

/// Every session.
pub struct Sessions {
    idle: Duration,
    max: Duration,
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub fn new(idle: Duration, max: Duration) -> Sessions {
        Sessions {
            idle,
            max,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn live(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last) < self.idle && now.duration_since(s.started) < self.max
    }

    /// Starts a session for `who`; its id goes in the cookie.
    pub fn start(&self, who: Who) -> String {
        let id = hex::encode(super::random::<32>());
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| self.live(s, now));
            if map.len() >= MAX_SESSIONS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, s)| s.last)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Session {
                who,
                csrf_key: super::random(),
                started: now,
                last: now,
                grants: HashMap::new(),
            },
        );
        id
    }

    /// The live session `id`, touched; an expired one is ended.
    pub fn view(&self, id: &str) -> Option<Viewer> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let live = self.live(map.get(id)?, now);
        if !live {
            map.remove(id);
            return None;
        }
        let s = map.get_mut(id)?;
        s.last = now;
        Some(Viewer {
            id: id.to_string(),
            who: s.who.clone(),
            csrf_key: s.csrf_key,
        })
    }

    /// Ends session `id` (logout): its cookie is worth nothing from now on.
    pub fn end(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Lets session `id` hear `rec` for a while, for `why`.
    pub fn grant(&self, id: &str, rec: RecordingRef, why: String) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get_mut(id) {
            s.grants.retain(|_, (_, at)| at.elapsed() < GRANT_FOR);
            s.grants.insert(rec, (why, Instant::now()));
        }
    }

    /// The reason session `id` gave to hear `rec`, while it holds.
    pub fn granted(&self, id: &str, rec: &RecordingRef) -> Option<String> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let (why, at) = map.get(id)?.grants.get(rec)?;
        (at.elapsed() < GRANT_FOR).then(|| why.clone())
    }
}
