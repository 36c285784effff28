//! Data-subject requests end to end (issue 9): `find`, `export` and `erase`
//! with the real binary, real spools and real stores (Garage; moto's server
//! for versioned buckets and Object Lock).

use std::process::Output;
use std::time::Duration;

use crate::common::*;

mod copies;
mod erase;
pub mod export;
mod find;
mod interrupted;
mod uploads;
mod versioned;

/// A VICIdial-style name (`CAMPAIGN_AGENT_FULLDATE_CUSTPHONE`) for a call
/// `days_ago` days back, and the file age that goes with it.
pub fn call(campaign: &str, days_ago: i64, phone: &str) -> (Vec<u8>, Duration) {
    let when = chrono::Local::now() - chrono::Duration::days(days_ago);
    let name = format!(
        "{campaign}_agent7_{}_{phone}-all.wav",
        when.format("%Y%m%d-%H%M%S")
    );
    let age = Duration::from_secs(days_ago as u64 * 86400 + 600);
    (name.into_bytes(), age)
}

/// The `[naming]` these tests use, so names carry campaign, agent and phone.
pub const NAMING: &str = "\n[naming]\ntemplate = \"CAMPAIGN_AGENT_FULLDATE_CUSTPHONE\"\n";

/// Settled and due at once.
pub const DUE_NOW: &str = "settle = \"1s\"\nupload_after = \"0s\"";

/// A site whose config names calls by [`NAMING`].
pub fn site(test: &str, target: Target<'_>, spool_extra: &str) -> Site {
    let mut site = Site::new(test);
    site.configure(target, spool_extra);
    let mut text = std::fs::read_to_string(&site.config).unwrap();
    text.push_str(NAMING);
    std::fs::write(&site.config, text).unwrap();
    site
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs the binary, expecting exit 0; its stdout.
pub fn ok(site: &Site, args: &[&str]) -> String {
    let out = site.recvault(args);
    expect_code(&out, 0);
    stdout(&out)
}

/// The ids `find --json` lists for `args`, sorted.
pub fn found_ids(site: &Site, args: &[&str]) -> Vec<i64> {
    let mut all = vec!["find", "--json"];
    all.extend_from_slice(args);
    let text = ok(site, &all);
    let value: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("find --json is not JSON ({e}):\n{text}"));
    let mut ids: Vec<i64> = value
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids
}

/// The token a preview's last line confirms with.
pub fn token_of(preview: &str) -> String {
    preview
        .rsplit("--confirm ")
        .next()
        .filter(|_| preview.contains("--confirm "))
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|| panic!("no confirm command in the preview:\n{preview}"))
}

/// The ids a preview lists to erase.
pub fn preview_ids(preview: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = preview
        .split_once("recordings to erase")
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.trim().split("  ").next()?.parse().ok())
        .collect();
    ids.sort();
    ids
}

/// The whole ledger as the sqlite3 CLI dumps it (what anyone with the
/// file can read).
pub fn dump(site: &Site) -> String {
    let out = std::process::Command::new("sqlite3")
        .arg(site.ledger_path())
        .arg(".dump")
        .output()
        .expect("the sqlite3 CLI (scripts/install-deps.sh installs it)");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// The ids `find --json` shows in `state` for `args`.
pub fn ids_in_state(site: &Site, args: &[&str], state: &str) -> Vec<i64> {
    let mut all = vec!["find", "--json"];
    all.extend_from_slice(args);
    let value: serde_json::Value = serde_json::from_str(&ok(site, &all)).unwrap();
    let mut ids: Vec<i64> = value
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["state"] == state)
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids
}
