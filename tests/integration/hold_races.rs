//! Issue 13.2: a hold placed while a deletion runs. A hold committed before a
//! deletion starts must always win; one committed after it started must say
//! so. Judged from the audit trail's order (one hash-chained sequence): no
//! recording may be deleted after a hold on it committed without a warning.
//! Each test counts how many holds landed while deletions were running, so a
//! run whose holds all missed the window fails instead of passing.

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

use crate::common::*;
use crate::proxy::{Fault, Proxy};

const CALLS: usize = 600;
const HOLDS: usize = 40;

/// A `COLLECT` call 100 days back (due under a 90-day rule), its file time
/// matching its name.
fn put_calls(site: &Site) -> Vec<String> {
    let when = chrono::Local::now() - chrono::Duration::days(100);
    let age = Duration::from_secs(100 * 86400 - 3600);
    (0..CALLS)
        .map(|i| {
            let name = format!("COLLECT_{}_555{i:07}-all.wav", when.format("%Y%m%d-%H%M%S"));
            put_recording(&site.spool, name.as_bytes(), &wav(0.02, i as u64), age);
            name
        })
        .collect()
}

/// One hold placed during the race: its case, the recording it names, and
/// whether `hold add` warned that the recording's deletion had started.
/// (A recording may be named by several holds: each is judged on its own.)
struct Placed {
    case: String,
    name: String,
    warned: bool,
}

/// Places `HOLDS` holds, one recording each, at random moments while
/// `running` lasts.
fn hold_while(site: &Site, names: &[String], running: &mut std::process::Child) -> Vec<Placed> {
    let mut rng = fastrand::Rng::with_seed(13);
    let mut placed = Vec::new();
    for i in 0..HOLDS {
        std::thread::sleep(Duration::from_millis(rng.u64(5..60)));
        let (case, name) = (format!("RACE-{i}"), names[rng.usize(..names.len())].clone());
        let out = site.recvault(&[
            "hold",
            "add",
            &case,
            "--reason",
            "race",
            "--recording",
            &name,
        ]);
        expect_code(&out, 0);
        let warned = String::from_utf8_lossy(&out.stderr).contains("already being deleted");
        placed.push(Placed { case, name, warned });
    }
    let status = running.wait().unwrap();
    assert!(status.success(), "the deleting run failed: {status:?}");
    placed
}

/// One audit entry: its id, action, case id (`-` for none) and subject.
struct Entry {
    id: u64,
    action: String,
    case: String,
    subject: String,
}

/// The audit trail, in order.
fn trail(site: &Site) -> Vec<Entry> {
    let out: Output = site.recvault(&["audit"]);
    expect_code(&out, 0);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Entry {
                id: f[0].parse().unwrap(),
                action: f[3].to_string(),
                case: f[4].to_string(),
                subject: f[5].to_string(),
            }
        })
        .collect()
}

/// The audit entry of the hold placed for `case`.
fn hold_entry(entries: &[Entry], case: &str) -> u64 {
    entries
        .iter()
        .find(|e| e.action == "hold-add" && e.case == case)
        .unwrap_or_else(|| panic!("no hold-add entry for {case}"))
        .id
}

/// Checks the trail: for every hold placed without a warning, no deletion
/// of its recording (`action`) comes after the hold. Returns how many holds
/// committed while deletions were under way — between the entries `window`
/// picks from the trail — which the caller requires to be more than a few.
fn judge(
    site: &Site,
    placed: &[Placed],
    action: &str,
    window: impl Fn(&[Entry], &BTreeMap<String, u64>) -> (u64, u64),
) -> usize {
    let entries = trail(site);
    let mut deleted_at: BTreeMap<String, u64> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.action == action) {
        if let Some(name) = e.subject.split('`').nth(1) {
            deleted_at.insert(name.to_string(), e.id);
        }
    }
    let (first, last) = window(&entries, &deleted_at);
    let mut mid_run = 0;
    for p in placed {
        let held = hold_entry(&entries, &p.case);
        mid_run += usize::from(held > first && held < last);
        if let Some(&gone) = deleted_at.get(&p.name)
            && gone > held
        {
            assert!(
                p.warned,
                "{}: deleted (audit entry {gone}) after hold {} committed (entry {held}) without a warning",
                p.name, p.case
            );
        }
    }
    mid_run
}

#[test]
fn holds_placed_during_retention_sweeps_always_win_or_say_they_came_too_late() {
    let g = garage();
    let mut site = Site::new("holdrace");
    site.configure(Target::Garage(&g), "settle = \"1s\"\nupload_after = \"0s\"");
    let names = put_calls(&site);
    expect_code(&site.recvault(&["run", "--once"]), 0);
    // Now the policy makes all of them due; holds land while it sweeps. The
    // store is reached through a proxy that slows the DeleteObjects body, so
    // the sweep's deletes take seconds and the holds fall inside them.
    let proxy = Proxy::garage(&g);
    proxy.set_rule(|seen| match seen.method.as_str() {
        "POST" => Fault::Slow {
            bytes_per_sec: 20_000,
        },
        _ => Fault::Pass,
    });
    site.configure(
        Target::Proxy(&g, proxy.port),
        "settle = \"1s\"\nupload_after = \"0s\"",
    );
    let mut config = std::fs::read_to_string(&site.config).unwrap();
    config.push_str(
        "\n[naming]\ntemplate = \"CAMPAIGN_FULLDATE_CUSTPHONE\"\n[retention]\ndefault = \"90d\"\n",
    );
    std::fs::write(&site.config, config).unwrap();
    let mut sweep = site.command(&["retention", "run"]).spawn().unwrap();
    let placed = hold_while(&site, &names, &mut sweep);
    // Mid-sweep: after the sweep recorded the new policy, before its summary.
    let mid = judge(&site, &placed, "retention-delete", |entries, _| {
        let at = |action: &str| {
            entries
                .iter()
                .filter(|e| e.action == action)
                .map(|e| e.id)
                .max()
                .unwrap_or(0)
        };
        (at("policy-change"), at("retention-run"))
    });
    assert!(mid >= 3, "only {mid} holds landed mid-sweep");
    // Every held recording the sweep did not reserve first is still stored.
    let ledger = site.ledger();
    for Placed { name, warned, .. } in &placed {
        let rec = ledger.find(name.as_bytes()).unwrap().remove(0);
        if !warned && rec.state != recvault::recording::State::RemoteDeleted {
            let key = rec.object_key.unwrap();
            let store = tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async { g.store(64 << 20, 16 << 20).await.head(&key).await });
            assert!(store.unwrap().is_some(), "{name}: held, object gone");
        }
    }
    expect_code(&site.recvault(&["audit", "verify"]), 0);
}

#[test]
fn holds_placed_while_local_copies_are_removed_always_win_or_say_they_came_too_late() {
    let g = garage();
    let mut site = Site::new("localrace");
    site.configure(Target::Garage(&g), "settle = \"1s\"\nupload_after = \"0s\"");
    let names = put_calls(&site);
    let mut run = site.command(&["run", "--once"]).spawn().unwrap();
    let placed = hold_while(&site, &names, &mut run);
    let mid = judge(&site, &placed, "local-delete", |_, deleted| {
        let first = deleted.values().min().copied().unwrap_or(0);
        (first, deleted.values().max().copied().unwrap_or(0))
    });
    assert!(
        mid >= 3,
        "only {mid} holds landed while local copies were removed"
    );
    let entries = trail(&site);
    for p in &placed {
        let deleted_before = !site.spool.join(&p.name).exists();
        if deleted_before && !p.warned {
            // Gone without a warning: the trail must show it went first.
            let hold = hold_entry(&entries, &p.case);
            let gone = entries.iter().find(|e| {
                e.action == "local-delete" && e.subject.contains(&format!("`{}`", p.name))
            });
            assert!(
                gone.is_some_and(|g| g.id < hold),
                "{}: local copy gone although hold {} committed first",
                p.name,
                p.case
            );
        }
    }
}
