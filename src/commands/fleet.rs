//! `recvault fleet init|status|forget`: recvault's tables in the cluster's
//! MariaDB (printed, then applied with --confirm), every box of the fleet
//! at a glance, and a wiped box let go of.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use crate::catalog::Rules;
use crate::cli::FleetCommand;
use crate::config::Config;
use crate::error::Error;
use crate::fleet::{Fleet, schema};
use crate::ledger::audit::Actor;
use crate::units::{local_time, now_secs};

pub(super) async fn fleet(
    action: FleetCommand,
    config: &Config,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let fleet = Fleet::of(config)?.ok_or_else(|| {
        Error::Usage(format!(
            "{}: [fleet] is not enabled (enabled = true); this box is on its own",
            config.source.display()
        ))
    })?;
    let result = match action {
        FleetCommand::Init { confirm } => init(&fleet, config, confirm, out).await,
        FleetCommand::Status => status(&fleet, out).await,
        FleetCommand::Forget { host, confirm } => forget(&fleet, &host, confirm, out).await,
    };
    fleet.close().await;
    result
}

/// Prints the SQL and GRANTs, then applies the SQL with `confirm`; the
/// first init also sets the fleet's retention policy from this box's.
async fn init(
    fleet: &Arc<Fleet>,
    config: &Config,
    confirm: bool,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let found = fleet.schema_version().await?;
    writeln!(
        out,
        "fleet database: {} (connection from {})",
        fleet.target(),
        fleet.config.db_source
    )?;
    print_sql(fleet, found, out)?;
    let policy = if found > 0 {
        fleet.policy().await?
    } else {
        None
    };
    let mine = Rules::of(&config.retention);
    match &policy {
        Some(p) => writeln!(
            out,
            "\nthe fleet's retention policy (version {}): {}",
            p.version,
            p.rules.summary()
        )?,
        None => writeln!(
            out,
            "\nthe fleet has no retention policy yet: --confirm sets it from this box's [retention]: {}",
            mine.summary()
        )?,
    }
    if !confirm {
        writeln!(out, "\nnothing changed; run again with --confirm to apply")?;
        return Ok(ExitCode::SUCCESS);
    }
    let by = format!("{}@{}", Actor::current().user, fleet.host);
    let now = now_secs();
    let version = fleet.migrate(&by, now).await?;
    writeln!(out, "\napplied: recvault's tables are at version {version}")?;
    if policy.is_none() && fleet.set_policy(&mine, None, &by, now).await? {
        writeln!(
            out,
            "the fleet's retention policy is now: {}",
            mine.summary()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The SQL `init --confirm` would run, and the GRANTs the daemons need.
fn print_sql(fleet: &Fleet, found: i64, out: &mut impl Write) -> Result<(), Error> {
    let all = schema::migrations();
    if found as usize >= all.len() {
        writeln!(out, "recvault's tables are up to date (version {found})")?;
    } else {
        writeln!(
            out,
            "-- the SQL `fleet init --confirm` runs (migrations {} to {}; needs CREATE on `{}`):",
            found + 1,
            all.len(),
            fleet.config.db.database
        )?;
        writeln!(out, "{};", schema::schema_table())?;
        for statement in all.iter().skip(found as usize).flatten() {
            writeln!(out, "{statement};")?;
        }
    }
    writeln!(
        out,
        "\n-- the GRANTs each box's daemon needs afterwards (run them as an administrator; \
         adjust the host part):"
    )?;
    for g in schema::grants(&fleet.config.db.database, &fleet.config.db.user) {
        writeln!(out, "{g};")?;
    }
    Ok(())
}

/// Every box, reachable or not. Exit 1 if one is not.
async fn status(fleet: &Arc<Fleet>, out: &mut impl Write) -> Result<ExitCode, Error> {
    let now = now_secs();
    let alive_since = fleet.alive_since(now);
    let boxes = fleet.boxes().await?;
    writeln!(
        out,
        "fleet database {}: {} boxes (unreachable after {}s without a heartbeat)",
        fleet.target(),
        boxes.len(),
        fleet.config.host_timeout.as_secs()
    )?;
    let mut clean = true;
    for b in &boxes {
        let state = match (b.forgotten_at, b.heartbeat_at >= alive_since) {
            (Some(at), _) => format!(
                "forgotten {} by {}",
                local_time(at),
                b.forgotten_by.as_deref().unwrap_or("?")
            ),
            (None, true) => "reachable".to_string(),
            (None, false) => {
                clean = false;
                "UNREACHABLE".to_string()
            }
        };
        writeln!(
            out,
            "{}{}: {state}, recvault {}, last heartbeat {} ({}s ago), backlog {}, unpublished {}, last error: {}",
            b.host,
            if b.host == fleet.host {
                " (this box)"
            } else {
                ""
            },
            b.version,
            local_time(b.heartbeat_at),
            now - b.heartbeat_at,
            b.backlog,
            b.outbox,
            b.last_error.as_deref().unwrap_or("none")
        )?;
    }
    clean &= same_pseudonym_key(&boxes, out)?;
    super::exit(clean)
}

/// Says so when the boxes still governed do not share one pseudonym key
/// (a request on one box would not match what another erased); true if
/// they do.
fn same_pseudonym_key(
    boxes: &[crate::fleet::boxes::BoxRow],
    out: &mut impl Write,
) -> Result<bool, Error> {
    let mut by_key: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for b in boxes.iter().filter(|b| b.forgotten_at.is_none()) {
        let key = b.overview.as_ref().and_then(|o| o.pseudonym_key.clone());
        by_key
            .entry(key.unwrap_or_else(|| "none yet".into()))
            .or_default()
            .push(&b.host);
    }
    if by_key.len() <= 1 {
        return Ok(true);
    }
    let groups: Vec<String> = by_key
        .iter()
        .map(|(key, hosts)| format!("{}: key {key}", hosts.join(", ")))
        .collect();
    writeln!(
        out,
        "PSEUDONYM KEYS DIFFER ({}): `find` on one box cannot match what another erased; \
         copy one box's pseudonym.key (beside its ledger) to every box, see README \"Running a cluster\"",
        groups.join("; ")
    )?;
    Ok(false)
}

/// Lets a wiped box go (previewed; applied with `confirm`).
async fn forget(
    fleet: &Arc<Fleet>,
    host: &str,
    confirm: bool,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let boxes = fleet.boxes().await?;
    let Some(b) = boxes.iter().find(|b| b.host == host) else {
        return Err(Error::Usage(format!("no box `{host}` in the fleet")));
    };
    let now = now_secs();
    writeln!(
        out,
        "box {host}: last heartbeat {} ({}s ago), recvault {}",
        local_time(b.heartbeat_at),
        now - b.heartbeat_at,
        b.version
    )?;
    if b.heartbeat_at >= fleet.alive_since(now) && b.forgotten_at.is_none() {
        writeln!(
            out,
            "it is still heard from: stop recvault there (and wipe it) before forgetting it"
        )?;
        return Ok(ExitCode::FAILURE);
    }
    writeln!(
        out,
        "forgetting it says its disks are wiped: its recordings stay in the catalog and in the \
         store, governed by the fleet's leader"
    )?;
    if !confirm {
        writeln!(
            out,
            "nothing changed; run again with --confirm to forget it"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let by = format!("{}@{}", Actor::current().user, fleet.host);
    fleet.forget(host, &by, now).await?;
    writeln!(out, "forgot {host}")?;
    Ok(ExitCode::SUCCESS)
}
