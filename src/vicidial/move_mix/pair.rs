//! The file steps of one pair of legs, in the order that makes every
//! interruption harmless: the mix written under a temporary name and fsynced
//! (`prepare`); then, once its row is written, renamed into place and the
//! legs moved to `ORIG/` (`place`). A leg left alone in MIX by a crash
//! between the two moves is recognised by its partner in `ORIG/` and the
//! mix in place, which the two must make again byte for byte
//! (`interrupted_move`).

use std::fs::{self, File};
use std::io::BufWriter;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::files::{self, Placed};
use super::legs::{LegFile, Side};
use super::mix::{self, Leg, LegError, Mixed};
use super::{Hold, crash_point};
use crate::recording::FileIdentity;

/// The mix's permissions: what the script's sox, run by root's cron with
/// umask 022, gives it, so Apache can serve it as `/RECORDINGS/`.
const MIX_MODE: u32 = 0o644;

/// Whether the mix's name in `PATHDONEmonitor` is free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Free.
    None,
    /// Taken by the same bytes: an earlier run got that far.
    Same,
    /// Taken by another recording.
    Other,
}

/// A mix written under its temporary name, and where it goes.
#[derive(Debug)]
pub struct Prepared {
    pub temp: PathBuf,
    pub dest: PathBuf,
    pub mixed: Mixed,
    pub existing: Existing,
}

/// The mix's file name: the script's `s/-in\.wav/-all.wav/`.
pub fn mix_name(stem: &str) -> String {
    format!("{stem}-all.wav")
}

/// Mixes the two legs into a temporary file in `done`, fsynced, and looks
/// at the mix's name there. The legs must still be what was listed.
pub fn prepare(done: &Path, stem: &str, inn: &LegFile, out: &LegFile) -> Result<Prepared, Hold> {
    let temp = files::temp_dir(done)?.join(mix_name(stem));
    let mixed = write_mix(&inn.path, &out.path, &temp)?;
    for leg in [inn, out] {
        if !unchanged(leg) {
            let _ = fs::remove_file(&temp);
            return Err(Hold::Changed);
        }
    }
    let dest = done.join(mix_name(stem));
    let existing = match fs::symlink_metadata(&dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Existing::None,
        Err(e) => return Err(e.into()),
        Ok(_) if files::same_contents(&temp, &dest)? => Existing::Same,
        Ok(_) => Existing::Other,
    };
    if existing == Existing::Other {
        let _ = fs::remove_file(&temp);
    }
    Ok(Prepared {
        temp,
        dest,
        mixed,
        existing,
    })
}

/// Puts the mix in place (unless it is there already) and moves both legs
/// to `orig`.
pub fn place(p: &Prepared, inn: &LegFile, out: &LegFile, orig: &Path) -> Result<(), Hold> {
    match p.existing {
        Existing::Same => fs::remove_file(&p.temp)?,
        _ => {
            if files::publish(&p.temp, &p.dest)? == Placed::Taken {
                return Err(Hold::Unmixable(format!(
                    "{} appeared meanwhile and is another recording",
                    p.dest.display()
                )));
            }
        }
    }
    crash_point("published");
    ensure_orig(orig)?;
    move_leg(&inn.path, orig)?;
    crash_point("one-leg");
    move_leg(&out.path, orig)
}

/// Moves one leg to `orig`, never over another recording's leg.
pub fn move_leg(leg: &Path, orig: &Path) -> Result<(), Hold> {
    ensure_orig(orig)?;
    match files::move_into(leg, orig)? {
        Placed::Moved | Placed::AlreadyThere => Ok(()),
        Placed::Taken => Err(Hold::Unmixable(format!(
            "{} is another recording's leg",
            orig.join(leg.file_name().unwrap_or_default()).display()
        ))),
    }
}

/// A lone leg in MIX whose partner is in `orig` and whose mix is in
/// `done`, byte for byte what the two make: the leg a crash kept from its
/// move. Returns true if that is what `leg` is.
pub fn interrupted_move(
    done: &Path,
    orig: &Path,
    stem: &str,
    side: Side,
    leg: &Path,
) -> Result<bool, Hold> {
    let dest = done.join(mix_name(stem));
    let partner = orig.join(format!("{stem}{}", side.partner().suffix()));
    if !dest.is_file() || !partner.is_file() {
        return Ok(false);
    }
    let temp = files::temp_dir(done)?.join(mix_name(stem));
    let (inn, out) = match side {
        Side::In => (leg, partner.as_path()),
        Side::Out => (partner.as_path(), leg),
    };
    let same = match write_mix(inn, out, &temp) {
        Ok(_) => files::same_contents(&temp, &dest)?,
        Err(Hold::Unmixable(_)) => false,
        Err(e) => return Err(e),
    };
    let _ = fs::remove_file(&temp);
    Ok(same)
}

/// Writes the mix of `inn` and `out` to `temp` (replacing a leftover),
/// readable as the script's is, and fsyncs it.
fn write_mix(inn: &Path, out: &Path, temp: &Path) -> Result<Mixed, Hold> {
    let (mut a, mut b) = (Leg::open(inn)?, Leg::open(out)?);
    let _ = fs::remove_file(temp);
    let file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)?;
    let mut writer = BufWriter::with_capacity(64 << 10, file);
    let written = mix::mix(&mut a, &mut b, &mut writer).and_then(|mixed| {
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.set_permissions(fs::Permissions::from_mode(MIX_MODE))?;
        file.sync_all()?;
        Ok(mixed)
    });
    written.map_err(|e| {
        let _ = fs::remove_file(temp);
        e.into()
    })
}

/// True if the leg is still the file that was listed.
fn unchanged(leg: &LegFile) -> bool {
    fs::symlink_metadata(&leg.path).is_ok_and(|m| FileIdentity::of(&m) == leg.identity)
}

/// Creates `PATHDONEmonitor/ORIG` where VICIdial's installer did not (the
/// script's `mv` would fail there and leave the legs to be mixed again and
/// again), 0755 as the installer makes it.
fn ensure_orig(orig: &Path) -> Result<(), Hold> {
    match fs::create_dir(orig) {
        Ok(()) => {
            fs::set_permissions(orig, fs::Permissions::from_mode(0o755))?;
            tracing::info!(dir = %orig.display(), "created VICIdial's ORIG folder for the legs");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl From<LegError> for Hold {
    fn from(e: LegError) -> Hold {
        match e {
            LegError::Unmixable(why) => Hold::Unmixable(why),
            LegError::Io(e) => Hold::Io(e),
        }
    }
}

impl From<std::io::Error> for Hold {
    fn from(e: std::io::Error) -> Hold {
        Hold::Io(e)
    }
}
