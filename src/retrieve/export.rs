//! `recvault export`: every recording a request covers (a caller's, for a
//! subject access request; a campaign's over a date range, for an audit),
//! restored to its original bytes and proven against the ledger's SHA-256
//! before it counts, then streamed into a zip — stored entries with data
//! descriptors, never seeking back — with `recordings.csv` and `SHA256SUMS`.
//! Memory stays flat whatever the count: the request is listed as ids, each
//! recording passes through one temp file beside the zip, and the manifests
//! are spooled to temp files too. The zip is written under a temp name and
//! renamed into place only when complete.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use futures_util::StreamExt;
use rawzip::ZipArchiveWriter;
use rawzip::time::UtcDateTime;

use crate::catalog::{Catalog, CatalogError, Search, stream};
use crate::digest::{CHUNK, HashingWriter};
use crate::error::Error;
use crate::governance::requests::for_audit;
use crate::ledger::Ledger;
use crate::ledger::audit::{Action, Actor, NewEntry};
use crate::ledger::holds::Selector;
use crate::recording::key::{display_name, encode_name};
use crate::recording::pseudonym::PseudonymKey;
use crate::recording::{FileIdentity, Recording, State};
use crate::store::Store;
use crate::units::{human_bytes, local_time, now_secs};

pub mod manifest;

use manifest::{Manifests, Row};

/// What an export needs besides where it goes.
pub struct Export<'a> {
    pub ledger: &'a Ledger,
    /// `None` without a configured store: only local copies can be exported.
    pub store: Option<&'a dyn Store>,
    pub key: &'a PseudonymKey,
    /// What the request named (for the audit entry).
    pub selectors: &'a [Selector],
    /// The recordings it covers, oldest call first (the catalog's answer).
    pub selection: Vec<Selected>,
    pub actor: &'a Actor,
    /// Added to the audit entry's reason (the console's job, and why it was asked).
    pub note: Option<&'a str>,
}

/// One recording an export covers.
#[derive(Debug, Clone)]
pub enum Selected {
    /// A recording of this box's ledger (its id, its size): read from its
    /// local file while that is still the one recorded, else its object.
    Here(i64, u64),
    /// Another box's recording, as the fleet's catalog knows it: read from
    /// its object in the store (its local file is on its own box).
    Elsewhere(Box<Recording>),
}

impl Selected {
    fn size(&self) -> u64 {
        match self {
            Selected::Here(_, size) => *size,
            Selected::Elsewhere(rec) => rec.identity.size,
        }
    }
}

/// The recordings `search` matches, as the catalog answers (every box's,
/// in a fleet), in its order: this box's by id, the others' as the catalog
/// has them (their objects are read from the store).
pub async fn select(
    catalog: Arc<dyn Catalog>,
    search: Search,
) -> Result<Vec<Selected>, CatalogError> {
    let host = catalog.scope().host().to_string();
    let mut out = Vec::new();
    let mut entries = stream(catalog, search, 1000);
    while let Some(e) = entries.next().await {
        let e = e?;
        out.push(match e.host == host {
            true => Selected::Here(e.id, e.size),
            false => Selected::Elsewhere(Box::new(e.to_recording())),
        });
    }
    Ok(out)
}

/// How far an export has got.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub bytes: u64,
    pub total_bytes: u64,
}

/// What an export did.
#[derive(Debug, Clone, Default)]
pub struct ExportReport {
    /// Recordings the request covers.
    pub matched: u64,
    pub exported: u64,
    /// Original bytes exported.
    pub bytes: u64,
    /// Recordings that could not be exported or failed their check: name, why.
    pub failed: Vec<(String, String)>,
    /// Recordings with nothing left to export (erased, deleted): name, why.
    pub gone: Vec<(String, String)>,
}

/// The temp files of one export, beside its zip.
struct Temps {
    zip: PathBuf,
    manifests: PathBuf,
    object: PathBuf,
    original: PathBuf,
}

impl Temps {
    fn beside(output: &Path) -> Temps {
        let (dir, base) = super::dir_and_base(output);
        let tmp = |what: &str| dir.join(format!(".{base}.{}.{what}", std::process::id()));
        Temps {
            zip: tmp("partial"),
            manifests: tmp("manifest"),
            object: tmp("object"),
            original: tmp("original"),
        }
    }

    /// Removes what an export to the same zip killed earlier left beside it
    /// (temp files of a process that is gone).
    fn clean_stale(output: &Path) {
        let (dir, base) = super::dir_and_base(output);
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(&format!(".{base}.")) else {
                continue;
            };
            let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            // SAFETY: kill with signal 0 only asks whether the process exists.
            let alive = unsafe { libc::kill(pid, 0) } == 0
                || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
            if !alive {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    fn remove(&self, zip_too: bool) {
        let m = &self.manifests;
        for p in [
            &self.object,
            &self.original,
            &m.with_extension("csv.tmp"),
            &m.with_extension("sums.tmp"),
        ] {
            let _ = fs::remove_file(p);
        }
        if zip_too {
            let _ = fs::remove_file(&self.zip);
        }
    }
}

type Zip = ZipArchiveWriter<BufWriter<File>>;

impl Export<'_> {
    /// Writes the zip at `output` (refusing to replace a file unless
    /// `force`), calling `progress` after each recording. Nothing is
    /// written when the request covers no recording.
    pub async fn to_zip(
        &self,
        output: &Path,
        force: bool,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<ExportReport, Error> {
        if !force && fs::symlink_metadata(output).is_ok() {
            return Err(Error::Exists {
                path: output.to_path_buf(),
                hint: "already exists; pass --force to replace it",
            });
        }
        let items = &self.selection;
        let mut report = ExportReport {
            matched: items.len() as u64,
            ..ExportReport::default()
        };
        if items.is_empty() {
            return Ok(report);
        }
        Temps::clean_stale(output);
        let temps = Temps::beside(output);
        let written = self.write(items, &temps, &mut report, progress).await;
        let placed = written.and_then(|()| {
            fs::rename(&temps.zip, output).map_err(Error::io(output))?;
            let dir = output.parent().filter(|p| !p.as_os_str().is_empty());
            crate::digest::sync_dir(dir.unwrap_or(Path::new("."))).map_err(Error::io(output))
        });
        temps.remove(placed.is_err());
        placed?;
        self.audit(output, &report)?;
        Ok(report)
    }

    /// Writes every recording, then the manifests, into the temp zip.
    async fn write(
        &self,
        items: &[Selected],
        temps: &Temps,
        report: &mut ExportReport,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<(), Error> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temps.zip)
            .map_err(Error::io(&temps.zip))?;
        let mut zip: Zip = ZipArchiveWriter::new(BufWriter::with_capacity(CHUNK, file));
        let mut manifests =
            Manifests::create(&temps.manifests).map_err(Error::io(&temps.manifests))?;
        let mut names = HashSet::new();
        let mut seen = Progress {
            total: items.len() as u64,
            total_bytes: items.iter().map(Selected::size).sum(),
            ..Progress::default()
        };
        for item in items {
            let (rec, here) = match item {
                Selected::Here(id, _) => (self.ledger.recording(*id)?, true),
                Selected::Elsewhere(rec) => ((**rec).clone(), false),
            };
            let bytes = item.size();
            let row = self.one(&rec, here, &mut zip, temps, &mut names).await?;
            tally(report, &rec, &row);
            manifests.add(&row).map_err(Error::io(&temps.manifests))?;
            seen.done += 1;
            seen.bytes += bytes;
            progress(&seen);
        }
        let (csv, sums) = (manifests.csv_path.clone(), manifests.sums_path.clone());
        manifests.finish().map_err(Error::io(&csv))?;
        let zip_err = |e: io::Error| Error::Io {
            path: temps.zip.clone(),
            source: e,
        };
        add_file(&mut zip, "recordings.csv".into(), &csv, now_secs()).map_err(zip_err)?;
        add_file(&mut zip, "SHA256SUMS".into(), &sums, now_secs()).map_err(zip_err)?;
        let out = zip
            .finish()
            .map_err(|e| zip_err(io::Error::other(e.to_string())))?;
        let file = out.into_inner().map_err(|e| zip_err(e.into_error()))?;
        file.sync_all().map_err(zip_err)
    }

    /// Exports one recording into `zip` if it can be, proven first; its
    /// manifest row says what became of it. `Err` only when the zip itself
    /// could not be written (the export cannot go on).
    async fn one(
        &self,
        rec: &Recording,
        here: bool,
        zip: &mut Zip,
        temps: &Temps,
        names: &mut HashSet<String>,
    ) -> Result<Row, Error> {
        let mut row = base_row(rec);
        if let Some(why) = nothing_left(rec) {
            row.status = why;
            return Ok(row);
        }
        let fetched = self
            .fetch(rec, here, temps)
            .await
            .and_then(|(source, sha, size)| {
                row.source = source;
                check(rec, &sha, size)
            });
        match fetched {
            Err(why) => row.status = format!("FAILED: {why}"),
            Ok(note) => {
                row.duration_seconds = duration(&temps.original);
                row.file_in_zip = zip_name(rec, names);
                let name = row.file_in_zip.clone();
                tokio::task::block_in_place(|| {
                    add_file(zip, name, &temps.original, rec.time_secs())
                })
                .map_err(Error::io(&temps.zip))?;
                row.sha256 = rec.sha256.clone().unwrap_or(note.1);
                row.status = format!("exported{}", note.0);
            }
        }
        let _ = fs::remove_file(&temps.original);
        let _ = fs::remove_file(&temps.object);
        Ok(row)
    }

    /// The original bytes of `rec` into `temps.original`: from its local
    /// file (`here`: on this box) while it is still the one recorded, else
    /// from its object. Returns where they came from, their SHA-256 and size.
    async fn fetch(
        &self,
        rec: &Recording,
        here: bool,
        temps: &Temps,
    ) -> Result<(String, [u8; 32], u64), String> {
        if here && rec.state.is_local() {
            let (path, identity, dest) = (rec.path.clone(), rec.identity, temps.original.clone());
            let copied = tokio::task::spawn_blocking(move || copy_local(&path, identity, &dest))
                .await
                .map_err(|e| e.to_string())?;
            match copied {
                Ok((sha, size)) => {
                    return Ok((format!("local file {}", rec.path.display()), sha, size));
                }
                Err(e) if !rec.is_stored() => {
                    return Err(format!("local file {}: {e}", rec.path.display()));
                }
                Err(_) => {}
            }
        }
        let (Some(key), true) = (&rec.object_key, rec.is_stored()) else {
            return Err(match here {
                true => "never archived, and no local copy".to_string(),
                false => "not archived yet: its only copy is on its own box".to_string(),
            });
        };
        let store = self
            .store
            .ok_or("no store is configured to fetch it from")?;
        let source = format!("store {key}");
        let (sha, size) = super::fetch_original(store, rec, key, &temps.object, &temps.original)
            .await
            .map_err(|e| format!("{source}: {e}"))?;
        Ok((source, sha, size))
    }

    fn audit(&self, output: &Path, r: &ExportReport) -> Result<(), Error> {
        let mut reason = format!(
            "{} recordings ({}) exported, {} failed, {} with nothing left to export; selector {}",
            r.exported,
            human_bytes(r.bytes),
            r.failed.len(),
            r.gone.len(),
            for_audit(self.selectors, self.key)
        );
        if let Some(note) = self.note {
            reason.push_str("; ");
            reason.push_str(note);
        }
        let entry = NewEntry {
            action: Action::Export,
            case_id: None,
            subject: &format!("export to {}", output.display()),
            reason: &reason,
            recording_id: None,
        };
        Ok(self
            .ledger
            .audit_record(self.actor, now_secs(), &entry)
            .map(drop)?)
    }
}

/// Counts one manifest row into the report.
fn tally(report: &mut ExportReport, rec: &Recording, row: &Row) {
    let name = display_name(&rec.name);
    if row.status.starts_with("exported") {
        report.exported += 1;
        report.bytes += rec.identity.size;
    } else if let Some(why) = row.status.strip_prefix("FAILED: ") {
        report.failed.push((name, why.to_string()));
    } else {
        report.gone.push((name, row.status.clone()));
    }
}

/// What the manifest knows of `rec` before its bytes are looked at.
fn base_row(rec: &Recording) -> Row {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    Row {
        id: rec.id,
        name: display_name(&rec.name),
        call_time: local_time(rec.time_secs()),
        campaign: text(&rec.campaign),
        agent: text(&rec.agent),
        phone: text(&rec.phone),
        lead_id: text(&rec.lead_id),
        size: rec.identity.size.to_string(),
        codec: text(&rec.codec),
        sha256: text(&rec.sha256),
        ..Row::default()
    }
}

/// Why nothing of `rec` can be exported, if so.
fn nothing_left(rec: &Recording) -> Option<String> {
    if let Some(e) = &rec.erasure {
        return Some(format!("erased (request {})", e.request));
    }
    match rec.state {
        State::RemoteDeleted => Some(format!(
            "deleted {} by {}",
            rec.deleted_at.map(local_time).unwrap_or_default(),
            rec.deleted_by.as_deref().unwrap_or("retention")
        )),
        State::Gone => Some("gone: removed by someone else before it was archived".to_string()),
        _ => None,
    }
}

/// Checks restored bytes against the ledger. `Ok`: a note for the status
/// and the SHA-256 as hex (where the ledger has none: never compressed, so
/// it is computed now and said so).
fn check(rec: &Recording, sha: &[u8; 32], size: u64) -> Result<(String, String), String> {
    let got = hex::encode(sha);
    match &rec.sha256 {
        Some(want) if *want == got && size == rec.identity.size => Ok((String::new(), got)),
        Some(want) => Err(format!(
            "SHA-256 {got} ({size} bytes) is not the original's {want} ({} bytes)",
            rec.identity.size
        )),
        None => Ok((
            " (not yet archived: SHA-256 computed at export)".to_string(),
            got,
        )),
    }
}

/// Copies a local recording to `dest` while hashing it, if it is still the
/// file that was recorded (before and after).
fn copy_local(path: &Path, identity: FileIdentity, dest: &Path) -> io::Result<([u8; 32], u64)> {
    let mut input = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let same = |f: &File| -> io::Result<()> {
        match FileIdentity::of(&f.metadata()?) == identity {
            true => Ok(()),
            false => Err(io::Error::other("changed since it was recorded")),
        }
    };
    same(&input)?;
    let mut out = HashingWriter::new(BufWriter::with_capacity(CHUNK, File::create(dest)?));
    io::copy(&mut input, &mut out)?;
    out.flush()?;
    same(&input)?;
    let (_, sha, size) = out.finish();
    Ok((sha, size))
}

/// The recording's name in the zip: `recordings/` and its key-safe name,
/// with `~<id>` before the extension when a name repeats.
fn zip_name(rec: &Recording, names: &mut HashSet<String>) -> String {
    let encoded = encode_name(&rec.name);
    let mut name = format!("recordings/{encoded}");
    if !names.insert(name.clone()) {
        name = match encoded.rsplit_once('.') {
            Some((stem, ext)) => format!("recordings/{stem}~{}.{ext}", rec.id),
            None => format!("recordings/{encoded}~{}", rec.id),
        };
        names.insert(name.clone());
    }
    name
}

/// Seconds of audio in a WAV file (empty for anything else).
fn duration(path: &Path) -> String {
    let Ok(file) = File::open(path) else {
        return String::new();
    };
    match crate::codec::wav::inspect(io::BufReader::new(file)) {
        Ok(w) if w.format.byte_rate > 0 => {
            format!("{:.1}", w.data_len() as f64 / f64::from(w.format.byte_rate))
        }
        _ => String::new(),
    }
}

/// Streams the file `source` into the zip as `name` (stored, data descriptor).
fn add_file(zip: &mut Zip, name: String, source: &Path, time: i64) -> io::Result<()> {
    let zip_err = |e: rawzip::Error| io::Error::other(e.to_string());
    let (mut entry, config) = zip
        .new_file(name)
        .last_modified(UtcDateTime::from_unix(time))
        .unix_permissions(0o644)
        .start()
        .map_err(zip_err)?;
    let mut writer = config.wrap(&mut entry);
    io::copy(&mut File::open(source)?, &mut writer)?;
    let (_, descriptor) = writer.finish().map_err(zip_err)?;
    entry.finish(descriptor).map_err(zip_err)?;
    Ok(())
}
