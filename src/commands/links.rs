//! `recvault url revoke | rotate-key | resign`: links as a whole. Each
//! prints what it will change and changes it only with `--confirm`.
//!
//! - `revoke LINK|ID`: one link, or every permanent link of a recording,
//!   refused by the server from its next request on (the ledger keeps a
//!   digest of each signature, never the signature).
//! - `rotate-key --new-key-file FILE`: every `recording_log.location`
//!   recvault wrote is re-signed under the new key — a compare-and-set on
//!   the link recvault wrote, so a row VICIdial changed meanwhile is left
//!   alone and reported — then FILE replaces `serve.key_file`. The daemon is
//!   stopped meanwhile, so VICIdial never holds a link the server cannot
//!   check; the old key is not kept (links handed out by hand must be asked
//!   for again: a rotation after a leak must end every old link).
//! - `resign`: the same under the same key, to bring the locations into
//!   today's form (bound to the recording, ending with the file name).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::process::ExitCode;

use crate::cli::UrlCommand;
use crate::config::{Config, ServeConfig};
use crate::error::Error;
use crate::ledger::Ledger;
use crate::ledger::audit::Actor;
use crate::ledger::links::Revocation;
use crate::ledger::locations::Rewritten;
use crate::ledger::lock::InstanceLock;
use crate::pipeline::location::location_link;
use crate::recording::Recording;
use crate::recording::key::display_name;
use crate::serve::link::{self, Identity, Refusal, Signer, base_url};
use crate::units::local_time;
use crate::vicidial::db::{DbOptions, VicidialDb};
use crate::vicidial::location::LocationUpdate;

pub(super) async fn links(
    config: &Config,
    action: UrlCommand,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let serve = serving(config)?;
    match action {
        UrlCommand::Revoke { target, confirm } => revoke(config, serve, &target, confirm, out),
        UrlCommand::RotateKey {
            new_key_file,
            confirm,
        } => resign(config, serve, Some(&new_key_file), confirm, out).await,
        UrlCommand::Resign { confirm } => resign(config, serve, None, confirm, out).await,
    }
}

fn serving(config: &Config) -> Result<&ServeConfig, Error> {
    config.serve.as_ref().ok_or_else(|| {
        Error::Usage(format!(
            "{}: [serve] is not set: recvault signs no links",
            config.source.display()
        ))
    })
}

/// `url revoke LINK|ID`.
fn revoke(
    config: &Config,
    serve: &ServeConfig,
    target: &str,
    confirm: bool,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let signer = Signer::load(&serve.key_file)?;
    let ledger = super::open_ledger(config)?;
    let (rec, revocations) = revocations(&ledger, &signer, target)?;
    let mut new = Vec::new();
    for r in revocations {
        if !ledger.link_revoked(&r.digest)? {
            new.push(r);
        }
    }
    let name = display_name(&rec.name);
    if new.is_empty() {
        writeln!(out, "already revoked: recording {} `{name}`", rec.id)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "to revoke: the {} of recording {} `{name}` ({} signature(s)); the server refuses it from its next request on",
        new[0].what,
        rec.id,
        new.len()
    )?;
    if rec.vicidial_recording_id.is_some() && new[0].what == PERMANENT {
        writeln!(
            out,
            "note: if recording_log.location holds this link, VICIdial's listen button for that call stops working; `recvault url {} --ttl 1h` gives a new link meanwhile",
            rec.id
        )?;
    }
    if !confirm {
        writeln!(out, "nothing changed; run again with --confirm to revoke")?;
        return Ok(ExitCode::SUCCESS);
    }
    let n = ledger.revoke_links(&new, &Actor::current().user)?;
    tracing::info!(recording = rec.id, signatures = n, "listen link revoked");
    writeln!(out, "revoked {n} signature(s) of recording {}", rec.id)?;
    Ok(ExitCode::SUCCESS)
}

const PERMANENT: &str = "permanent link";

/// What `target` (a link, or a recording's id) revokes, and its recording.
fn revocations(
    ledger: &Ledger,
    signer: &Signer,
    target: &str,
) -> Result<(Recording, Vec<Revocation>), Error> {
    if let Some(l) = link::parse_url(target) {
        let digest = link::revocation_digest(l.signature);
        let t = ledger.link_target(l.id, &digest)?;
        // Any expiry passes here: an expired link needs no revoking, but
        // revoking it does no harm.
        if signer.check(&l, t.recording.as_ref(), t.v1_below, i64::MIN)
            == Err(Refusal::BadSignature)
        {
            return Err(Error::Usage(
                "this is not a link of this server's key for the recording its id names: it plays nothing, there is nothing to revoke".into(),
            ));
        }
        let what = match l.expires {
            None => PERMANENT.to_string(),
            Some(e) => format!("link expiring {}", local_time(e)),
        };
        let rec = t.recording.expect("checked against a row");
        let r = Revocation {
            digest,
            recording_id: rec.id,
            what,
        };
        return Ok((rec, vec![r]));
    }
    let Ok(id) = target.parse::<i64>() else {
        return Err(Error::Usage(format!(
            "`{}`: neither a link (http://host:port/r/…) nor a recording's ledger id",
            crate::recording::key::display_text(target)
        )));
    };
    let rec = ledger.recording(id)?;
    let v1_below = ledger.link_target(id, "")?.v1_below;
    let all = permanent_links(signer, &rec, v1_below);
    Ok((rec, all))
}

/// Every permanent link `rec` may have: bound to each identity it may
/// have had, and from before v2 if its id is below the mark.
fn permanent_links(signer: &Signer, rec: &Recording, v1_below: i64) -> Vec<Revocation> {
    let mut signatures: Vec<String> = Identity::candidates(rec)
        .iter()
        .map(|identity| signer.sign(rec.id, identity, None))
        .collect();
    if rec.id < v1_below {
        signatures.push(signer.sign_v1(rec.id, None));
    }
    signatures
        .iter()
        .map(|s| Revocation {
            digest: link::revocation_digest(s),
            recording_id: rec.id,
            what: PERMANENT.into(),
        })
        .collect()
}

/// One location to re-sign.
struct Change {
    row: Rewritten,
    link: String,
}

/// What a re-signing will do.
#[derive(Default)]
struct Plan {
    changes: Vec<Change>,
    current: usize,
    /// Left as they are, and why.
    left: Vec<(Rewritten, &'static str)>,
}

/// `url rotate-key --new-key-file FILE` (`new_key`), or `url resign`.
async fn resign(
    config: &Config,
    serve: &ServeConfig,
    new_key: Option<&Path>,
    confirm: bool,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let base = base_url(config).expect("[serve] is set");
    let signer = signer_for(serve, new_key)?;
    // The daemon would rewrite locations and serve with the old key meanwhile.
    let _lock = match confirm {
        false => None,
        true => Some(
            InstanceLock::acquire(&config.ledger.path).map_err(|source| Error::Busy {
                source,
                hint: "stop the daemon first (systemctl stop recvault) and start it again afterwards",
            })?,
        ),
    };
    let ledger = super::open_ledger(config)?;
    let unfinished = ledger.locations_unfinished()?;
    if unfinished > 0 {
        return Err(Error::Usage(format!(
            "{unfinished} recording_log location change(s) were cut short: start the daemon until `recvault status` shows none rewriting (or run `recvault vicidial restore-locations` again if that was cut short), then run this again"
        )));
    }
    let plan = match config.vicidial {
        Some(_) => plan(&ledger, &signer, &base)?,
        None => Plan::default(),
    };
    print_plan(&plan, serve, new_key, out)?;
    if !confirm {
        writeln!(out, "nothing changed; run again with --confirm to apply")?;
        return Ok(ExitCode::SUCCESS);
    }
    out.flush()?;
    let (done, left) = match (&config.vicidial, plan.changes.is_empty()) {
        (Some(vc), false) => {
            let db = VicidialDb::new(&vc.db, DbOptions::from_config(vc));
            let applied = apply_all(&ledger, &db, &plan.changes, out).await;
            db.close().await;
            applied?
        }
        _ => (0, 0),
    };
    writeln!(
        out,
        "re-signed {done}, left {left} that someone else changed since"
    )?;
    if let Some(path) = new_key {
        install_key(path, &serve.key_file)?;
        tracing::info!(key_file = %serve.key_file.display(), "link key rotated");
        writeln!(
            out,
            "serve.key_file {} now holds the new key; links signed with the old one no longer play",
            serve.key_file.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The key links are re-signed with: the new one (never the current one
/// again), or the current one.
fn signer_for(serve: &ServeConfig, new_key: Option<&Path>) -> Result<Signer, Error> {
    let current = Signer::load(&serve.key_file)?;
    let Some(path) = new_key else {
        return Ok(current);
    };
    let next = Signer::load_as(path, "--new-key-file")?;
    if next.same_key(&current) {
        return Err(Error::Usage(format!(
            "--new-key-file {}: this is the key serve.key_file already holds",
            path.display()
        )));
    }
    Ok(next)
}

/// Each location recvault wrote: its link under `signer` in today's form.
fn plan(ledger: &Ledger, signer: &Signer, base: &str) -> Result<Plan, Error> {
    let mut plan = Plan::default();
    for row in ledger.locations_to_resign()? {
        let rec = ledger.recording(row.recording_id)?;
        let revoked = link::parse_url(&row.new)
            .map(|l| ledger.link_revoked(&link::revocation_digest(l.signature)))
            .transpose()?
            .unwrap_or(false);
        if revoked {
            plan.left.push((row, "its link was revoked"));
            continue;
        }
        let Some(link) = location_link(base, signer, &rec) else {
            plan.left
                .push((row, "the link would not fit in 255 characters"));
            continue;
        };
        if link == row.new && row.pending.is_none() {
            plan.current += 1;
            continue;
        }
        plan.changes.push(Change { row, link });
    }
    Ok(plan)
}

fn print_plan(
    plan: &Plan,
    serve: &ServeConfig,
    new_key: Option<&Path>,
    out: &mut impl Write,
) -> Result<(), Error> {
    writeln!(
        out,
        "{} recording_log location(s) to re-sign{}; {} already current; {} left as they are",
        plan.changes.len(),
        if new_key.is_some() {
            " under the new key"
        } else {
            ""
        },
        plan.current,
        plan.left.len()
    )?;
    for c in &plan.changes {
        writeln!(
            out,
            "  recording_log {} ({}): {} -> {}",
            c.row.vicidial_recording_id as u32,
            display_name(&c.row.name),
            c.row.new,
            c.link
        )?;
    }
    for (row, why) in &plan.left {
        writeln!(
            out,
            "  recording_log {} ({}): left as it is: {why}",
            row.vicidial_recording_id as u32,
            display_name(&row.name)
        )?;
    }
    if let Some(path) = new_key {
        writeln!(
            out,
            "then serve.key_file {} gets the key in {} (moved there); links signed with the old key stop playing",
            serve.key_file.display(),
            path.display()
        )?;
    }
    Ok(())
}

/// Re-signs every planned location, reporting each one left alone:
/// (re-signed, left). Stops at the first database failure.
async fn apply_all(
    ledger: &Ledger,
    db: &VicidialDb,
    changes: &[Change],
    out: &mut impl Write,
) -> Result<(usize, usize), Error> {
    let (mut done, mut left) = (0, 0);
    for change in changes {
        match apply(ledger, db, change).await {
            Ok(None) => done += 1,
            Ok(Some(why)) => {
                left += 1;
                let vid = change.row.vicidial_recording_id as u32;
                writeln!(out, "  recording_log {vid}: {why}")?;
            }
            Err(e) => {
                writeln!(
                    out,
                    "stopped after {done} of {}: run the same command again to finish (the key is unchanged until then)",
                    changes.len()
                )?;
                return Err(e);
            }
        }
    }
    Ok((done, left))
}

/// Re-signs one location: the new link recorded durably, then one
/// compare-and-set on the link recvault wrote (or on the one a run cut
/// short left there). None when done, else why it was left.
async fn apply(ledger: &Ledger, db: &VicidialDb, change: &Change) -> Result<Option<String>, Error> {
    let (id, vid) = (
        change.row.recording_id,
        change.row.vicidial_recording_id as u32,
    );
    ledger.location_resigning(id, &change.link)?;
    let mut update = db
        .replace_location(vid, &change.row.new, &change.link)
        .await?;
    if let (LocationUpdate::Changed { current: Some(c) }, Some(p)) = (&update, &change.row.pending)
        && c == p
    {
        update = db.replace_location(vid, p, &change.link).await?;
    }
    let why = match update {
        LocationUpdate::Updated => {
            ledger.location_resigned(id)?;
            return Ok(None);
        }
        LocationUpdate::Changed { current } => format!(
            "changed by someone else to {}; not re-signed",
            current.as_deref().unwrap_or("NULL")
        ),
        LocationUpdate::Missing => "the recording_log row is gone".to_string(),
    };
    ledger.location_done(id, "skipped", &why)?;
    Ok(Some(why))
}

/// Puts the key in `new` at `key_file`: written beside it with the old
/// file's owner and mode, synced, renamed over it; then `new` is removed.
fn install_key(new: &Path, key_file: &Path) -> Result<(), Error> {
    let bytes = fs::read(new).map_err(Error::io(new))?;
    let meta = fs::metadata(key_file).map_err(Error::io(key_file))?;
    let tmp = key_file.with_file_name(format!(
        ".{}.recvault-new",
        key_file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(meta.mode() & 0o7777)
        .open(&tmp)
        .map_err(Error::io(&tmp))?;
    file.write_all(&bytes).map_err(Error::io(&tmp))?;
    file.sync_all().map_err(Error::io(&tmp))?;
    let mine = fs::metadata(&tmp).map_err(Error::io(&tmp))?;
    if (mine.uid(), mine.gid()) != (meta.uid(), meta.gid()) {
        std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()))
            .map_err(Error::io(&tmp))?;
    }
    fs::rename(&tmp, key_file).map_err(Error::io(key_file))?;
    if let Some(dir) = key_file.parent() {
        let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    }
    fs::remove_file(new).map_err(Error::io(new))?;
    Ok(())
}
