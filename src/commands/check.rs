//! `recvault check [--offline]`: the config is valid (loading it proved
//! that), the spool directories are readable, the link key and TLS files
//! load, VICIdial's database answers, and the store works end to end.

use std::io::Write;
use std::process::ExitCode;

use crate::config::Config;
use crate::error::Error;
use crate::serve::link::Signer;
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
    }
    if let Some(vc) = &config.vicidial {
        if offline {
            writeln!(
                out,
                "VICIdial database {}: not contacted (--offline)",
                vc.db
            )?;
        } else {
            let db = VicidialDb::new(&vc.db, DbOptions::from_config(vc));
            let answer = db.ping().await;
            db.close().await;
            answer.map_err(|e| Error::Probe {
                step: "VICIdial database",
                message: e.to_string(),
            })?;
            writeln!(out, "VICIdial database {}: ok", vc.db)?;
        }
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
    Ok(ExitCode::SUCCESS)
}
