//! This server's row in VICIdial's `servers` table: the addresses a listen
//! link may use.
//!
//! VICIdial's admin pages (admin_modify_lead.php, AST_quality_control_report.php,
//! …) take the host of a `recording_log.location` URL — everything between
//! `http(s)://` and the first `/`, port included — look it up as
//! `servers.server_ip`, and when that server's `recording_web_link` is
//! `ALT_IP` or `EXTERNAL_IP` replace it (`preg_replace("/$ip/i", …)`, dots
//! matching any character, anywhere in the URL) with `alt_server_ip` or
//! `external_server_ip`. A link whose host carries a port is therefore never
//! rewritten.

use super::db::{DbError, VicidialDb};

/// `servers.recording_web_link`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebLink {
    /// `SERVER_IP` (the default): links keep `server_ip`.
    ServerIp,
    /// `ALT_IP`: the admin shows links with `alt_server_ip`.
    AltIp,
    /// `EXTERNAL_IP`: the admin shows links with `external_server_ip`.
    ExternalIp,
}

/// This server's addresses as VICIdial knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddresses {
    /// `server_ip` (VARserver_ip).
    pub server_ip: String,
    /// `alt_server_ip`, if set.
    pub alt_ip: Option<String>,
    /// `external_server_ip`, if set.
    pub external_ip: Option<String>,
    /// `recording_web_link`.
    pub web_link: WebLink,
    /// `active = 'Y'`.
    pub active: bool,
}

impl ServerAddresses {
    /// The host the admin pages show recording links with.
    pub fn link_host(&self) -> &str {
        let chosen = match self.web_link {
            WebLink::ServerIp => None,
            WebLink::AltIp => self.alt_ip.as_deref(),
            WebLink::ExternalIp => self.external_ip.as_deref(),
        };
        chosen.unwrap_or(&self.server_ip)
    }

    /// Every address of this server, for deciding whether a location is local.
    pub fn hosts(&self) -> Vec<&str> {
        let mut hosts = vec![self.server_ip.as_str()];
        hosts.extend(self.alt_ip.as_deref());
        hosts.extend(self.external_ip.as_deref());
        hosts
    }
}

impl VicidialDb {
    /// This server's `servers` row (None if VICIdial has no row for `server_ip`).
    pub async fn this_server(&self) -> Result<Option<ServerAddresses>, DbError> {
        let server_ip = self.server_ip().to_string();
        type Raw = (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let row: Option<Raw> = self
            .run("reading servers", move |c| {
                Box::pin(async move {
                    sqlx::query_as(
                        "SELECT server_ip, alt_server_ip, external_server_ip, \
                                recording_web_link, active \
                         FROM servers WHERE server_ip = ? LIMIT 1",
                    )
                    .bind(server_ip)
                    .fetch_optional(&mut *c)
                    .await
                })
            })
            .await?;
        let nonempty =
            |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        Ok(
            row.map(|(server_ip, alt, external, link, active)| ServerAddresses {
                server_ip,
                alt_ip: nonempty(alt),
                external_ip: nonempty(external),
                web_link: match link.as_deref() {
                    Some("ALT_IP") => WebLink::AltIp,
                    Some("EXTERNAL_IP") => WebLink::ExternalIp,
                    _ => WebLink::ServerIp,
                },
                active: active.as_deref() == Some("Y"),
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_host_follows_recording_web_link() {
        let mut s = ServerAddresses {
            server_ip: "10.0.0.5".into(),
            alt_ip: Some("192.0.2.5".into()),
            external_ip: None,
            web_link: WebLink::AltIp,
            active: true,
        };
        assert_eq!(s.link_host(), "192.0.2.5");
        s.web_link = WebLink::ExternalIp;
        // No external IP set: the admin pages would blank the host; keep ours.
        assert_eq!(s.link_host(), "10.0.0.5");
        s.web_link = WebLink::ServerIp;
        assert_eq!(s.link_host(), "10.0.0.5");
        assert_eq!(s.hosts(), ["10.0.0.5", "192.0.2.5"]);
    }
}
