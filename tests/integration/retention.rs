//! Retention, legal holds and the audit trail end to end: the real binary,
//! a real Garage, call times backdated in the file names (no waiting).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use recvault::recording::State;

use crate::common::*;
use crate::proxy::{Fault, Proxy};

const HOUR: Duration = Duration::from_secs(3600);
const DUE_NOW: &str = "settle = \"1s\"\nupload_after = \"0s\"";
const POLICY: &str = "\n[naming]\ntemplate = \"CAMPAIGN_FULLDATE_CUSTPHONE\"\n\n\
    [retention]\ndefault = \"180d\"\n\n[retention.campaigns]\nCOLLECT = \"90d\"\nSALES = \"forever\"\n";

/// A VICIdial-style name for a call `days_ago` days back.
fn call_name(campaign: &str, days_ago: i64, phone: &str) -> Vec<u8> {
    let when = chrono::Local::now() - chrono::Duration::days(days_ago);
    format!(
        "{campaign}_{}_{phone}-all.wav",
        when.format("%Y%m%d-%H%M%S")
    )
    .into_bytes()
}

/// A file age matching a call `days_ago` days back (written an hour after
/// it): a name whose date is far from the file's time is not believed.
fn call_age(days_ago: i64) -> Duration {
    Duration::from_secs(days_ago as u64 * 86400) + HOUR
}

fn append(path: &Path, text: &str) {
    let mut config = fs::read_to_string(path).unwrap();
    config.push_str(text);
    fs::write(path, config).unwrap();
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_ok(site: &Site, args: &[&str]) -> String {
    let out = site.recvault(args);
    expect_code(&out, 0);
    stdout(&out)
}

/// Object keys under the site's prefix, by the file name they hold.
fn stored_names(g: &Garage, site: &Site) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut names: Vec<String> = rt
        .block_on(async {
            recording_objects(&*g.store(64 << 20, 16 << 20).await, &site.prefix).await
        })
        .into_iter()
        .map(|o| {
            // `CAMPAIGN_DATE_PHONE-all.wav.flac` -> `CAMPAIGN_PHONE`
            let file = o.key.rsplit('/').next().unwrap();
            let file = file.trim_end_matches(".flac").trim_end_matches("-all.wav");
            let campaign = file.split('_').next().unwrap();
            format!("{campaign}_{}", file.rsplit('_').next().unwrap())
        })
        .collect();
    names.sort();
    names
}

#[test]
fn due_objects_go_held_ones_stay_until_released_and_the_trail_verifies() {
    let g = garage();
    let mut site = Site::new("retention");
    site.configure(Target::Garage(&g), DUE_NOW);
    append(&site.config, POLICY);
    let calls: [(&str, i64, &str); 7] = [
        ("COLLECT", 100, "5550000001"), // due: 90d
        ("COLLECT", 80, "5550000002"),  // not yet
        ("COLLECT", 120, "5559999999"), // due, but held by phone
        ("SALES", 1000, "5550000003"),  // forever
        ("OTHER", 200, "5550000004"),   // due: default 180d
        ("OTHER", 100, "5550000005"),   // not yet
        ("SALES", 400, "5559999999"),   // forever anyway, and held
    ];
    for (i, (campaign, days, phone)) in calls.iter().enumerate() {
        put_recording(
            &site.spool,
            &call_name(campaign, *days, phone),
            &wav(1.0, i as u64),
            call_age(*days),
        );
    }
    // A name the template does not match: dated by mtime, default policy.
    put_recording(
        &site.spool,
        b"odd name.wav",
        &wav(1.0, 50),
        Duration::from_secs(200 * 86400),
    );
    run_ok(&site, &["run", "--once"]);
    assert_eq!(site.states().get(&State::LocalDeleted), Some(&8));
    let status = run_ok(&site, &["status"]);
    assert!(status.contains("unattributed: 1"), "{status}");

    let held = run_ok(
        &site,
        &[
            "hold",
            "add",
            "CASE-7",
            "--reason",
            "subpoena 2026/17",
            "--phone",
            "+1 (555) 999-9999",
        ],
    );
    // `+1` is the NANP country code: the same caller as 5559999999.
    assert!(held.contains("covers 2 recordings"), "{held}");
    run_ok(&site, &["hold", "release", "CASE-7", "--reason", "again"]);
    let held = run_ok(
        &site,
        &[
            "hold",
            "add",
            "CASE-7",
            "--reason",
            "subpoena 2026/17",
            "--phone",
            "5559999999",
        ],
    );
    assert!(held.contains("covers 2 recordings"), "{held}");

    let plan = run_ok(&site, &["retention", "plan"]);
    assert!(plan.contains("retention.campaigns.COLLECT = 90d"), "{plan}");
    assert!(plan.contains("retention.default = 180d"), "{plan}");
    assert!(plan.contains("odd name.wav"), "{plan}");
    let total = plan.lines().last().unwrap().to_string();
    assert_eq!(
        total.split_whitespace().collect::<Vec<_>>()[..2],
        ["total", "3"],
        "{plan}"
    );
    assert!(
        plan.lines()
            .any(|l| l.starts_with("held") && l.contains("5559999999")),
        "{plan}"
    );
    // Looking ahead 15 days, the 80-day COLLECT call becomes due too.
    let until = (chrono::Local::now() + chrono::Duration::days(15))
        .format("%Y-%m-%d")
        .to_string();
    let ahead = run_ok(
        &site,
        &[
            "retention",
            "plan",
            "--campaign",
            "COLLECT",
            "--until",
            &until,
        ],
    );
    assert!(ahead.contains("5550000002"), "{ahead}");
    assert!(!ahead.contains("OTHER"), "{ahead}");
    // The plan deleted nothing.
    assert_eq!(stored_names(&g, &site).len(), 8);

    let run = run_ok(&site, &["retention", "run"]);
    assert!(run.contains("deleted 3 recordings"), "{run}");
    assert!(run.contains("1 held"), "{run}");
    assert_eq!(
        stored_names(&g, &site),
        [
            "COLLECT_5550000002",
            "COLLECT_5559999999",
            "OTHER_5550000005",
            "SALES_5550000003",
            "SALES_5559999999"
        ]
    );
    let ledger = site.ledger();
    let deleted = ledger.by_state(State::RemoteDeleted).unwrap();
    assert_eq!(deleted.len(), 3);
    for r in &deleted {
        assert!(r.deleted_at.is_some() && r.sha256.is_some() && r.object_key.is_some());
        assert!(r.deleted_by.as_deref().unwrap().starts_with("retention."));
    }
    let odd = ledger.find(b"odd name.wav").unwrap();
    assert_eq!(
        odd[0].deleted_by.as_deref(),
        Some("retention.default = 180d")
    );
    let out = site
        .command(&["restore", "-o"])
        .arg(site.root.join("x"))
        .arg("odd name.wav")
        .output()
        .unwrap();
    expect_code(&out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("deleted by retention"));

    // Nothing more is due while the hold stands; after release it goes.
    assert!(run_ok(&site, &["retention", "run"]).contains("deleted 0 recordings"));
    let show = run_ok(&site, &["hold", "show", "CASE-7"]);
    assert!(
        show.contains("2 recordings") && show.contains("store "),
        "{show}"
    );
    run_ok(
        &site,
        &["hold", "release", "CASE-7", "--reason", "case closed"],
    );
    let run = run_ok(&site, &["retention", "run"]);
    assert!(run.contains("deleted 1 recordings"), "{run}");
    assert_eq!(stored_names(&g, &site).len(), 4);
    assert!(
        run_ok(&site, &["hold", "show", "CASE-7"]).contains("deleted "),
        "a released case still shows what it covered"
    );

    // The audit trail has every deletion and hold change, and verifies.
    let trail = run_ok(&site, &["audit"]);
    assert_eq!(trail.matches("\tretention-delete\t").count(), 4, "{trail}");
    assert_eq!(trail.matches("\thold-add\t").count(), 2, "{trail}");
    assert_eq!(trail.matches("\thold-release\t").count(), 2, "{trail}");
    assert_eq!(trail.matches("\tlocal-delete\t").count(), 8, "{trail}");
    assert!(trail.contains("\tpolicy-change\t"), "{trail}");
    let case = run_ok(&site, &["audit", "--case", "CASE-7"]);
    assert_eq!(case.lines().count(), 4, "{case}");
    assert!(run_ok(&site, &["audit", "verify"]).contains("intact"));

    // Someone edits an entry behind recvault's back: verify fails, naming it.
    let conn = rusqlite::Connection::open(site.ledger_path()).unwrap();
    conn.execute_batch("DROP TRIGGER audit_no_update").unwrap();
    let id: i64 = conn
        .query_row(
            "SELECT id FROM audit WHERE action = 'retention-delete' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE audit SET reason = 'nothing to see' WHERE id = ?1",
        [id],
    )
    .unwrap();
    drop(conn);
    let out = site.recvault(&["audit", "verify"]);
    expect_code(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("entry {id}")), "{err}");
}

#[test]
fn holds_keep_local_copies_and_never_archived_recordings_wait_for_their_archive() {
    let g = garage();
    let mut site = Site::new("localhold");
    site.configure(
        Target::Garage(&g),
        "settle = \"1s\"\nupload_after = \"1000d\"",
    );
    append(&site.config, POLICY);
    let old = call_name("OTHER", 300, "5551110000");
    let held = call_name("OTHER", 300, "5552220000");
    let young = call_name("OTHER", 10, "5553330000");
    for (i, (name, days)) in [(&old, 300), (&held, 300), (&young, 10)]
        .into_iter()
        .enumerate()
    {
        put_recording(&site.spool, name, &wav(1.0, i as u64), call_age(days));
    }
    run_ok(&site, &["run", "--once"]);
    assert_eq!(
        site.states().get(&State::Settled),
        Some(&3),
        "not uploaded yet"
    );
    run_ok(
        &site,
        &[
            "hold",
            "add",
            "C-1",
            "--reason",
            "dispute",
            "--phone",
            "5552220000",
        ],
    );
    let spool = site.spool.clone();
    let exists = |name: &[u8]| spool.join(String::from_utf8_lossy(name).as_ref()).exists();
    // Due, but never archived: the local file is the only copy, so it stays.
    let run = run_ok(&site, &["retention", "run"]);
    assert!(
        run.contains("deleted 0 recordings") && run.contains("1 not yet archived"),
        "{run}"
    );
    let plan = run_ok(&site, &["retention", "plan"]);
    assert!(plan.contains("unarchived\t"), "{plan}");
    assert!(exists(&old) && exists(&held) && exists(&young));
    // Unless the operator asked for exactly that.
    site.set_option("retention", "delete_unarchived", "true");
    let run = run_ok(&site, &["retention", "run"]);
    assert!(
        run.contains("deleted 1 recordings") && run.contains("1 local"),
        "{run}"
    );
    assert!(
        !exists(&old),
        "due, never uploaded, allowed: local copy deleted"
    );
    assert!(exists(&held) && exists(&young));
    let trail = run_ok(&site, &["audit"]);
    assert!(
        trail.contains("never uploaded; local copy deleted"),
        "{trail}"
    );

    // Now upload at once: the held recording is archived and verified, but its
    // local copy stays while the hold does.
    site.configure(Target::Garage(&g), DUE_NOW);
    append(&site.config, POLICY);
    run_ok(&site, &["run", "--once"]);
    assert!(
        exists(&held),
        "a held recording's local copy is never deleted"
    );
    assert!(!exists(&young));
    let ledger = site.ledger();
    assert_eq!(ledger.find(&held).unwrap()[0].state, State::Verified);
    run_ok(&site, &["hold", "release", "C-1", "--reason", "resolved"]);
    run_ok(&site, &["run", "--once"]);
    assert!(!exists(&held), "released: the pipeline removes it as usual");
    assert_eq!(ledger.find(&held).unwrap()[0].state, State::LocalDeleted);
    run_ok(&site, &["audit", "verify"]);
}

#[test]
fn retention_run_refuses_while_the_daemon_runs() {
    let mut site = Site::new("lock");
    site.configure(Target::Local, DUE_NOW);
    let _lock = recvault::ledger::lock::InstanceLock::acquire(&site.ledger_path()).unwrap();
    let out = site.recvault(&["retention", "run"]);
    expect_code(&out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("sweeps every"));
}

#[test]
fn killing_the_daemon_during_sweeps_never_deletes_a_held_recording() {
    let g = garage();
    let mut site = Site::new("sweepkill");
    site.configure(Target::Garage(&g), DUE_NOW);
    append(
        &site.config,
        "\n[naming]\ntemplate = \"CAMPAIGN_FULLDATE_CUSTPHONE\"\n",
    );
    // The hold comes first: it must cover recordings as they arrive.
    run_ok(
        &site,
        &[
            "hold",
            "add",
            "CASE-9",
            "--reason",
            "regulator",
            "--phone",
            "5559999999",
        ],
    );
    let mut held = Vec::new();
    let mut free = Vec::new();
    for i in 0..120i64 {
        // All due (COLLECT keeps 90 days); every fourth call is held.
        let phone = if i % 4 == 0 {
            "5559999999".to_string()
        } else {
            format!("555{i:07}")
        };
        let name = call_name("COLLECT", 100 + i, &phone);
        let bytes = wav(0.3, i as u64);
        put_recording(&site.spool, &name, &bytes, call_age(100 + i));
        if i % 4 == 0 {
            held.push((name, bytes))
        } else {
            free.push(name)
        }
    }
    // Archived first (no retention yet), then the policy makes them all due.
    run_ok(&site, &["run", "--once"]);
    assert_eq!(site.states().get(&State::LocalDeleted), Some(&90));
    append(
        &site.config,
        "\n[retention]\ndefault = \"180d\"\n\n[retention.campaigns]\nCOLLECT = \"90d\"\n",
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(g.store(64 << 20, 16 << 20));
    // The daemon sweeps as it starts. Through a proxy, kills land while
    // deletions are reserved in the ledger: inside a DeleteObjects request
    // that trickles, right after the reservation, and (last) just after
    // DeleteObjects went through, before or after the ledger's commit.
    let proxy = Proxy::garage(&g);
    site.set_option(
        "store",
        "endpoint",
        &format!("\"http://127.0.0.1:{}\"", proxy.port),
    );
    let mut rng = fastrand::Rng::with_seed(11);
    let mut swept_by_daemon = 0;
    let mut landed = 0;
    const CYCLES: usize = 11;
    for cycle in 0..CYCLES {
        let (in_request, after_request) = (cycle % 2 == 0 && cycle < 10, cycle == 10);
        proxy.set_rule(move |seen| match seen.target.contains("?delete") {
            true if in_request => Fault::Slow {
                bytes_per_sec: 2000,
            },
            _ => Fault::Pass,
        });
        let seen_before = proxy.log().len();
        let delay = Duration::from_millis(rng.u64(0..30));
        let mut sent_at = None;
        landed += usize::from(kill_when(&site, Duration::from_secs(60), |conn| {
            let reserved = count_where(conn, "deleting_at IS NOT NULL") > 0;
            if in_request {
                return reserved && proxy.writes_in_flight() > 0;
            }
            if !after_request {
                return reserved;
            }
            let sent = proxy.log()[seen_before..]
                .iter()
                .any(|s| s.target.contains("?delete"));
            if sent && sent_at.is_none() {
                sent_at = Some(Instant::now());
            }
            sent_at.is_some_and(|t| t.elapsed() >= delay)
        }));
        swept_by_daemon = site
            .states()
            .get(&State::RemoteDeleted)
            .copied()
            .unwrap_or(0);
        // A held recording keeps its local copy, whatever state the kill left it in.
        for (name, bytes) in &held {
            let path = site
                .spool
                .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name));
            assert_eq!(
                fs::read(&path).ok().as_ref(),
                Some(bytes),
                "held {path:?} lost its local copy"
            );
        }
    }
    // Kills that all came before or after the sweep would prove nothing.
    eprintln!("{landed} of {CYCLES} kills landed while deletions were reserved");
    assert!(
        landed >= 8,
        "only {landed} of {CYCLES} kills landed mid-sweep"
    );
    proxy.set(Fault::Pass);
    let swept = run_ok(&site, &["retention", "run"]);
    assert!(swept.contains("held"), "{swept}");
    eprintln!("{swept_by_daemon} deleted by killed daemons, then: {swept}");
    // Every free recording is gone from the store and recorded as deleted by retention.
    let ledger = site.ledger();
    for name in &free {
        let rec = ledger.find(name).unwrap().remove(0);
        assert_eq!(
            rec.state,
            State::RemoteDeleted,
            "{}",
            String::from_utf8_lossy(name)
        );
    }
    // Every held one is archived, its object present and bit-exact, its local copy kept.
    let objects = rt.block_on(recording_objects(&*store, &site.prefix));
    assert_eq!(
        objects.len(),
        held.len(),
        "only held recordings stay in the store: {objects:?}"
    );
    for (name, bytes) in &held {
        let rec = ledger.find(name).unwrap().remove(0);
        assert_eq!(
            rec.state,
            State::Verified,
            "{}",
            String::from_utf8_lossy(name)
        );
        assert_eq!(restore(&site, name), *bytes);
    }
    drop(ledger);
    run_ok(&site, &["ledger", "check"]);
    run_ok(&site, &["audit", "verify"]);
}

/// Issue 13.1: a file named for a call 400 days ago but written 5 days ago,
/// never archived, was deleted by retention on the name's word alone.
#[test]
fn a_name_date_the_file_contradicts_never_makes_a_recording_due() {
    let g = garage();
    let mut site = Site::new("namedate");
    site.configure(
        Target::Garage(&g),
        "settle = \"1s\"\nupload_after = \"30d\"",
    );
    append(
        &site.config,
        "\n[naming]\ntemplate = \"CAMPAIGN_FULLDATE_CUSTPHONE\"\n\n[retention]\ndefault = \"90d\"\n",
    );
    let copied = call_name("OTHER", 400, "5551110000");
    let genuine = call_name("OTHER", 400, "5552220000");
    let spool = site.spool.clone();
    put_recording(
        &spool,
        &copied,
        &wav(1.0, 1),
        Duration::from_secs(5 * 86400),
    );
    put_recording(&spool, &genuine, &wav(1.0, 2), call_age(400));
    let exists = |name: &[u8]| spool.join(String::from_utf8_lossy(name).as_ref()).exists();
    // The genuine one is old enough to be archived at once; the copied one,
    // by its file time, is not (upload_after counts from the file's time).
    run_ok(&site, &["run", "--once"]);
    // Only the archived, genuinely old one goes; the copied one, never
    // archived and not due by its file time, stays.
    let run = run_ok(&site, &["retention", "run"]);
    assert!(exists(&copied), "the only copy was deleted: {run}");
    let ledger = site.ledger();
    let state = |name: &[u8]| ledger.find(name).unwrap()[0].state;
    assert_eq!(state(&copied), State::Settled);
    assert!(run.contains("deleted 1 recordings"), "{run}");
    assert_eq!(state(&genuine), State::RemoteDeleted);
    let status = run_ok(&site, &["status"]);
    assert!(status.contains("name dates not believed: 1"), "{status}");
    // Archived now, it is still counted from its file time: not due.
    site.set_option("spool", "upload_after", "\"0s\"");
    run_ok(&site, &["run", "--once"]);
    let run = run_ok(&site, &["retention", "run"]);
    assert!(run.contains("deleted 0 recordings"), "{run}");
    assert_eq!(state(&copied), State::LocalDeleted);
}
