//! `recvault verify [--sample N | --all]`: scrub now — re-read archived
//! objects and check their SHA-256 and size against the ledger (exit 1 on any
//! missing or mismatched object).

use std::io::Write;
use std::process::ExitCode;

use crate::config::Config;
use crate::error::Error;
use crate::recovery::scrub::{self, Selection};

pub(super) async fn scrub(
    config: &Config,
    sample: Option<usize>,
    since: Option<String>,
    verbose: bool,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let since = super::date(since)?;
    let store = super::open_store(config).await?;
    let ledger = super::open_ledger(config)?;
    let selection = Selection { sample, since };
    let r = scrub::scrub(
        &ledger,
        &*store,
        selection,
        &config.spool.staging,
        verbose,
        out,
    )
    .await?;
    super::exit(r.clean())
}
