//! `recvault check [--offline]`: the config is valid (loading it proved
//! that), the spool directories are readable, the link key and TLS files
//! load, VICIdial's database answers, the store works end to end, and
//! whether its bucket keeps versions (what deletions must then remove).

use std::io::Write;
use std::process::ExitCode;

use crate::config::{Config, ServeConfig, StoreConfig, VicidialConfig};
use crate::error::Error;
use crate::serve::link::Signer;
use crate::store::Versioning;
use crate::store::probe::{self, STEPS};
use crate::vicidial::db::{DbOptions, VicidialDb};

pub(super) async fn check(
    config: &Config,
    offline: bool,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    writeln!(out, "config {}: ok", config.source.display())?;
    for dir in &config.spool.dirs {
        match std::fs::read_dir(dir) {
            Ok(_) => writeln!(out, "spool {}: readable", dir.display())?,
            // A warning: the daemon waits for a missing directory to appear.
            Err(e) => writeln!(out, "warning: spool {}: {e}", dir.display())?,
        }
    }
    if let Some(serve) = &config.serve {
        check_serve(serve, out)?;
    }
    if let Some(vc) = &config.vicidial {
        check_vicidial(vc, offline, out).await?;
        super::move_mix::check_lines(config, out)?;
    }
    let Some(store_config) = &config.store else {
        writeln!(
            out,
            "store: none configured; the daemon will archive nothing"
        )?;
        return Ok(ExitCode::SUCCESS);
    };
    if offline {
        writeln!(out, "store: not contacted (--offline)")?;
        return Ok(ExitCode::SUCCESS);
    }
    check_store(config, store_config, out).await?;
    Ok(ExitCode::SUCCESS)
}

/// The link key and the TLS files load.
fn check_serve(serve: &ServeConfig, out: &mut impl Write) -> Result<(), Error> {
    Signer::load(&serve.key_file)?;
    if let Some(tls) = &serve.tls {
        crate::serve::check_tls(tls)?;
    }
    writeln!(
        out,
        "serve {}: link key {} ok{}",
        serve.listen,
        serve.key_file.display(),
        if serve.tls.is_some() {
            ", TLS files ok"
        } else {
            ""
        }
    )?;
    Ok(())
}

/// VICIdial's database answers (unless `--offline`).
async fn check_vicidial(
    vc: &VicidialConfig,
    offline: bool,
    out: &mut impl Write,
) -> Result<(), Error> {
    if offline {
        writeln!(
            out,
            "VICIdial database {}: not contacted (--offline)",
            vc.db
        )?;
        return Ok(());
    }
    let db = VicidialDb::new(&vc.db, DbOptions::from_config(vc));
    let answer = db.ping().await;
    db.close().await;
    answer.map_err(|e| Error::Probe {
        step: "VICIdial database",
        message: e.to_string(),
    })?;
    writeln!(out, "VICIdial database {}: ok", vc.db)?;
    Ok(())
}

/// The store works end to end (each probe step that passed is listed), and
/// whether its bucket keeps versions.
async fn check_store(
    config: &Config,
    store_config: &StoreConfig,
    out: &mut impl Write,
) -> Result<(), Error> {
    let store = crate::store::open(store_config)
        .await
        .map_err(|e| Error::Probe {
            step: "open store",
            message: e.to_string(),
        })?;
    writeln!(out, "store {}:", store.describe())?;
    let scratch = std::env::temp_dir();
    let result = probe::probe(&*store, &store_config.prefix, &config.daemon.host, &scratch).await;
    let (key, passed, checksum) = match &result {
        Ok(p) => (&p.key, STEPS.len(), p.checksum),
        Err(e) => (
            &e.key,
            STEPS.iter().position(|s| *s == e.step).unwrap_or(0),
            "",
        ),
    };
    for step in &STEPS[..passed] {
        match *step {
            "put" => writeln!(out, "  put {key}: ok (sha256 sent)")?,
            "head" if !checksum.is_empty() => writeln!(out, "  head: ok ({checksum})")?,
            other => writeln!(out, "  {other}: ok")?,
        }
    }
    result.map_err(|e| Error::Probe {
        step: e.step,
        message: e.message,
    })?;
    match store.versioning().await {
        Ok(v) => writeln!(out, "  versioning: {}", versioning_text(v))?,
        Err(e) => writeln!(out, "  warning: versioning: cannot tell ({e})")?,
    }
    Ok(())
}

/// What the bucket's versioning means for deletions, for the operator.
fn versioning_text(v: Versioning) -> &'static str {
    match v {
        Versioning::Unversioned => "off: a delete removes an object for good",
        Versioning::Enabled => {
            "on: a plain delete would only add a delete marker (the audio stays, and is billed), \
             so retention and erase delete every version and delete marker of an object by its id; \
             a version under Object Lock retention cannot go before its date (erase says so, and \
             the daemon finishes the job then)"
        }
        Versioning::Suspended => {
            "suspended: versions made while it was on stay until deleted by id, so retention and \
             erase delete every version and delete marker of an object by its id"
        }
        Versioning::NotVisible => {
            "not visible through this store's API: if the container or bucket keeps versions \
             (Azure blob versioning, GCS object versioning), a deleted recording stays as a \
             previous version until a lifecycle rule removes it; turn versioning off for it, or \
             add a rule that deletes previous versions"
        }
    }
}
