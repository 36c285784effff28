//! `recvault export SELECTOR… -o FILE.zip [--force]`: the recordings a
//! request covers, restored, checked and zipped with `recordings.csv` and
//! `SHA256SUMS`; a progress line on a terminal, a line every few seconds
//! otherwise; each failure named, and exit 1 if there was one.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::catalog::Search;
use crate::cli::SelectorArgs;
use crate::config::Config;
use crate::error::Error;
use crate::governance::requests::key;
use crate::ledger::audit::Actor;
use crate::ledger::holds::describe;
use crate::retrieve::export::{self as zip, Export, Progress};
use crate::units::human_bytes;

pub(super) async fn export(
    config: &Config,
    select: SelectorArgs,
    output: &Path,
    force: bool,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let selectors = super::find::selectors(select)?;
    let catalog = super::catalog(config).await?;
    let search = Search {
        selectors: selectors.clone(),
        ..Search::default()
    };
    let selection = zip::select(catalog, search).await?;
    let ledger = super::open_ledger(config)?;
    let key = key::load_or_create(&config.ledger.path)?;
    let store = super::store_if_configured(config).await?;
    let actor = Actor::current();
    let export = Export {
        ledger: &ledger,
        store: store.as_deref(),
        key: &key,
        selectors: &selectors,
        selection,
        actor: &actor,
        note: None,
    };
    let mut line = ProgressLine::new();
    let report = export.to_zip(output, force, &mut |p| line.show(p)).await?;
    line.end();
    if report.matched == 0 {
        writeln!(
            out,
            "no recording matches {}: nothing written",
            describe(&selectors)
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    for (name, why) in &report.gone {
        writeln!(out, "  not exported: {name}: {why}")?;
    }
    for (name, why) in &report.failed {
        writeln!(out, "  FAILED: {name}: {why}")?;
    }
    writeln!(
        out,
        "{}: {} of {} recordings exported ({}), {} failed, {} with nothing left to export; \
         recordings.csv lists them all, SHA256SUMS the files",
        output.display(),
        report.exported,
        report.matched,
        human_bytes(report.bytes),
        report.failed.len(),
        report.gone.len()
    )?;
    super::exit(report.failed.is_empty())
}

/// Progress on standard error: a line redrawn in place on a terminal
/// (recordings, bytes, time left), else a plain line every [`EVERY`].
struct ProgressLine {
    tty: bool,
    started: Instant,
    last: Option<Instant>,
}

/// How often a plain progress line is printed when not on a terminal.
const EVERY: Duration = Duration::from_secs(10);

impl ProgressLine {
    fn new() -> ProgressLine {
        ProgressLine {
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last: None,
        }
    }

    fn show(&mut self, p: &Progress) {
        let every = if self.tty {
            Duration::from_millis(100)
        } else {
            EVERY
        };
        let finished = p.done == p.total;
        if self.last.is_some_and(|t| t.elapsed() < every) && !finished {
            return;
        }
        self.last = Some(Instant::now());
        let left = match p.bytes {
            0 => "-".to_string(),
            done => {
                let rate = done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
                let secs = (p.total_bytes.saturating_sub(done)) as f64 / rate;
                format!("{}:{:02}", secs as u64 / 60, secs as u64 % 60)
            }
        };
        let text = format!(
            "export: {}/{} recordings, {} of {}, {left} left",
            p.done,
            p.total,
            human_bytes(p.bytes),
            human_bytes(p.total_bytes)
        );
        if self.tty {
            eprint!("\r{text}\x1b[K");
        } else {
            eprintln!("{text}");
        }
    }

    fn end(&self) {
        if self.tty && self.last.is_some() {
            eprintln!();
        }
    }
}
