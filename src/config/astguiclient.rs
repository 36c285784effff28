//! `/etc/astguiclient.conf`, read exactly the way VICIdial's own Perl scripts
//! (and its PHP `dbconnect_mysqli.php`) read it.
//!
//! Each line first loses every space, tab, CR, LF and `>`, and everything from
//! the first `#` or `;` on (`s/ |>|\n|\r|\t|\#.*|;.*//gi`). A line whose
//! remainder *starts with* a key's name sets that key, and the value is what
//! follows the *last* `=` (`s/.*=//gi`, greedy). So, like VICIdial:
//! - `VARDB_pass => ab=cd` gives `cd`; a password cannot hold `#`, `;`, `>`,
//!   spaces or tabs, and only what follows its last `=` counts;
//! - a line without `=` gives the whole squeezed line (`VARDB_passX` → itself);
//! - a later line for the same key wins; keys are case-sensitive prefixes
//!   (`VARDB_password => x` also sets `VARDB_pass`).

use std::fmt;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// Where VICIdial keeps its server configuration.
pub const DEFAULT_PATH: &str = "/etc/astguiclient.conf";

/// The values recvault reads from `astguiclient.conf`, with VICIdial's
/// installer defaults (`localhost`, `asterisk`, `cron`, `1234`, `3306`) for
/// keys the file does not set.
#[derive(Clone, PartialEq, Eq)]
pub struct Astguiclient {
    /// The file this came from, for error messages.
    pub path: PathBuf,
    /// `VARserver_ip`: this server's IP as VICIdial knows it (`recording_log.server_ip`).
    pub server_ip: Option<String>,
    /// `VARDB_server`.
    pub db_server: String,
    /// `VARDB_database`.
    pub db_database: String,
    /// `VARDB_user`.
    pub db_user: String,
    /// `VARDB_pass` (never shown by Debug).
    pub db_pass: String,
    /// `VARDB_port`; empty or `0` means 3306, as in the Perl scripts.
    pub db_port: u16,
    /// `VARDB_custom_user` (the user for custom list fields; not used to connect).
    pub db_custom_user: Option<String>,
    /// `VARDB_custom_pass` (never shown by Debug).
    pub db_custom_pass: Option<String>,
    /// `PATHmonitor`: where Asterisk records (the legs `move_mix` mixes
    /// are in its `MIX/` folder).
    pub monitor: Option<PathBuf>,
    /// `PATHDONEmonitor`: the finished-recordings directory Apache serves as `/RECORDINGS/`.
    pub done_monitor: Option<PathBuf>,
    /// `VARHTTP_path`: the web path of the FTP archive server, used in
    /// `recording_log.location` by `AST_CRON_audio_3_ftp.pl`.
    pub http_path: Option<String>,
}

impl fmt::Debug for Astguiclient {
    // Passwords never reach a log, an error or a panic message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Astguiclient")
            .field("path", &self.path)
            .field("server_ip", &self.server_ip)
            .field("db_server", &self.db_server)
            .field("db_database", &self.db_database)
            .field("db_user", &self.db_user)
            .field("db_pass", &"<redacted>")
            .field("db_port", &self.db_port)
            .field("db_custom_user", &self.db_custom_user)
            .field(
                "db_custom_pass",
                &self.db_custom_pass.as_ref().map(|_| "<redacted>"),
            )
            .field("monitor", &self.monitor)
            .field("done_monitor", &self.done_monitor)
            .field("http_path", &self.http_path)
            .finish()
    }
}

impl Astguiclient {
    /// Reads and parses the file.
    pub fn load(path: &Path) -> Result<Astguiclient, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Astguiclient::parse(path, &String::from_utf8_lossy(&bytes))
    }

    /// Parses the text of an `astguiclient.conf`; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Astguiclient, ConfigError> {
        let mut raw = RawValues::default();
        // Perl's `<conf>` splits on "\n" only; a lone "\r" is squeezed out below.
        for line in text.split('\n') {
            raw.take(&squeeze(line));
        }
        let db_port = match raw.db_port.as_deref() {
            // `if (!$VARDB_port) {$VARDB_port='3306';}`
            None | Some("") | Some("0") => 3306,
            Some(p) => p.parse::<u16>().map_err(|_| ConfigError::Invalid {
                file: path.to_path_buf(),
                key: "VARDB_port".into(),
                problem: "must be a TCP port number".into(),
            })?,
        };
        Ok(Astguiclient {
            path: path.to_path_buf(),
            server_ip: raw.server_ip.filter(|s| !s.is_empty()),
            db_server: raw.db_server.unwrap_or_else(|| "localhost".into()),
            db_database: raw.db_database.unwrap_or_else(|| "asterisk".into()),
            db_user: raw.db_user.unwrap_or_else(|| "cron".into()),
            db_pass: raw.db_pass.unwrap_or_else(|| "1234".into()),
            db_port,
            db_custom_user: raw.db_custom_user,
            db_custom_pass: raw.db_custom_pass,
            monitor: raw.monitor.filter(|s| !s.is_empty()).map(PathBuf::from),
            done_monitor: raw
                .done_monitor
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            http_path: raw.http_path.filter(|s| !s.is_empty()),
        })
    }
}

/// `$line =~ s/ |>|\n|\r|\t|\#.*|;.*//gi;`
fn squeeze(line: &str) -> String {
    let end = line.find(['#', ';']).unwrap_or(line.len());
    line[..end]
        .chars()
        .filter(|c| !matches!(c, ' ' | '>' | '\n' | '\r' | '\t'))
        .collect()
}

/// `$value =~ s/.*=//gi;` — everything after the last `=`, or the whole line.
fn value_of(line: &str) -> String {
    match line.rfind('=') {
        Some(i) => line[i + 1..].to_string(),
        None => line.to_string(),
    }
}

#[derive(Default)]
struct RawValues {
    server_ip: Option<String>,
    db_server: Option<String>,
    db_database: Option<String>,
    db_user: Option<String>,
    db_pass: Option<String>,
    db_port: Option<String>,
    db_custom_user: Option<String>,
    db_custom_pass: Option<String>,
    monitor: Option<String>,
    done_monitor: Option<String>,
    http_path: Option<String>,
}

impl RawValues {
    /// Every key whose name starts the line takes its value, as each
    /// independent `if ($line =~ /^KEY/)` in the Perl scripts does.
    fn take(&mut self, line: &str) {
        let slots: [(&str, &mut Option<String>); 11] = [
            ("VARserver_ip", &mut self.server_ip),
            ("VARDB_server", &mut self.db_server),
            ("VARDB_database", &mut self.db_database),
            ("VARDB_user", &mut self.db_user),
            ("VARDB_pass", &mut self.db_pass),
            ("VARDB_port", &mut self.db_port),
            ("VARDB_custom_user", &mut self.db_custom_user),
            ("VARDB_custom_pass", &mut self.db_custom_pass),
            ("PATHmonitor", &mut self.monitor),
            ("PATHDONEmonitor", &mut self.done_monitor),
            ("VARHTTP_path", &mut self.http_path),
        ];
        for (key, slot) in slots {
            if line.starts_with(key) {
                *slot = Some(value_of(line));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Astguiclient {
        Astguiclient::parse(Path::new("/etc/astguiclient.conf"), text).unwrap()
    }

    /// The file VICIdial's installer writes (install.pl), trimmed.
    const STOCK: &str = "\
# astguiclient.conf - configuration elements for the astguiclient package
# this is the astguiclient configuration file
# all comments will be lost if you run install.pl again

# Paths used by astGUIclient
PATHhome => /usr/share/astguiclient
PATHmonitor => /var/spool/asterisk/monitor
PATHDONEmonitor => /var/spool/asterisk/monitorDONE

# The IP address of this machine
VARserver_ip => 10.10.10.15

# Database connection information
VARDB_server => 10.10.10.16
VARDB_database => asterisk
VARDB_user => cron
VARDB_pass => s3cr3t
VARDB_custom_user => custom
VARDB_custom_pass => custom1234
VARDB_port => 3306

# FTP recording archive connection information
VARHTTP_path => http://10.10.10.20
";

    #[test]
    fn stock_file() {
        let c = parse(STOCK);
        assert_eq!(c.server_ip.as_deref(), Some("10.10.10.15"));
        assert_eq!(c.db_server, "10.10.10.16");
        assert_eq!(c.db_database, "asterisk");
        assert_eq!(c.db_user, "cron");
        assert_eq!(c.db_pass, "s3cr3t");
        assert_eq!(c.db_port, 3306);
        assert_eq!(c.db_custom_user.as_deref(), Some("custom"));
        assert_eq!(c.db_custom_pass.as_deref(), Some("custom1234"));
        assert_eq!(
            c.monitor.as_deref(),
            Some(Path::new("/var/spool/asterisk/monitor"))
        );
        assert_eq!(
            c.done_monitor.as_deref(),
            Some(Path::new("/var/spool/asterisk/monitorDONE"))
        );
        assert_eq!(c.http_path.as_deref(), Some("http://10.10.10.20"));
    }

    #[test]
    fn defaults_for_missing_keys() {
        let c = parse("# nothing here\n");
        assert_eq!(
            (
                c.db_server.as_str(),
                c.db_database.as_str(),
                c.db_user.as_str()
            ),
            ("localhost", "asterisk", "cron")
        );
        assert_eq!((c.db_pass.as_str(), c.db_port), ("1234", 3306));
        assert_eq!(c.server_ip, None);
        assert_eq!((c.monitor, c.done_monitor), (None, None));
    }

    #[test]
    fn perl_squeezing_rules() {
        // Spaces, tabs and `>` vanish anywhere; `#` and `;` end the line.
        let c = parse("VARDB_pass\t=>  p a\ts>s # comment\nVARDB_user => bob;trailing\n");
        assert_eq!(c.db_pass, "pass");
        assert_eq!(c.db_user, "bob");
        // Only what follows the last `=` counts.
        assert_eq!(parse("VARDB_pass => ab=cd\n").db_pass, "cd");
        assert_eq!(parse("VARDB_pass => abc=\n").db_pass, "");
        // No `=`: the whole squeezed line, as `s/.*=//` leaves it.
        assert_eq!(parse("VARDB_pass secret\n").db_pass, "VARDB_passsecret");
        // A later line wins; keys are prefixes and case-sensitive.
        let c = parse("VARDB_pass => one\nVARDB_password => two\nvardb_pass => three\n");
        assert_eq!(c.db_pass, "two");
        // `VARDB_user` does not match `VARDB_custom_user`, and vice versa.
        let c = parse("VARDB_custom_user => cu\n");
        assert_eq!(c.db_user, "cron");
        // CRLF files and an indented key (the squeeze removes the indent).
        let c = parse("VARDB_server => db1\r\n  VARDB_database => vici\r\n");
        assert_eq!(
            (c.db_server.as_str(), c.db_database.as_str()),
            ("db1", "vici")
        );
        // A commented-out line sets nothing.
        assert_eq!(parse("#VARDB_pass => x\n").db_pass, "1234");
    }

    #[test]
    fn port_rules() {
        assert_eq!(parse("VARDB_port => \n").db_port, 3306);
        assert_eq!(parse("VARDB_port => 0\n").db_port, 3306);
        assert_eq!(parse("VARDB_port => 3307\n").db_port, 3307);
        let e = Astguiclient::parse(Path::new("/x/astguiclient.conf"), "VARDB_port => db\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/x/astguiclient.conf") && e.contains("VARDB_port"),
            "{e}"
        );
    }

    #[test]
    fn unreadable_file_names_it() {
        let e = Astguiclient::load(Path::new("/nonexistent/astguiclient.conf"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/astguiclient.conf"), "{e}");
    }

    #[test]
    fn debug_hides_passwords() {
        let c = parse("VARDB_pass => Sup3rS3cret\nVARDB_custom_pass => CustS3cret\n");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("Sup3rS3cret") && !shown.contains("CustS3cret"),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"));
    }
}
