//! The fleet's hold rule in MariaDB, against real tables: for every kind
//! of selector a hold has, one of its selectors of that kind matches — a
//! campaign and a phone, an agent and a time range, an object key, a
//! `host/id` — on the box it was published from; a released hold covers
//! nothing. The gate reserves exactly what no active hold covers, and a
//! hold placed after a reservation counts it as being deleted. A box's own
//! holds merge into the fleet once.

use std::collections::HashSet;
use std::sync::Arc;

use recvault::catalog::{Entry, NewHold, Selector};
use recvault::config::Config;
use recvault::fleet::{Fleet, FleetGate};
use recvault::governance::gate::DeletionGate;
use recvault::ledger::holds::Hold;
use recvault::ledger::reservations::Deletion;

use crate::vicidial::{Fixture, mariadb_port, quick_options};

/// The fleet as box `host` sees it (a config of its own, no daemon).
fn fleet_of(dir: &std::path::Path, host: &str, database: &str) -> Arc<Fleet> {
    let root = dir.join(host);
    std::fs::create_dir_all(root.join("keys")).unwrap();
    let dsn = root.join("keys/fleet.dsn");
    std::fs::write(
        &dsn,
        format!("mysql://root@127.0.0.1:{}/{database}\n", mariadb_port()),
    )
    .unwrap();
    let text = format!(
        "[spool]\ndirs = [\"{r}/spool\"]\nstaging = \"{r}/staging\"\n[ledger]\npath = \"{r}/state/ledger.sqlite3\"\n\
         [daemon]\nhost = \"{host}\"\n[fleet]\nenabled = true\ndsn_file = \"{}\"\n",
        dsn.display(),
        r = root.display()
    );
    let config = Config::parse(&root.join("recvault.toml"), &text).unwrap();
    Fleet::of(&config).unwrap().unwrap()
}

fn entry(host: &str, id: i64, campaign: &str, agent: &str, phone: &str, time: i64) -> Entry {
    serde_json::from_value(serde_json::json!({
        "host": host, "id": id, "name": format!("{host}-{id}.wav"), "path": format!("/s/{host}-{id}.wav"),
        "state": "local_deleted", "step": "local_deleted", "time": time, "call_time": time,
        "campaign": campaign, "agent": agent, "phone": phone, "lead_id": null, "size": 100,
        "sha256": null, "codec": "flac", "object_key": format!("k/{host}/{id}"), "object_size": 50,
        "object_sha256": null, "deleted_at": null, "deleted_by": null, "erasure": null,
        "vicidial_recording_id": null, "call_length": null, "held_by": [], "deleting": null
    }))
    .unwrap()
}

fn hold(case: &str, selectors: Vec<Selector>) -> NewHold {
    NewHold {
        case_id: case.into(),
        reason: "test".into(),
        selectors,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_cover_by_the_same_rule_on_every_box_and_the_gate_reserves_only_the_rest() {
    let Some(fx) = Fixture::new("fleet_rules", quick_options()).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        fleet_of(dir.path(), "A", &fx.name),
        fleet_of(dir.path(), "B", &fx.name),
        fleet_of(dir.path(), "C", &fx.name),
    );
    a.migrate("test", 1).await.unwrap();
    let all = [
        entry("A", 1, "SALES", "agent1", "5550000001", 1000),
        entry("A", 2, "SUPPORT", "agent2", "5550000002", 2000),
        entry("A", 3, "SALES", "agent1", "5550000003", 3000),
        entry("B", 1, "SALES", "agent3", "5550000003", 3000),
        entry("B", 2, "COLLECT", "agent1", "5550000002", 4000),
        entry("C", 7, "SUPPORT", "agent4", "5550000004", 5000),
    ];
    for (fleet, host) in [(&a, "A"), (&b, "B"), (&c, "C")] {
        let mine = all.iter().filter(|e| e.host == host).cloned().collect();
        fleet.publish(mine).await.unwrap();
    }
    let placed = [
        // Campaign and phone: B/1 (A/1 is SALES with another number).
        hold(
            "H1",
            vec![
                Selector::Campaign("SALES".into()),
                Selector::Phone("5550000003".into()),
            ],
        ),
        // Agent and time: B/2 (agent1 at 4000), not A/1 (agent1 at 1000).
        hold(
            "H2",
            vec![
                Selector::Agent("agent1".into()),
                Selector::Time {
                    from: Some(3500),
                    to: Some(4500),
                },
            ],
        ),
        // An object key: C/7.
        hold("H3", vec![Selector::Recording("k/C/7".into())]),
        // host/id: A/2 only.
        hold("H4", vec![Selector::Recording("A/2".into())]),
        // Released below: covers nothing then.
        hold("H5", vec![Selector::Campaign("SALES".into())]),
    ];
    for h in &placed {
        a.place_hold("test@A", 10, h).await.unwrap();
    }
    assert_eq!(b.release_hold("test@B", 11, "H5", "done").await.unwrap(), 1);
    // A/3 matches H1's phone and campaign: covered too.
    let held_by: Vec<(String, u64)> = a
        .holds(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|h| h.active())
        .map(|h| (h.case_id, h.coverage.unwrap().recordings))
        .collect();
    let want: Vec<(String, u64)> = [("H4", 1), ("H3", 1), ("H2", 1), ("H1", 2)]
        .iter()
        .map(|(c, n)| (c.to_string(), *n))
        .collect();
    assert_eq!(held_by, want);

    let reserve = |fleet: &Arc<Fleet>, host: &str| {
        let gate = FleetGate::new(fleet.clone(), None);
        gate.set_joined(true);
        let recs: Vec<_> = all
            .iter()
            .filter(|e| e.host == host)
            .map(Entry::to_recording)
            .collect();
        async move { gate.reserve(Deletion::Retention, &recs, 20).await.unwrap() }
    };
    assert_eq!(reserve(&a, "A").await, HashSet::from([1]));
    assert_eq!(reserve(&b, "B").await, HashSet::new());
    assert_eq!(reserve(&c, "C").await, HashSet::new());

    // A hold placed after A/1's reservation covers it, and says it goes.
    let (_, late) = c
        .place_hold(
            "test@C",
            30,
            &hold("H6", vec![Selector::Phone("5550000001".into())]),
        )
        .await
        .unwrap();
    assert_eq!((late.recordings, late.being_deleted), (1, 1));
    assert_eq!(late.per_host.get("A"), Some(&1));

    // A box's own hold merges once.
    let own = Hold {
        id: 4,
        case_id: "LOCAL".into(),
        reason: "before the fleet".into(),
        created_by: "root".into(),
        created_at: 5,
        released_at: None,
        released_by: None,
        release_reason: None,
        selectors: vec![Selector::Agent("agent4".into())],
    };
    assert_eq!(c.merge_holds(vec![own.clone()]).await.unwrap(), 1);
    assert_eq!(c.merge_holds(vec![own]).await.unwrap(), 0);
    assert_eq!(
        c.holds(Some("LOCAL")).await.unwrap()[0]
            .coverage
            .as_ref()
            .unwrap()
            .recordings,
        1
    );
}

/// Puts `bytes` under `key` in the test bucket.
async fn put(store: &dyn recvault::store::Store, key: &str, bytes: &[u8]) {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("object");
    std::fs::write(&file, bytes).unwrap();
    let req = recvault::store::PutRequest {
        key,
        source: recvault::store::Body::File(&file),
        size: bytes.len() as u64,
        sha256: sha2::Sha256::digest(bytes).into(),
        metadata: &Default::default(),
        content_type: "application/octet-stream",
    };
    store.put(&req).await.unwrap();
}

/// A leader killed after reserving a forgotten box's deletion, before
/// deleting: the next leader finishes it — a reservation is a commitment,
/// made before any later hold — and deletes nothing the hold covers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_killed_leader_reserved_the_next_leader_finishes_and_nothing_else_held() {
    let Some(mut fx) = Fixture::new("fleet_leftover", quick_options()).await else {
        return;
    };
    let g = crate::common::garage();
    let store = g.store(64 << 20, 16 << 20).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        fleet_of(dir.path(), "A", &fx.name),
        fleet_of(dir.path(), "B", &fx.name),
    );
    a.migrate("test", 1).await.unwrap();
    let thirty = recvault::catalog::Rules {
        default: recvault::config::Keep::parse("30d").unwrap(),
        campaigns: Default::default(),
        delete_unarchived: false,
    };
    assert!(a.set_policy(&thirty, None, "test", 1).await.unwrap());
    let prefix = crate::common::unique_prefix("fleet_leftover");
    let mut entries = Vec::new();
    for (id, phone) in [(1, "5550000011"), (2, "5550000022")] {
        let mut e = entry("B", id, "SALES", "agent1", phone, 1000);
        let key = format!("{prefix}B/{id}.flac");
        put(store.as_ref(), &key, b"stored recording").await;
        e.object_key = Some(key);
        entries.push(e);
    }
    b.join(2).await.unwrap();
    b.publish(entries.clone()).await.unwrap();
    assert!(a.forget("B", "test", 3).await.unwrap());
    // The dead leader's reservation of B/1, then a hold on both.
    fx.exec(
        "INSERT INTO recvault_deletions (host, id, what, reserved_at) VALUES ('B', 1, 'leader', 4)",
    )
    .await;
    let (_, coverage) = a
        .place_hold(
            "test@A",
            5,
            &hold(
                "LATE",
                vec![
                    Selector::Phone("5550000011".into()),
                    Selector::Phone("5550000022".into()),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!((coverage.recordings, coverage.being_deleted), (2, 1));

    let deleted = a.lead_round(&store, &thirty, 100 * 86_400).await.unwrap();
    assert_eq!(deleted, 1);
    let k1 = entries[0].object_key.clone().unwrap();
    let k2 = entries[1].object_key.clone().unwrap();
    assert!(store.head(&k1).await.unwrap().is_none(), "{k1}");
    assert!(store.head(&k2).await.unwrap().is_some(), "{k2}");
    let state = fx
        .text("SELECT state FROM recvault_recordings WHERE host = 'B' AND id = 1")
        .await;
    assert_eq!(state.as_deref(), Some("remote_deleted"));
    // Nothing more on the next round: the rest is held.
    assert_eq!(
        a.lead_round(&store, &thirty, 100 * 86_400).await.unwrap(),
        0
    );
    store.delete(&k2).await.unwrap();
}
