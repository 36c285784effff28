//! What the store's objects say about one host's recordings: every object
//! carries its recording's facts as metadata (`store::meta`), so a ledger
//! row can be made from it — name, size, mtime, both SHA-256s, codec, the
//! id it had, and what was known of its call. Objects of one recording
//! (an upload that failed its verification and the one that passed, under
//! another key) are grouped into one. `ledger rebuild` makes a ledger of
//! them; `ledger restore` brings a backup up to date with them.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::digest;
use crate::error::Error;
use crate::ledger::ArchivedObject;
use crate::recording::key::decode_name;
use crate::recording::name::Attribution;
use crate::recording::{FileIdentity, State};
use crate::store::{ObjectInfo, Store, meta, single_part_checksum};

/// One recording as its objects describe it.
#[derive(Debug, Clone)]
pub struct StoredRecording {
    /// The row, with the object most likely to be its last upload as its key.
    pub object: ArchivedObject,
    /// Its other objects' keys (earlier uploads).
    pub more_keys: Vec<String>,
}

impl StoredRecording {
    /// Every key of the recording, its object's first.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.object.object_key.as_str())
            .chain(self.more_keys.iter().map(|k| k.as_str()))
    }
}

/// What a listing found besides recordings.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub recordings: Vec<StoredRecording>,
    /// Objects under the prefix that are recordings (reserved `.recvault/`
    /// keys and those `skip` named excluded).
    pub objects: usize,
    /// Objects another host archived (their ledger is not this one).
    pub foreign: usize,
    /// Objects that could not be read as a recording of this host, and why.
    pub unreadable: Vec<(String, String)>,
}

/// The recording an object describes, or why it describes none of ours
/// (`Ok(None)`: another host's).
fn from_metadata(
    key: &str,
    info: &ObjectInfo,
    host: &str,
) -> Result<Option<ArchivedObject>, String> {
    let m = &info.metadata;
    let get = |k: &str| m.get(k).ok_or_else(|| format!("no `{k}` metadata"));
    if get(meta::HOST)? != host {
        return Ok(None);
    }
    let name = decode_name(get(meta::ORIGINAL_NAME)?).ok_or("undecodable original-name")?;
    let size = get(meta::ORIGINAL_SIZE)?
        .parse()
        .map_err(|_| "bad original-size")?;
    let mtime_ns = get(meta::ORIGINAL_MTIME_NS)?
        .parse()
        .map_err(|_| "bad original-mtime-ns")?;
    let sha256 = get(meta::ORIGINAL_SHA256)?.clone();
    let object_sha256 = get(meta::SHA256)?.clone();
    if sha256.len() != 64 || object_sha256.len() != 64 {
        return Err("SHA-256 metadata is not 64 hex digits".to_string());
    }
    Ok(Some(ArchivedObject {
        id: m.get(meta::RECORDING_ID).and_then(|v| v.parse().ok()),
        path: PathBuf::new(),
        name,
        identity: FileIdentity {
            dev: 0,
            ino: 0,
            size,
            mtime_ns,
        },
        state: State::LocalDeleted,
        sha256,
        object_key: key.to_string(),
        object_size: info.size,
        object_sha256,
        store_checksum: info.checksum.clone(),
        codec: m.get(meta::CODEC).cloned().unwrap_or_else(|| "zstd".into()),
        call: call_of(m),
        vicidial: number(m, meta::VICIDIAL_RECORDING_ID)
            .map(|id| (id, number(m, meta::CALL_LENGTH))),
    }))
}

fn number(m: &BTreeMap<String, String>, key: &str) -> Option<i64> {
    m.get(key).and_then(|v| v.parse().ok())
}

/// The call as the object's metadata describes it (the ledger's attribution
/// when it was archived: from the name or from VICIdial's database); `None`
/// if it says nothing, so the name is asked again.
fn call_of(m: &BTreeMap<String, String>) -> Option<Attribution> {
    let text = |key: &str| {
        m.get(key)
            .and_then(|v| decode_name(v))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let call = Attribution {
        matched: true,
        campaign: text(meta::CAMPAIGN),
        call_time: number(m, meta::CALL_TIME),
        phone: text(meta::PHONE),
        agent: text(meta::AGENT),
        lead_id: text(meta::LEAD_ID),
        name_time: None,
    };
    let said = call.campaign.is_some()
        || call.call_time.is_some()
        || call.phone.is_some()
        || call.agent.is_some()
        || call.lead_id.is_some();
    said.then_some(call)
}

/// Looks for the recording's local copy (same name, size and mtime) in the
/// spool; found, the row is `verified` so the daemon deletes it as usual.
pub fn locate(dirs: &[PathBuf], object: &mut ArchivedObject) {
    let name = std::ffi::OsStr::from_bytes(&object.name);
    for dir in dirs {
        let path = dir.join(name);
        if let Ok(m) = fs::symlink_metadata(&path) {
            let identity = FileIdentity::of(&m);
            if m.is_file()
                && identity.size == object.identity.size
                && identity.mtime_ns == object.identity.mtime_ns
            {
                object.path = path;
                object.identity = identity;
                object.state = State::Verified;
                return;
            }
        }
    }
    // Gone: where it most likely was (only for people; never opened).
    object.path = dirs
        .first()
        .map(|d| d.join(name))
        .unwrap_or_else(|| PathBuf::from(name));
}

/// The recordings of `host` the objects under `prefix` describe, in id
/// order (objects without an id last), leaving out reserved `.recvault/`
/// keys and those `skip` says the caller knows already (not even asked for).
pub async fn list(
    store: &dyn Store,
    prefix: &str,
    host: &str,
    skip: impl Fn(&str) -> Result<bool, Error>,
) -> Result<Listing, Error> {
    let reserved = format!("{prefix}.recvault");
    let mut objects = store.list(prefix).await?;
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    let mut listing = Listing::default();
    let mut found = Vec::new();
    for listed in objects {
        if listed.key.starts_with(&reserved) || skip(&listed.key)? {
            continue;
        }
        listing.objects += 1;
        let Some(info) = store.head(&listed.key).await? else {
            let why = "vanished while listing".to_string();
            listing.unreadable.push((listed.key, why));
            continue;
        };
        match from_metadata(&listed.key, &info, host) {
            Ok(Some(object)) => found.push(object),
            Ok(None) => listing.foreign += 1,
            Err(why) => listing.unreadable.push((listed.key, why)),
        }
    }
    listing.recordings = group(found);
    Ok(listing)
}

/// What makes objects one recording's, in the order rows are written:
/// without an id last; id, name, original SHA-256; an object without an
/// id on its own (its place in the listing).
type Recording = (bool, Option<i64>, Vec<u8>, String, usize);

/// Objects of one recording (same id, name and original SHA-256) as one,
/// in id order (objects without an id last, each on its own).
fn group(objects: Vec<ArchivedObject>) -> Vec<StoredRecording> {
    let mut groups: BTreeMap<Recording, Vec<ArchivedObject>> = BTreeMap::new();
    for (i, o) in objects.into_iter().enumerate() {
        // Without an id nothing says two objects are one recording.
        let alone = if o.id.is_none() { i } else { 0 };
        let key = (
            o.id.is_none(),
            o.id,
            o.name.clone(),
            o.sha256.clone(),
            alone,
        );
        groups.entry(key).or_default().push(o);
    }
    groups
        .into_values()
        .map(|mut objects| {
            objects.sort_by_key(|o| std::cmp::Reverse(rank(o)));
            let object = objects.remove(0);
            let more_keys = objects.into_iter().map(|o| o.object_key).collect();
            StoredRecording { object, more_keys }
        })
        .collect()
}

/// How likely an object is its recording's last upload: not contradicted
/// by the store's own checksum, then under the key a second upload takes
/// (`~<id>` after the name), then the key.
fn rank(o: &ArchivedObject) -> (bool, bool, std::cmp::Reverse<String>) {
    let whole = digest::from_hex(&o.object_sha256).map(|sha| single_part_checksum(&sha));
    let contradicted = match (&o.store_checksum, whole) {
        // A multipart composite (`…-N`) cannot be compared with a whole-object hash.
        (Some(got), Some(want)) => !got.contains('-') && *got != want,
        _ => false,
    };
    let unique = o.id.is_some_and(|id| {
        let tag = format!("~{id}");
        o.object_key.ends_with(&tag) || o.object_key.contains(&format!("{tag}."))
    });
    (
        !contradicted,
        unique,
        std::cmp::Reverse(o.object_key.clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(id: Option<i64>, key: &str, checksum: Option<&str>) -> ArchivedObject {
        ArchivedObject {
            id,
            path: PathBuf::new(),
            name: b"a.wav".to_vec(),
            identity: FileIdentity {
                dev: 0,
                ino: 0,
                size: 1,
                mtime_ns: 1,
            },
            state: State::LocalDeleted,
            sha256: hex::encode([1; 32]),
            object_key: key.into(),
            object_size: 1,
            object_sha256: hex::encode([2; 32]),
            store_checksum: checksum.map(str::to_string),
            codec: "zstd".into(),
            call: None,
            vicidial: None,
        }
    }

    #[test]
    fn objects_of_one_recording_are_one_row_keyed_by_its_last_upload() {
        let good = single_part_checksum(&[2; 32]);
        let damaged = single_part_checksum(&[3; 32]);
        let groups = group(vec![
            object(Some(4), "h/a.wav.zst", Some(&good)),
            object(Some(4), "h/a.wav~4.zst", Some(&good)),
            object(Some(42), "h/a.wav~4.zst.other", None),
            object(None, "h/x1", None),
            object(None, "h/x2", None),
        ]);
        let keys: Vec<Vec<&str>> = groups.iter().map(|g| g.keys().collect()).collect();
        assert_eq!(
            keys,
            [
                vec!["h/a.wav~4.zst", "h/a.wav.zst"],
                vec!["h/a.wav~4.zst.other"],
                vec!["h/x1"],
                vec!["h/x2"],
            ]
        );
        // The store's checksum says the `~4` upload is not the bytes we sent.
        let groups = group(vec![
            object(Some(4), "h/a.wav.zst", Some(&good)),
            object(Some(4), "h/a.wav~4.zst", Some(&damaged)),
        ]);
        assert_eq!(groups[0].object.object_key, "h/a.wav.zst");
        assert_eq!(groups[0].more_keys, ["h/a.wav~4.zst"]);
    }
}
