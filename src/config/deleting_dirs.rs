//! The directories recvault deletes files in — `[spool] staging`, `[serve]
//! cache_dir` and a local store's `path` — checked against what it must
//! never delete. A clean-up only removes names recvault writes there, but a
//! directory shared with recordings, the ledger or a key is one wrong name
//! away from losing them, so such a config is refused outright (by `check`,
//! `check --offline` and `run`, which all load it).
//!
//! The rule, for each such directory D:
//! - D is not `/`;
//! - D is not, does not contain and does not lie inside a spool directory
//!   (unarchived recordings, VICIdial's own sub-folders);
//! - D is not and does not contain the ledger's directory (the ledger, its
//!   WAL, lock, pseudonym key and listen journal sit directly in it). D may
//!   lie inside it: that is recvault's own state directory, and staging
//!   defaults to `<ledger dir>/staging`;
//! - D is not, does not contain and does not lie inside the directory of a
//!   key file (`serve.key_file`, `serve.tls_cert`, `serve.tls_key`,
//!   `store.key_file`, `vicidial.key_file`, `vicidial.astguiclient`), unless
//!   D lies inside the ledger's directory (where the pseudonym key lives by
//!   design, and key files may too).
//!
//! Paths are compared as the kernel reaches them: canonical (symlinks
//! resolved) as far as they exist, the rest normalised lexically.

use std::fs;
use std::path::{Component, Path, PathBuf};

use super::validate::Validator;
use super::{Config, ConfigError, StoreBackend};

/// A place recvault must never delete in, resolved.
struct Protected {
    /// What it is, for the message (`the spool directory … (spool.dirs[0])`).
    what: String,
    path: PathBuf,
    /// Whether a directory inside it is refused too.
    no_inside: bool,
    /// Whether that refusal spares a directory inside the ledger's.
    spares_state: bool,
}

/// Refuses the config if a directory recvault deletes in is, contains or
/// lies inside a place it must keep (see the module's rule). `key_files`
/// are the key files the raw config named (`store.key_file`, …) besides
/// those `config` keeps.
pub(super) fn check(
    v: &Validator<'_>,
    config: &Config,
    mut key_files: Vec<(&'static str, PathBuf)>,
) -> Result<(), ConfigError> {
    if let Some(serve) = &config.serve {
        key_files.push(("serve.key_file", serve.key_file.clone()));
        if let Some(tls) = &serve.tls {
            key_files.push(("serve.tls_cert", tls.cert.clone()));
            key_files.push(("serve.tls_key", tls.key.clone()));
        }
    }
    let ledger_dir = parent_dirs(&config.ledger.path);
    let protected = protected(config, &ledger_dir, &key_files);
    for (key, dir) in deleting_dirs(config) {
        let resolved = resolve(&dir);
        let own_state = ledger_dir
            .iter()
            .any(|l| resolved.starts_with(l) && resolved != *l);
        let Some((relation, p)) = closest(&protected, &resolved, own_state) else {
            continue;
        };
        let via = match resolved == dir {
            true => String::new(),
            false => format!(" (`{}` once resolved)", resolved.display()),
        };
        return Err(v.invalid(
            key,
            format!(
                "`{}`{via} {relation} {}; recvault deletes files in {key}, so it must be a \
                 directory of its own, apart from the spool, the ledger and key files",
                dir.display(),
                p.what
            ),
        ));
    }
    Ok(())
}

/// `/`, the spool directories, the ledger's directory and the key files'.
fn protected(
    config: &Config,
    ledger_dir: &[PathBuf],
    key_files: &[(&'static str, PathBuf)],
) -> Vec<Protected> {
    let mut protected = vec![Protected {
        what: "/".into(),
        path: PathBuf::from("/"),
        no_inside: false,
        spares_state: false,
    }];
    for (i, dir) in config.spool.dirs.iter().enumerate() {
        protected.push(Protected {
            what: format!("the spool directory `{}` (spool.dirs[{i}])", dir.display()),
            path: resolve(dir),
            no_inside: true,
            spares_state: false,
        });
    }
    for dir in ledger_dir {
        protected.push(Protected {
            what: format!("the ledger's directory `{}` (ledger.path)", dir.display()),
            path: dir.clone(),
            no_inside: false,
            spares_state: false,
        });
    }
    for (key, file) in key_files {
        for dir in parent_dirs(file) {
            protected.push(Protected {
                what: format!("`{}`, the directory of {key}", dir.display()),
                path: dir,
                no_inside: true,
                spares_state: true,
            });
        }
    }
    protected
}

/// The place `dir` collides with, and how; the closest collision names
/// the problem best ("is" before "contains" before "lies inside").
fn closest<'p>(
    protected: &'p [Protected],
    dir: &Path,
    own_state: bool,
) -> Option<(&'static str, &'p Protected)> {
    let relation = |p: &Protected| {
        if dir == p.path {
            Some((0, "is"))
        } else if p.path.starts_with(dir) {
            Some((1, "contains"))
        } else if p.no_inside && !(p.spares_state && own_state) && dir.starts_with(&p.path) {
            Some((2, "lies inside"))
        } else {
            None
        }
    };
    protected
        .iter()
        .filter_map(|p| relation(p).map(|r| (r, p)))
        .min_by_key(|((rank, _), _)| *rank)
        .map(|((_, relation), p)| (relation, p))
}

/// Every configured directory recvault deletes files in, with its key.
fn deleting_dirs(config: &Config) -> Vec<(&'static str, PathBuf)> {
    let mut dirs = vec![("spool.staging", config.spool.staging.clone())];
    if let Some(serve) = &config.serve {
        dirs.push(("serve.cache_dir", serve.cache_dir.clone()));
    }
    if let Some(StoreBackend::Local { path }) = config.store.as_ref().map(|s| &s.backend) {
        dirs.push(("store.path", path.clone()));
    }
    dirs
}

/// The directory holding `file`, resolved, and, where `file` is a link
/// (a Let's Encrypt `live/` key), the one holding what it points at.
fn parent_dirs(file: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(parent) = file.parent() {
        dirs.push(resolve(parent));
    }
    if let Some(target) = fs::canonicalize(file)
        .ok()
        .as_deref()
        .and_then(Path::parent)
        && !dirs.iter().any(|d| d == target)
    {
        dirs.push(target.to_path_buf());
    }
    dirs
}

/// `path` as the kernel would reach it: each existing prefix canonical
/// (symlinks followed), what does not exist yet appended with `.` and `..`
/// applied lexically.
pub(super) fn resolve(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    // Components appended that do not exist (yet): `out` is canonical at 0.
    let mut missing = 0usize;
    for part in path.components() {
        match part {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
                missing = missing.saturating_sub(1);
            }
            Component::Normal(name) => {
                out.push(name);
                match fs::canonicalize(&out) {
                    Ok(real) if missing == 0 => out = real,
                    _ => missing += 1,
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::resolve;
    use std::path::{Path, PathBuf};

    #[test]
    fn resolves_links_and_dots_as_far_as_paths_exist() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::fs::create_dir(real.join("spool")).unwrap();
        std::os::unix::fs::symlink(real.join("spool"), real.join("link")).unwrap();
        assert_eq!(resolve(&real.join("link")), real.join("spool"));
        assert_eq!(resolve(&real.join("link/new/..")), real.join("spool"));
        assert_eq!(resolve(&real.join("link/a/./b")), real.join("spool/a/b"));
        assert_eq!(resolve(&real.join("x/../link")), real.join("spool"));
        assert_eq!(resolve(Path::new("/")), PathBuf::from("/"));
        assert_eq!(resolve(Path::new("/../..")), PathBuf::from("/"));
        assert_eq!(
            resolve(Path::new("/no-such-dir-here/a/../b")),
            PathBuf::from("/no-such-dir-here/b")
        );
    }
}
