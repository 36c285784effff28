//! `recvault url RECORDING [--ttl 15m | --permanent] [--presigned]`: a
//! signed listen link for one recording (expiring unless asked otherwise,
//! bound to the recording itself and ending with its file name), or a
//! presigned URL of its stored object.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::time::Duration;

use crate::codec;
use crate::config::{Codec, Config};
use crate::error::Error;
use crate::ledger::Ledger;
use crate::recording::key::display_name;
use crate::recording::{Recording, State};
use crate::retrieve;
use crate::serve::link::{Signer, base_url};
use crate::serve::playback_content_type;
use crate::units::now_secs;

/// S3's longest presigned URL.
const MAX_PRESIGNED: Duration = Duration::from_secs(7 * 86400);

pub(super) async fn url(
    config: &Config,
    wanted: &OsStr,
    ttl: Option<String>,
    presigned: bool,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let ttl = ttl
        .map(|t| {
            humantime::parse_duration(&t)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    Error::Usage(format!("--ttl {t}: not a duration (e.g. 15m, 2h, 7d)"))
                })
        })
        .transpose()?;
    let ledger = super::open_ledger(config)?;
    let rec = find(&ledger, wanted.as_bytes())?;
    if presigned {
        return presigned_url(config, &rec, ttl, out).await;
    }
    let Some(base) = base_url(config) else {
        return Err(Error::Usage(format!(
            "{}: [serve] listen is not set: there is no server to link to",
            config.source.display()
        )));
    };
    let serve = config.serve.as_ref().expect("base_url needs [serve]");
    let signer = Signer::load(&serve.key_file)?;
    if rec.state == State::Seen {
        return Err(Error::Usage(format!(
            "`{}` is still being written (state seen): a link is bound to the finished recording; ask again once it has settled",
            display_name(&rec.name)
        )));
    }
    let expires = ttl.map(|t| now_secs() + t.as_secs() as i64);
    writeln!(out, "{base}{}", signer.path(&rec, expires))?;
    Ok(ExitCode::SUCCESS)
}

/// The recording a name, object key or ledger id stands for.
fn find(ledger: &Ledger, wanted: &[u8]) -> Result<Recording, Error> {
    match retrieve::find(ledger, wanted) {
        Err(Error::NoSuchRecording(name)) => std::str::from_utf8(wanted)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|id| ledger.recording(id).ok())
            .ok_or(Error::NoSuchRecording(name)),
        other => other,
    }
}

async fn presigned_url(
    config: &Config,
    rec: &Recording,
    ttl: Option<Duration>,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let name = display_name(&rec.name);
    let key = match &rec.object_key {
        Some(k) if rec.is_stored() => k.clone(),
        _ => return Err(Error::NotArchived(name, rec.path.display().to_string())),
    };
    let ttl = ttl.unwrap_or(MAX_PRESIGNED);
    if ttl > MAX_PRESIGNED {
        return Err(Error::Usage("--presigned: at most 7d (S3's limit)".into()));
    }
    let store = super::open_store(config).await?;
    let Some(url) = store
        .presign_get(&key, ttl, playback_content_type(&rec.name))
        .await?
    else {
        return Err(Error::Usage(format!(
            "--presigned: {} has no presigned URLs",
            store.describe()
        )));
    };
    if codec::codec_of(rec) != Codec::None {
        eprintln!(
            "recvault: note: `{name}` is stored {}-compressed; this URL downloads the object, not a playable recording (a signed link plays it)",
            codec::codec_of(rec).as_str()
        );
    }
    writeln!(out, "{url}")?;
    Ok(ExitCode::SUCCESS)
}
