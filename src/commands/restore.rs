//! `recvault restore NAME|KEY -o PATH`: the original recording back, its
//! SHA-256 proved, or nothing written.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use crate::error::Error;
use crate::retrieve;

pub(super) async fn restore(
    config: &Config,
    target: &OsString,
    output: &Path,
    force: bool,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let store_config = super::store_config(config)?;
    let ledger = super::open_ledger(config)?;
    let store = crate::store::open(store_config).await?;
    let bytes = retrieve::restore(&ledger, &*store, target.as_bytes(), output, force).await?;
    writeln!(
        out,
        "restored {} ({bytes} bytes, SHA-256 verified)",
        output.display()
    )?;
    Ok(ExitCode::SUCCESS)
}
