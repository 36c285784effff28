//! `recvault erase` against Garage: previewed, confirmed by a token bound to
//! the set, held recordings kept, every copy gone, nothing readable left in
//! the ledger, the audit trail intact; with the daemon running, it is the
//! daemon that erases.

use std::fs;
use std::time::Duration;

use super::*;

const X: &str = "5551234567";
const Y: &str = "5559876543";
const Z: &str = "5550001111";

/// A site on Garage with X's calls (two archived, one only local with a
/// staged object), Y's call (archived, held) and Z's (archived, untouched).
struct World {
    site: Site,
    garage: Garage,
}

fn world(test: &str) -> World {
    let garage = garage();
    let site = site(test, Target::Garage(&garage), DUE_NOW);
    for (i, (campaign, days, phone)) in [
        ("SALES", 3, X),
        ("COLLECT", 2, X),
        ("SALES", 4, Y),
        ("SALES", 5, Z),
    ]
    .into_iter()
    .enumerate()
    {
        let (name, age) = call(campaign, days, phone);
        put_recording(&site.spool, &name, &wav(0.5, i as u64), age);
    }
    ok(&site, &["run", "--once"]);
    site.set_option("spool", "upload_after", "\"30d\"");
    let (name, _) = call("SALES", 0, X);
    put_recording(&site.spool, &name, &wav(0.5, 9), Duration::from_secs(600));
    ok(&site, &["run", "--once"]);
    ok(
        &site,
        &["hold", "add", "CASE-9", "--reason", "dispute", "--phone", Y],
    );
    World { site, garage }
}

fn preview(site: &Site, phones: &[&str]) -> String {
    let mut args = vec!["erase", "--request", "T-1"];
    for p in phones {
        args.extend(["--phone", p]);
    }
    ok(site, &args)
}

fn confirm(site: &Site, phones: &[&str], token: &str) -> std::process::Output {
    let mut args = vec!["erase", "--request", "T-1", "--confirm", token];
    for p in phones {
        args.extend(["--phone", p]);
    }
    site.recvault(&args)
}

fn object_exists(w: &World, key: &str) -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        w.garage
            .store(64 << 20, 16 << 20)
            .await
            .head(key)
            .await
            .unwrap()
            .is_some()
    })
}

#[test]
fn an_erasure_is_previewed_confirmed_and_leaves_nothing_of_the_caller() {
    let w = world("erase");
    let site = &w.site;
    let ledger = site.ledger();
    let x_ids = found_ids(site, &["--phone", X]);
    assert_eq!(x_ids.len(), 3);
    let local = ledger.recording(*x_ids.last().unwrap()).unwrap();
    // A compressed object waiting in staging (a daemon start cleans up
    // staged files of recordings not waiting for upload: put it back after each).
    let staged = site.root.join("staging").join(format!("{}.obj", local.id));
    let stage = || {
        fs::create_dir_all(staged.parent().unwrap()).unwrap();
        fs::write(&staged, b"staged object").unwrap();
    };
    stage();
    let first_name = String::from_utf8(ledger.recording(x_ids[0]).unwrap().name).unwrap();
    let keys: Vec<String> = x_ids
        .iter()
        .filter_map(|id| ledger.recording(*id).unwrap().object_key)
        .collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| object_exists(&w, k)));
    drop(ledger);

    // One number, three ways: one preview, one token.
    let shown = preview(site, &["+1 555-123-4567", Y]);
    assert_eq!(
        token_of(&shown),
        token_of(&preview(site, &["15551234567", Y]))
    );
    assert_eq!(token_of(&shown), token_of(&preview(site, &[X, Y])));
    assert_eq!(preview_ids(&shown), x_ids, "{shown}");
    assert!(shown.contains("held by CASE-9"), "{shown}");
    assert!(
        shown.contains(&format!("staging {}", staged.display())),
        "{shown}"
    );
    assert!(shown.contains("local file "), "{shown}");
    assert!(shown.contains("store "), "{shown}");
    let token = token_of(&shown);

    // A wrong token, then a stale one: nothing is erased, a new preview shows.
    let out = confirm(site, &[X, Y], "0123456789abcdef0123");
    expect_code(&out, 1);
    assert!(
        stdout(&out).contains("nothing was erased"),
        "{}",
        stdout(&out)
    );
    let (late, age) = call("COLLECT", 1, X);
    put_recording(&site.spool, &late, &wav(0.5, 10), age);
    ok(site, &["run", "--once"]);
    stage();
    let out = confirm(site, &[X, Y], &token);
    expect_code(&out, 1);
    let fresh = stdout(&out);
    assert!(
        fresh.contains("nothing was erased") && fresh.contains("4 recordings to erase"),
        "{fresh}"
    );
    assert!(
        staged.exists() && keys.iter().all(|k| object_exists(&w, k)),
        "nothing touched"
    );
    let x_ids = found_ids(site, &["--phone", X]);
    assert_eq!(preview_ids(&fresh), x_ids);

    // An export named after the caller: its audit entry goes with the number.
    let zip = site.root.join(format!("{X}.zip"));
    ok(site, &["export", "--phone", X, "-o", zip.to_str().unwrap()]);
    fs::remove_file(&zip).unwrap();

    // The preview's set, and only it, is erased.
    let token = token_of(&fresh);
    let out = confirm(site, &[X, Y], &token);
    expect_code(&out, 0);
    let report = stdout(&out);
    assert!(
        report.contains("4 erased, 0 waiting for Object Lock, 0 not done yet, 1 held"),
        "{report}"
    );
    assert_eq!(
        ids_in_state(site, &["--phone", "+1 (555) 123-4567"], "erased"),
        x_ids
    );
    assert_eq!(
        ids_in_state(site, &["--phone", Y], "local_deleted").len(),
        1,
        "held: kept"
    );
    assert!(!staged.exists(), "staging emptied");
    assert!(
        keys.iter().all(|k| !object_exists(&w, k)),
        "objects deleted"
    );
    let left: Vec<_> = fs::read_dir(&site.spool)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(X))
        .collect();
    assert!(left.is_empty(), "local copies left: {left:?}");
    let all = dump(site);
    assert!(!all.contains(X), "the ledger still holds the number");
    assert!(
        all.contains(Y) && all.contains(Z),
        "the others are untouched"
    );
    assert!(ok(site, &["audit", "verify"]).contains("intact"));
    ok(site, &["ledger", "check"]);
    let trail = ok(site, &["audit", "--case", "T-1"]);
    assert!(
        trail.contains("\terase-request\t") && trail.contains("\terase\t"),
        "{trail}"
    );

    // The same caller, by the name of a recording that is gone now.
    let first = found_ids(site, &["--phone", X])[0];
    let named = ids_in_state(site, &["--recording", &first_name], "erased");
    assert_eq!(named, [first]);

    // Run again: nothing left to do, and it says what was done.
    let out = confirm(site, &[X, Y], &token);
    expect_code(&out, 0);
    assert!(stdout(&out).contains("4 erased"), "{}", stdout(&out));
    let again = preview(site, &[X]);
    assert!(
        again.contains("4 already erased by this request") || again.contains("already erased"),
        "{again}"
    );
}

#[test]
fn requests_about_nothing_or_nobody_erase_nothing() {
    let w = world("erase-bad");
    let site = &w.site;
    let out = site.recvault(&["erase", "--request", "T-2"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("at least one selector"),
        "{}",
        stderr(&out)
    );
    let out = site.recvault(&["erase", "--request", " ", "--phone", X]);
    expect_code(&out, 2);
    let text = ok(
        site,
        &["erase", "--request", "T-2", "--phone", "5550000000"],
    );
    assert!(
        text.contains("no recording matches phone=5550000000"),
        "{text}"
    );
    let out = site.recvault(&[
        "erase",
        "--request",
        "T-2",
        "--phone",
        "5550000000",
        "--confirm",
        "abc",
    ]);
    expect_code(&out, 1);
    // A hold placed after the preview: the set changed, nothing is erased.
    let shown = ok(site, &["erase", "--request", "T-2", "--phone", X]);
    let first = preview_ids(&shown)[0].to_string();
    ok(
        site,
        &[
            "hold",
            "add",
            "LATE",
            "--reason",
            "r",
            "--recording",
            &first,
        ],
    );
    let out = site.recvault(&[
        "erase",
        "--request",
        "T-2",
        "--phone",
        X,
        "--confirm",
        &token_of(&shown),
    ]);
    expect_code(&out, 1);
    assert!(stdout(&out).contains("held by LATE"), "{}", stdout(&out));
    assert!(ids_in_state(site, &["--phone", X], "erased").is_empty());
    // Everything held: nothing to confirm.
    let text = ok(site, &["erase", "--request", "T-2", "--phone", Y]);
    assert!(
        text.contains("nothing (more) to erase") && !text.contains("--confirm"),
        "{text}"
    );
    assert!(found_ids(site, &["--phone", X]).len() == 3);
    assert!(ids_in_state(site, &["--phone", X], "erased").is_empty());
}

#[test]
fn with_the_daemon_running_the_daemon_erases() {
    let w = world("erase-daemon");
    let site = &w.site;
    let mut daemon = site
        .command(&["run"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = format!("{}.lock", site.ledger_path().display());
    wait_for(Duration::from_secs(20), "the daemon's lock", || {
        fs::read_to_string(&lock).is_ok_and(|pid| pid.trim() == daemon.id().to_string())
    });
    let token = token_of(&preview(site, &[X]));
    let out = confirm(site, &[X], &token);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    expect_code(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("is running: it erases them"), "{text}");
    assert!(text.contains("3 erased"), "{text}");
    assert!(!dump(site).contains(X));
    assert!(ok(site, &["audit", "verify"]).contains("intact"));
}
