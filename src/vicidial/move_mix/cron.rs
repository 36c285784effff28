//! Never beside VICIdial's own step 1: while a crontab still runs
//! `AST_CRON_audio_1_move_mix.pl`, the two would take the same legs at the
//! same time (the script with `mv -f`, which replaces), so recvault refuses
//! to start, naming the file and line.
//!
//! Looked at: root's and asterisk's crontabs where Debian
//! (`/var/spool/cron/crontabs/`), CentOS (`/var/spool/cron/`) and openSUSE
//! and ViciBox (`/var/spool/cron/tabs/`) keep them, `/etc/crontab` and every
//! file in `/etc/cron.d/` cron reads (not hidden ones, editor backups or
//! package managers' leftovers). A line counts unless it is a comment, or
//! the script's name comes after a shell comment (` #`) on it.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What a crontab line must name to count.
pub const SCRIPT: &str = "AST_CRON_audio_1_move_mix";

/// Crontab files, relative to the root.
const CRONTABS: [&str; 7] = [
    "var/spool/cron/crontabs/root",
    "var/spool/cron/crontabs/asterisk",
    "var/spool/cron/root",
    "var/spool/cron/asterisk",
    "var/spool/cron/tabs/root",
    "var/spool/cron/tabs/asterisk",
    "etc/crontab",
];

/// The directory of system crontab fragments, relative to the root.
const CRON_D: &str = "etc/cron.d";

/// A crontab line that still runs the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronLine {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    pub text: String,
}

impl fmt::Display for CronLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} line {}: `{}`",
            self.file.display(),
            self.line,
            self.text.trim()
        )
    }
}

/// What a look at the crontabs found.
#[derive(Debug, Default)]
pub struct CronScan {
    /// Lines that run the script.
    pub found: Vec<CronLine>,
    /// Crontabs that exist but could not be read (root's, for the daemon's
    /// user: the unit's `ExecStartPre=+recvault vicidial cron-check` reads
    /// them as root).
    pub unreadable: Vec<(PathBuf, io::Error)>,
}

impl CronScan {
    /// The refusal, naming every line, if any line runs the script.
    pub fn refusal(&self) -> Option<String> {
        if self.found.is_empty() {
            return None;
        }
        let lines: Vec<String> = self.found.iter().map(|l| format!("  {l}")).collect();
        Some(format!(
            "[vicidial] move_mix = true, but cron still runs VICIdial's AST_CRON_audio_1_move_mix.pl; \
             the two would take the same legs at once. Comment out (or delete) this line, or set move_mix = false:\n{}",
            lines.join("\n")
        ))
    }
}

/// The crontabs of this machine, looked at.
pub fn scan() -> CronScan {
    scan_under(&root())
}

/// Where the crontab paths start: `/`. Debug builds (the tests' binary)
/// take another root from `RECVAULT_TEST_CRON_ROOT`; a release build never
/// looks anywhere but the machine's own crontabs.
fn root() -> PathBuf {
    if cfg!(debug_assertions)
        && let Some(root) = std::env::var_os("RECVAULT_TEST_CRON_ROOT")
    {
        return PathBuf::from(root);
    }
    PathBuf::from("/")
}

/// The crontabs under `root`, looked at.
pub fn scan_under(root: &Path) -> CronScan {
    let mut out = CronScan::default();
    let mut files: Vec<PathBuf> = CRONTABS.iter().map(|f| root.join(f)).collect();
    match fs::read_dir(root.join(CRON_D)) {
        Ok(entries) => {
            let mut fragments: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| cron_reads(&e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .collect();
            fragments.sort();
            files.extend(fragments);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => out.unreadable.push((root.join(CRON_D), e)),
    }
    for file in files {
        match fs::read(&file) {
            Ok(bytes) => out.found.extend(lines_running_script(&file, &bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // A directory where a crontab would be holds no lines.
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => {}
            Err(e) => out.unreadable.push((file, e)),
        }
    }
    out
}

/// Whether cron reads a file of this name in `/etc/cron.d`: not hidden
/// files, editor backups or package managers' leftovers.
fn cron_reads(name: &str) -> bool {
    const LEFTOVERS: [&str; 9] = [
        ".dpkg-old",
        ".dpkg-new",
        ".dpkg-dist",
        ".dpkg-tmp",
        ".rpmsave",
        ".rpmorig",
        ".rpmnew",
        ".ucf-old",
        ".ucf-dist",
    ];
    !name.starts_with('.')
        && !name.ends_with('~')
        && !name.ends_with(".swp")
        && !LEFTOVERS.iter().any(|l| name.ends_with(l))
}

/// The lines of one crontab that run the script.
fn lines_running_script(file: &Path, bytes: &[u8]) -> Vec<CronLine> {
    String::from_utf8_lossy(bytes)
        .lines()
        .enumerate()
        .filter(|(_, text)| runs_script(text))
        .map(|(i, text)| CronLine {
            file: file.to_path_buf(),
            line: i + 1,
            text: text.to_string(),
        })
        .collect()
}

fn runs_script(line: &str) -> bool {
    let line = line.trim_start();
    if line.starts_with('#') {
        return false;
    }
    let Some(at) = line.find(SCRIPT) else {
        return false;
    };
    // `… ; true # AST_CRON_audio_1_move_mix.pl`: the shell never runs it.
    !line[..at].contains(" #") && !line[..at].contains("\t#")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn finds_active_lines_and_ignores_comments() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(scan_under(root).found.is_empty());
        write(
            root,
            "var/spool/cron/crontabs/root",
            "### recording mixing/compressing/ftping scripts\n\
             #0,3,6,9,12,15,18,21,24,27,30,33,36,39,42,45,48,51,54,57 * * * * /usr/share/astguiclient/AST_CRON_audio_1_move_mix.pl --MIX\n\
             1,4,7 * * * * /usr/share/astguiclient/AST_CRON_audio_2_compress.pl --GSM\n\
             * * * * * /bin/true # AST_CRON_audio_1_move_mix.pl is retired\n",
        );
        write(
            root,
            "etc/cron.d/vicidial.dpkg-old",
            "* * * * * root AST_CRON_audio_1_move_mix.pl\n",
        );
        write(
            root,
            "etc/cron.d/.hidden",
            "* * * * * root AST_CRON_audio_1_move_mix.pl\n",
        );
        let scan = scan_under(root);
        assert!(scan.found.is_empty(), "{:?}", scan.found);
        assert!(scan.refusal().is_none());

        write(
            root,
            "var/spool/cron/tabs/root",
            "# ViciBox\n\n  0,3,6 * * * * /usr/share/astguiclient/AST_CRON_audio_1_move_mix.pl --MIX\n",
        );
        write(
            root,
            "etc/cron.d/vicidial",
            "*/3 * * * * root /usr/share/astguiclient/AST_CRON_audio_1_move_mix.pl\n",
        );
        let scan = scan_under(root);
        let found: Vec<(String, usize)> = scan
            .found
            .iter()
            .map(|l| {
                (
                    l.file.strip_prefix(root).unwrap().display().to_string(),
                    l.line,
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![
                ("var/spool/cron/tabs/root".to_string(), 3),
                ("etc/cron.d/vicidial".to_string(), 1)
            ]
        );
        let refusal = scan.refusal().unwrap();
        assert!(
            refusal.contains("tabs/root line 3: `0,3,6 * * * * /usr/share/astguiclient/AST_CRON_audio_1_move_mix.pl --MIX`"),
            "{refusal}"
        );
    }

    #[test]
    fn an_unreadable_crontab_is_reported_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        // A crontab that cannot be read as a file at all (a dangling link
        // loops back on itself).
        let crontabs = dir.path().join("var/spool/cron/crontabs");
        fs::create_dir_all(&crontabs).unwrap();
        std::os::unix::fs::symlink("root", crontabs.join("root")).unwrap();
        let scan = scan_under(dir.path());
        assert_eq!(scan.unreadable.len(), 1, "{:?}", scan.unreadable);
        assert!(scan.found.is_empty());
    }
}
