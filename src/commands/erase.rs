//! `recvault erase SELECTOR… --request REF [--confirm TOKEN]`: the right to
//! be forgotten, previewed first. Without a token it prints what would be
//! erased (count, bytes, each recording and where each copy is) and what a
//! legal hold keeps, then the exact command that erases that set. With the
//! token it reserves the set (refusing, with a new preview, if it changed)
//! and erases it — itself, or, while the daemon runs, by the daemon, which
//! it waits for. Run again, it finishes what an interrupted run began and
//! reports what was already done.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::catalog::{
    Catalog, Copy, CopyOutcome, ErasureConfirmation, ErasureItem, ErasurePlan, ErasureProgress,
    Place, Standing,
};
use crate::cli::SelectorArgs;
use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::error::Error;
use crate::governance::requests::erase;
use crate::governance::requests::eraser::Eraser;
use crate::governance::requests::key;
use crate::ledger::Ledger;
use crate::ledger::audit::Actor;
use crate::ledger::holds::describe;
use crate::ledger::lock::{InstanceLock, LockError};
use crate::recording::key::display_text;
use crate::store::{Store, Versioning};
use crate::units::{human_bytes, local_time, now_secs};

/// How long a confirmed erasure waits for the running daemon to carry it out.
const DAEMON_WAIT: Duration = Duration::from_secs(120);

pub(super) async fn erase(
    config: &Config,
    select: SelectorArgs,
    request: String,
    confirm: Option<String>,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let again = command_line(config, &select, &request);
    let selectors = super::find::selectors(select)?;
    erase::check_reference(&request)?;
    let catalog = super::catalog(config).await?;
    let store = super::store_if_configured(config).await?;
    let Some(token) = confirm else {
        let plan = catalog.erasure_preview(&request, &selectors).await?;
        print_plan(catalog.as_ref(), store.as_deref(), &plan, &again, out).await?;
        return Ok(ExitCode::SUCCESS);
    };
    let actor = Actor::current();
    let confirmed = catalog
        .erasure_confirm(&actor, &request, &selectors, Some(&token))
        .await?;
    let plan = match confirmed {
        ErasureConfirmation::Reserved(plan) => plan,
        ErasureConfirmation::Changed(plan) => {
            writeln!(
                out,
                "nothing was erased: what this request covers is not what that token confirmed \
                 (the set changed since the preview, or the token is not its token). The preview now:\n"
            )?;
            print_plan(catalog.as_ref(), store.as_deref(), &plan, &again, out).await?;
            return Ok(ExitCode::FAILURE);
        }
    };
    let ledger = super::open_ledger(config)?;
    let key = key::load_or_create(&config.ledger.path)?;
    carry_out(config, &ledger, store.as_deref(), &key, &actor, out).await?;
    let progress = catalog.erasure_progress(&plan.request).await?;
    report(&plan, &progress, out)
}

/// Erases what is reserved — here if no daemon runs, else by the daemon,
/// waited for.
async fn carry_out(
    config: &Config,
    ledger: &Arc<Ledger>,
    store: Option<&dyn Store>,
    key: &crate::recording::pseudonym::PseudonymKey,
    actor: &Actor,
    out: &mut impl Write,
) -> Result<(), Error> {
    let _lock = match InstanceLock::acquire(&config.ledger.path) {
        Ok(lock) => lock,
        Err(LockError::Held { pid, .. }) => {
            writeln!(
                out,
                "the daemon (pid {pid}) is running: it erases them; waiting for it…"
            )?;
            out.flush()?;
            return wait_for_daemon(ledger).await;
        }
        Err(e) => return Err(e.into()),
    };
    // A removal a crash cut short left its file aside: back under its name,
    // so this run removes it for good.
    for back in crate::spool::recover_removals(&config.spool.dirs) {
        if let Err(e) = back {
            tracing::warn!("cannot put back a file whose removal was interrupted: {e}");
        }
    }
    let gate = super::fleet_gate(config).await?;
    let gate: Option<std::sync::Arc<dyn crate::governance::gate::DeletionGate>> =
        gate.map(|g| g as _);
    Eraser {
        ledger,
        store,
        spool_dirs: &config.spool.dirs,
        staging: &config.spool.staging,
        host: &config.daemon.host,
        playback_cache: config.serve.as_ref().map(|s| s.cache_dir.as_path()),
        key,
        actor,
        skip: &Default::default(),
        gate: gate.as_deref(),
    }
    .run(now_secs())
    .await?;
    Ok(())
}

/// Waits (at most [`DAEMON_WAIT`]) until the daemon has nothing of any
/// erasure left to do now.
async fn wait_for_daemon(ledger: &Arc<Ledger>) -> Result<(), Error> {
    let deadline = Instant::now() + DAEMON_WAIT;
    while Instant::now() < deadline {
        let due = ledger.call(|l| l.due_erasures(now_secs(), 0, 1)).await?;
        if due.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Prints where the request stands now; exit 1 if anything is left undone
/// (other than what waits for Object Lock).
fn report(
    plan: &ErasurePlan,
    progress: &ErasureProgress,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    // Names as the preview showed them: erased rows carry pseudonyms now.
    let names: HashMap<(&str, i64), &str> = plan
        .items
        .iter()
        .map(|i| ((i.entry.host.as_str(), i.entry.id), i.entry.name.as_str()))
        .collect();
    for l in &progress.lines {
        let name = names
            .get(&(l.host.as_str(), l.id))
            .copied()
            .unwrap_or(l.name.as_str());
        report_line(&l.outcome, name, out)?;
    }
    let [erased, waiting, pending, closed] = progress.counts();
    let held = plan.held().count();
    writeln!(
        out,
        "erasure request {}: {erased} erased, {waiting} waiting for Object Lock, {pending} not done yet, {held} held",
        plan.request
    )?;
    if closed > 0 {
        writeln!(
            out,
            "  {closed} closed with their box forgotten (its stored objects were erased by the fleet)"
        )?;
    }
    for open in progress.open.iter().filter(|o| !o.reachable) {
        writeln!(
            out,
            "  OPEN: box {} holds {} of them and has not been heard from since {}; the request stays \
             open until it is back, or `recvault fleet forget {}` once it is wiped",
            open.host,
            open.copies,
            open.heartbeat.map(local_time).unwrap_or_else(|| "-".into()),
            open.host
        )?;
    }
    if pending > 0 {
        writeln!(
            out,
            "run the same command again to finish (it picks up where this one stopped)"
        )?;
    }
    super::exit(pending == 0)
}

/// One recording's line of the report.
fn report_line(outcome: &CopyOutcome, name: &str, out: &mut impl Write) -> Result<(), Error> {
    match outcome {
        CopyOutcome::Erased { at } => writeln!(out, "  erased   {}  {name}", local_time(*at))?,
        CopyOutcome::Waiting { until, why } => writeln!(
            out,
            "  waiting  {name}: Object Lock keeps a stored version until {}; the local copy is \
             gone, and the daemon finishes the erasure then ({why})",
            local_time(*until)
        )?,
        CopyOutcome::Pending { why } => writeln!(out, "  pending  {name}: {why}")?,
        CopyOutcome::Closed { by } => writeln!(out, "  closed   {name}: {by}")?,
    }
    Ok(())
}

/// Prints the preview: what goes (and where each copy is), what a hold
/// keeps, what was erased before, then the command that confirms it.
async fn print_plan(
    catalog: &dyn Catalog,
    store: Option<&dyn Store>,
    plan: &ErasurePlan,
    again: &str,
    out: &mut impl Write,
) -> Result<(), Error> {
    let shown = describe(&plan.selectors);
    if plan.items.is_empty() {
        writeln!(out, "no recording matches {shown}: nothing to erase")?;
        return Ok(());
    }
    writeln!(out, "erasure request {} for {shown}", plan.request)?;
    let versions = versions_text(store).await;
    let fleet = catalog.scope().is_fleet();
    let left = print_to_erase(plan, &versions, fleet, out)?;
    print_kept(plan, fleet, out)?;
    if left == 0 {
        writeln!(out, "nothing (more) to erase")?;
        return Ok(());
    }
    writeln!(
        out,
        "To erase exactly these {left} recordings, run:\n  {again} --confirm {}",
        plan.token
    )?;
    Ok(())
}

/// What deleting a stored object means on this store, for the preview.
async fn versions_text(store: Option<&dyn Store>) -> String {
    let Some(store) = store else {
        return "the object (no store is configured: it cannot be deleted now)".to_string();
    };
    match store.versioning().await {
        Ok(Versioning::Unversioned) => "the object".to_string(),
        Ok(Versioning::NotVisible) => {
            "the object (previous versions, if the container keeps them, are not seen and stay: \
             see `recvault check`)"
                .to_string()
        }
        Ok(_) => "every version and delete marker of the object (the bucket keeps versions)".into(),
        Err(e) => {
            format!(
                "the object and any versions (cannot tell whether the bucket keeps versions: {e})"
            )
        }
    }
}

/// Prints what the request erases, with where each copy is. Returns how
/// many are left to erase.
fn print_to_erase(
    plan: &ErasurePlan,
    versions: &str,
    fleet: bool,
    out: &mut impl Write,
) -> Result<usize, Error> {
    let (done, left): (Vec<_>, Vec<_>) =
        plan.to_erase().partition(|i| i.entry.status() == "erased");
    let bytes: u64 = left.iter().map(|i| i.entry.size).sum();
    writeln!(
        out,
        "{} recordings to erase, {}:",
        left.len(),
        human_bytes(bytes)
    )?;
    for i in &left {
        let e = &i.entry;
        let (when, campaign) = (
            local_time(e.time),
            display_text(e.campaign.as_deref().unwrap_or("-")),
        );
        let size = human_bytes(e.size);
        writeln!(
            out,
            "  {}  {when}  {campaign}  {size}  {}",
            label(i, fleet),
            e.name
        )?;
        writeln!(out, "      copies: {}", copies(&i.copies, versions, fleet))?;
    }
    if !done.is_empty() {
        writeln!(out, "{} already erased by this request", done.len())?;
    }
    Ok(left.len())
}

/// How a recording is named in the preview: its id (`host/id` in a fleet).
fn label(i: &ErasureItem, fleet: bool) -> String {
    match fleet {
        true => i.entry.reference().to_string(),
        false => i.entry.id.to_string(),
    }
}

/// Prints what the request does not erase: held (with the cases), or
/// another request's.
fn print_kept(plan: &ErasurePlan, fleet: bool, out: &mut impl Write) -> Result<(), Error> {
    let held: Vec<_> = plan.held().collect();
    if !held.is_empty() {
        writeln!(out, "{} under a legal hold, NOT erased:", held.len())?;
    }
    for (i, cases) in held {
        let (when, name) = (local_time(i.entry.time), &i.entry.name);
        writeln!(
            out,
            "  {}  {when}  {name}  held by {}",
            label(i, fleet),
            cases.join(", ")
        )?;
    }
    for i in &plan.items {
        if let Standing::Other { request, done } = &i.standing {
            let what = if *done { "erased" } else { "being erased" };
            writeln!(
                out,
                "  {}  already {what} by request {request}",
                label(i, fleet)
            )?;
        }
    }
    Ok(())
}

/// Where each copy is, as the erasure will find it.
fn copies(copies: &[Copy], versions: &str, fleet: bool) -> String {
    if copies.is_empty() {
        return "none left (only the ledger row, whose personal data is replaced)".to_string();
    }
    let on = |host: &str| match fleet {
        true => format!(" on {host}"),
        false => String::new(),
    };
    copies
        .iter()
        .map(|c| match &c.place {
            Place::Spool { path } => format!("local file {path}{}", on(&c.host)),
            Place::Staging { path } => format!("staging {path}{}", on(&c.host)),
            Place::Store { key } => format!("store {key} ({versions})"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The command that confirms this request (without its `--confirm`).
fn command_line(config: &Config, s: &SelectorArgs, request: &str) -> String {
    let mut words = vec!["recvault".to_string()];
    if config.source != Path::new(DEFAULT_CONFIG_PATH) {
        words.extend([
            "--config".to_string(),
            quote(&config.source.display().to_string()),
        ]);
    }
    words.push("erase".into());
    let lists = [
        ("--phone", &s.phone),
        ("--agent", &s.agent),
        ("--lead", &s.lead),
        ("--campaign", &s.campaign),
        ("--recording", &s.recording),
    ];
    for (option, values) in lists {
        for v in values {
            words.extend([option.to_string(), quote(v)]);
        }
    }
    for (option, v) in [("--from", &s.from), ("--to", &s.to)] {
        if let Some(v) = v {
            words.extend([option.to_string(), quote(v)]);
        }
    }
    words.extend(["--request".to_string(), quote(request)]);
    words.join(" ")
}

/// A word as a POSIX shell reads it back unchanged.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=+@,%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(quote("5551234567"), "5551234567");
        assert_eq!(quote("+1 555-123-4567"), "'+1 555-123-4567'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }
}
