//! `[vicidial] move_mix`: recvault does the work of VICIdial's
//! `AST_CRON_audio_1_move_mix.pl` itself — the legs Asterisk leaves in
//! `PATHmonitor/MIX` mixed into `PATHDONEmonitor/<name>-all.wav`, the legs
//! moved to `PATHDONEmonitor/ORIG/`, `recording_log.location` pointed at
//! the mix — so a dialer needs no cron for its recordings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ConfigError;
use super::SpoolConfig;
use super::astguiclient::Astguiclient;
use super::validate::Validator;

/// Where Asterisk records when `astguiclient.conf` does not say (`PATHmonitor`).
pub const DEFAULT_MONITOR: &str = "/var/spool/asterisk/monitor";

/// `[vicidial] move_mix = true`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveMixConfig {
    /// Where the legs are: `move_mix_dir`, default `PATHmonitor/MIX` (the
    /// script's `--MIX`, as VICIdial's stock crontab runs it).
    pub dir: PathBuf,
    /// `PATHDONEmonitor`: where the mixes go (Apache's `/RECORDINGS/`);
    /// the legs go to its `ORIG/`.
    pub done: PathBuf,
    /// `move_mix_https`: locations say `https://` (the script's `--HTTPS`).
    pub https: bool,
    /// `move_mix_orphan_after`: a leg not mixed this long after its last
    /// write (no partner, audio recvault cannot mix, the mix's name taken by
    /// another recording) goes to `ORIG/` as it is, and is reported.
    pub orphan_after: Duration,
}

impl MoveMixConfig {
    /// `PATHDONEmonitor/ORIG`, where the legs go.
    pub fn orig(&self) -> PathBuf {
        self.done.join("ORIG")
    }
}

/// The `[vicidial]` keys of move_mix, as written.
#[derive(Debug, Default)]
pub(super) struct RawMoveMix {
    pub(super) move_mix: Option<bool>,
    pub(super) dir: Option<PathBuf>,
    pub(super) https: Option<bool>,
    pub(super) orphan_after: Option<String>,
}

/// With `[vicidial] enabled` off, `move_mix = true` is an error: the mixes'
/// locations go into VICIdial's database.
pub(super) fn needs_enabled(v: &Validator<'_>, raw: &RawMoveMix) -> Result<(), ConfigError> {
    match raw.move_mix {
        Some(true) => Err(v.invalid(
            "vicidial.move_mix",
            "needs vicidial.enabled = true: the mixes' locations are written into VICIdial's database",
        )),
        _ => Ok(()),
    }
}

/// Validates the move_mix keys; `None` unless `move_mix = true`.
pub(super) fn parse(
    v: &Validator<'_>,
    raw: RawMoveMix,
    astguiclient: Option<&Astguiclient>,
    done: &Path,
    spool: &SpoolConfig,
) -> Result<Option<MoveMixConfig>, ConfigError> {
    if !raw.move_mix.unwrap_or(false) {
        return Ok(None);
    }
    let dir = match raw.dir {
        Some(dir) => v.absolute("vicidial.move_mix_dir", dir)?,
        None => astguiclient
            .and_then(|a| a.monitor.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MONITOR))
            .join("MIX"),
    };
    let orig = done.join("ORIG");
    if dir == done || dir == orig || spool.dirs.contains(&dir) {
        return Err(v.invalid(
            "vicidial.move_mix_dir",
            format!(
                "`{}` is where finished recordings go; the legs must be mixed elsewhere first (VICIdial's is PATHmonitor/MIX)",
                dir.display()
            ),
        ));
    }
    let orphan_after = v.duration(
        "vicidial.move_mix_orphan_after",
        raw.orphan_after.as_deref(),
        "1h",
    )?;
    if orphan_after <= spool.settle {
        return Err(v.invalid(
            "vicidial.move_mix_orphan_after",
            format!(
                "must be longer than spool.settle ({}): a leg cannot be an orphan before it is finished",
                humantime::format_duration(spool.settle)
            ),
        ));
    }
    Ok(Some(MoveMixConfig {
        dir,
        done: done.to_path_buf(),
        https: raw.https.unwrap_or(false),
        orphan_after,
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;
    use super::*;

    const TOML: &str = "/etc/recvault/recvault.toml";

    fn config(conf: &Path, extra: &str) -> Result<Config, String> {
        let text = format!(
            "[spool]\ndirs = [\"/data/monitorDONE\", \"/data/monitorDONE/ORIG\"]\nsettle = \"15s\"\n\n\
             [vicidial]\nenabled = true\nastguiclient = \"{}\"\n{extra}",
            conf.display()
        );
        Config::parse(Path::new(TOML), &text).map_err(|e| e.to_string())
    }

    fn astguiclient(dir: &Path, text: &str) -> PathBuf {
        let conf = dir.join("astguiclient.conf");
        std::fs::write(&conf, format!("VARserver_ip => 10.0.0.5\n{text}")).unwrap();
        conf
    }

    #[test]
    fn off_unless_asked_and_defaults_from_astguiclient() {
        let dir = tempfile::tempdir().unwrap();
        let conf = astguiclient(
            dir.path(),
            "PATHmonitor => /data/monitor\nPATHDONEmonitor => /data/monitorDONE\n",
        );
        let c = config(&conf, "").unwrap();
        assert_eq!(c.vicidial.unwrap().move_mix, None);
        let c = config(&conf, "move_mix = true\n").unwrap();
        let mm = c.vicidial.unwrap().move_mix.unwrap();
        assert_eq!(mm.dir, PathBuf::from("/data/monitor/MIX"));
        assert_eq!(mm.done, PathBuf::from("/data/monitorDONE"));
        assert_eq!(mm.orig(), PathBuf::from("/data/monitorDONE/ORIG"));
        assert!(!mm.https);
        assert_eq!(mm.orphan_after, Duration::from_secs(3600));
        // Without PATHmonitor: VICIdial's own default.
        let bare = astguiclient(dir.path(), "");
        let c = config(&bare, "move_mix = true\nmove_mix_https = true\n").unwrap();
        let mm = c.vicidial.unwrap().move_mix.unwrap();
        assert_eq!(mm.dir, PathBuf::from("/var/spool/asterisk/monitor/MIX"));
        assert!(mm.https);
    }

    #[test]
    fn bad_settings_name_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let conf = astguiclient(dir.path(), "PATHDONEmonitor => /data/monitorDONE\n");
        for (extra, key) in [
            (
                "move_mix = true\nmove_mix_dir = \"MIX\"\n",
                "vicidial.move_mix_dir",
            ),
            (
                "move_mix = true\nmove_mix_dir = \"/data/monitorDONE/ORIG\"\n",
                "vicidial.move_mix_dir",
            ),
            (
                "move_mix = true\nmove_mix_orphan_after = \"10s\"\n",
                "vicidial.move_mix_orphan_after",
            ),
            (
                "move_mix = true\nmove_mix_orphan_after = \"soon\"\n",
                "vicidial.move_mix_orphan_after",
            ),
            ("move_mix = \"yes\"\n", "move_mix"),
        ] {
            let e = config(&conf, extra).unwrap_err();
            assert!(e.contains(key) && e.contains(TOML), "{extra}: {e}");
        }
        let off = format!(
            "[vicidial]\nastguiclient = \"{}\"\nmove_mix = true\n",
            conf.display()
        );
        let e = Config::parse(Path::new(TOML), &off)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("vicidial.move_mix") && e.contains("vicidial.enabled"),
            "{e}"
        );
    }
}
