//! VICIdial database DSNs: `mysql://user:pass@host:port/database` (also
//! `mariadb://`), parsed without ever quoting the text back: it may hold a
//! password.

use super::vicidial::{DbSettings, Secret};

/// The parts of `mysql://user:pass@host:port/database` (also `mariadb://`);
/// each part is optional except the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    /// Percent-decoded user.
    pub user: Option<String>,
    /// Percent-decoded password.
    pub password: Option<Secret>,
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: Option<u16>,
    /// Percent-decoded database name.
    pub database: Option<String>,
}

impl Dsn {
    /// Overrides what this DSN names in `db`.
    pub(super) fn apply(self, db: &mut DbSettings) {
        db.host = self.host;
        if let Some(port) = self.port {
            db.port = port;
        }
        if let Some(user) = self.user {
            db.user = user;
        }
        if let Some(password) = self.password {
            db.password = password;
        }
        if let Some(database) = self.database {
            db.database = database;
        }
    }
}

/// Parses a DSN. The error describes the problem without quoting the DSN,
/// which may hold a password.
pub fn parse_dsn(text: &str) -> Result<Dsn, String> {
    let rest = ["mysql://", "mariadb://"]
        .iter()
        .find_map(|scheme| strip_prefix_ignore_case(text.trim(), scheme))
        .ok_or("must start with mysql:// or mariadb://")?;
    if rest.contains(['?', '#']) {
        return Err("must not have a query string or fragment (`?`, `#`)".into());
    }
    let (authority, database) = match rest.split_once('/') {
        Some((a, d)) => (a, Some(d)),
        None => (rest, None),
    };
    // The password may hold `@`: the host part follows the last one.
    let (credentials, host_port) = match authority.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, authority),
    };
    let (user, password) = match credentials {
        None => (None, None),
        Some(c) => match c.split_once(':') {
            Some((u, p)) => (Some(u), Some(p)),
            None => (Some(c), None),
        },
    };
    let (host, port) = split_host_port(host_port)?;
    if host.is_empty() {
        return Err("names no host".into());
    }
    let decode = |part: &str, what: &str| {
        percent_decode(part).ok_or_else(|| format!("has a bad percent-escape in the {what}"))
    };
    let database = match database {
        None | Some("") => None,
        Some(d) if d.contains('/') => return Err("has more than one path segment".into()),
        Some(d) => Some(decode(d, "database name")?),
    };
    Ok(Dsn {
        user: user.map(|u| decode(u, "user")).transpose()?,
        password: password
            .map(|p| decode(p, "password").map(Secret::new))
            .transpose()?,
        host: host.to_string(),
        port,
        database,
    })
}

fn strip_prefix_ignore_case<'t>(text: &'t str, prefix: &str) -> Option<&'t str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn split_host_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let bad_port = || "has a port that is not a number from 1 to 65535".to_string();
    let parse_port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(bad_port)
    };
    if let Some(inner) = text.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or("has an unclosed `[`")?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, Some(parse_port(p)?))),
            None if after.is_empty() => Ok((host, None)),
            None => Err("has text after `]`".into()),
        };
    }
    match text.split_once(':') {
        Some((host, p)) => Ok((host, Some(parse_port(p)?))),
        None => Ok((text, None)),
    }
}

/// Percent-decodes `text`; None for a bad escape or non-UTF-8 bytes.
fn percent_decode(text: &str) -> Option<String> {
    String::from_utf8(crate::recording::key::decode_name(text)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_forms() {
        let d = parse_dsn("mysql://cron:1234@localhost/asterisk").unwrap();
        assert_eq!(d.user.as_deref(), Some("cron"));
        assert_eq!(d.password.as_ref().map(Secret::expose), Some("1234"));
        assert_eq!((d.host.as_str(), d.port), ("localhost", None));
        assert_eq!(d.database.as_deref(), Some("asterisk"));
        // Percent-escapes, `@` and `:` in the password, IPv6, a port.
        let d = parse_dsn("MariaDB://us%20er:p%40ss:w@rd@[::1]:3307/db%2D1").unwrap();
        assert_eq!(d.user.as_deref(), Some("us er"));
        assert_eq!(d.password.unwrap().expose(), "p@ss:w@rd");
        assert_eq!((d.host.as_str(), d.port), ("::1", Some(3307)));
        assert_eq!(d.database.as_deref(), Some("db-1"));
        let d = parse_dsn("mysql://10.0.0.9").unwrap();
        assert_eq!((d.user, d.password, d.database), (None, None, None));
    }
}
