//! An erased person leaves no readable trace in the fleet's database: after
//! a fleet erasure of one caller's recordings on two boxes is complete,
//! no `recvault_*` table holds their number (in any form), the recordings'
//! file names or their lead id (a released hold of the number keeps its
//! pseudonym); yet the same caller's next request, made
//! on a third box, still finds what was erased (through the pseudonyms of
//! the key the fleet shares). A request an older version wrote with plain
//! selectors and names loses them as the boxes mark their items erased.

use std::os::unix::fs::PermissionsExt;

use super::{Cluster, text};
use crate::common::*;

const PERSON: &str = "5550006666";
const LEAD: &str = "90817263";
/// The fleet's pseudonym key, the same on every box.
const KEY: &str = "6b9a1c0e2f4d5a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_fleet_erasure_leaves_no_number_name_or_lead_in_the_fleets_database() {
    let Some(mut c) = Cluster::new("fleet_trace", &["A", "B", "C"]).await else {
        return;
    };
    expect_code(&c.node("A").recvault(&["fleet", "init", "--confirm"]), 0);
    for host in ["A", "B", "C"] {
        let path = c
            .node(host)
            .site
            .ledger_path()
            .with_file_name("pseudonym.key");
        std::fs::write(&path, format!("{KEY}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let on_a = c.node("A").call(PERSON, 0, 81);
    let on_b = c.node("B").call(PERSON, 1, 82);
    for host in ["A", "B", "C"] {
        c.node(host).start();
    }
    c.node("A").wait_state(&on_a, "local_deleted").await;
    c.node("B").wait_state(&on_b, "local_deleted").await;
    // Attribution's lead id, as VICIdial would have given it.
    set_lead(&c.node("A").site, &on_a);
    set_lead(&c.node("B").site, &on_b);
    c.wait_db(
        "both recordings in the catalog with the lead id",
        &format!("SELECT COUNT(*) FROM recvault_recordings WHERE phone = '{PERSON}' AND lead_id = '{LEAD}'"),
        2,
    )
    .await;

    // A hold of the number, released since: nothing to keep it for.
    let hold: [&[&str]; 2] = [
        &[
            "hold", "add", "CASE-9", "--reason", "dispute", "--phone", PERSON,
        ],
        &["hold", "release", "CASE-9", "--reason", "settled"],
    ];
    for args in hold {
        expect_code(&c.node("A").recvault(args), 0);
    }
    assert_eq!(
        c.count(&format!(
            "SELECT COUNT(*) FROM recvault_hold_selectors WHERE value = '{PERSON}'"
        ))
        .await,
        1
    );

    // B is down while the request is confirmed, so its item is still open
    // when rows as an older version wrote them (plain) are planted below.
    c.node("B").stop();
    let args = ["erase", "--phone", PERSON, "--request", "GDPR-7"];
    let out = text(&c.node("A").recvault(&args));
    assert!(out.contains(&on_a) && out.contains(&on_b), "{out}");
    let token = token_in(&out);
    let out = text(
        &c.node("A")
            .recvault(&[&args[..], &["--confirm", &token]].concat()),
    );
    assert!(out.contains("erasure request GDPR-7"), "{out}");
    assert_eq!(
        c.count(&format!(
            "SELECT COUNT(*) FROM recvault_erasures WHERE selectors LIKE '%{PERSON}%'"
        ))
        .await,
        0,
        "the selectors were written plain"
    );
    c.fx.exec(&format!(
        "UPDATE recvault_erasures SET selectors = \
         '[{{\"kind\":\"phone\",\"value\":\"{PERSON}\",\"from\":null,\"to\":null}}]'"
    ))
    .await;
    c.fx.exec(&format!(
        "UPDATE recvault_erasure_items SET name = '{on_b}' WHERE host = 'B' AND erased_at IS NULL"
    ))
    .await;
    assert_eq!(
        c.count(&format!(
            "SELECT COUNT(*) FROM recvault_erasure_items WHERE name = '{on_b}'"
        ))
        .await,
        1
    );
    c.node("B").start();
    c.wait_db(
        "the request complete",
        "SELECT COUNT(*) FROM recvault_erasures WHERE completed_at IS NOT NULL",
        1,
    )
    .await;
    c.wait_db(
        "both catalog rows erased and republished",
        "SELECT COUNT(*) FROM recvault_recordings WHERE erased_at IS NOT NULL \
         AND phone LIKE 'erased:%' AND lead_id LIKE 'erased:%'",
        2,
    )
    .await;

    let all = dump(&mut c).await;
    let stem = |n: &str| n.trim_end_matches(".wav").to_string();
    for trace in [
        PERSON.to_string(),
        format!("1{PERSON}"),
        format!("+1{PERSON}"),
        "555-000-6666".to_string(),
        on_a.clone(),
        on_b.clone(),
        stem(&on_a),
        stem(&on_b),
        LEAD.to_string(),
    ] {
        assert!(
            !all.contains(&trace),
            "{trace} is still in the fleet's database:\n{all}"
        );
    }

    // The same caller again, on C and typed another way: both erased
    // recordings are found, through their pseudonyms.
    let out = text(&c.node("C").recvault(&[
        "erase",
        "--phone",
        "+1 (555) 000-6666",
        "--request",
        "GDPR-8",
    ]));
    assert_eq!(
        out.matches("already erased by request GDPR-7").count(),
        2,
        "{out}"
    );
    // And `find` (the console's search) finds them the same way.
    let found = text(&c.node("C").recvault(&["find", "--phone", PERSON]));
    assert!(found.contains("2 recordings match"), "{found}");
    for host in ["A", "B", "C"] {
        c.node(host).stop();
    }
}

/// The confirmation token a preview printed.
fn token_in(out: &str) -> String {
    out.split("--confirm ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no token in:\n{out}"))
        .to_string()
}

/// Gives recording `name` of `site` the lead id [`LEAD`] in its ledger
/// (the daemon runs: its outbox publishes the change).
fn set_lead(site: &Site, name: &str) {
    let conn = rusqlite::Connection::open(site.ledger_path()).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    let n = conn
        .execute(
            "UPDATE recordings SET lead_id = ?1 WHERE name = CAST(?2 AS BLOB)",
            [LEAD, name],
        )
        .unwrap();
    assert_eq!(n, 1, "{name}");
}

/// Every row of every `recvault_*` table of the fleet's database, every
/// column as text.
async fn dump(c: &mut Cluster) -> String {
    let db = c.fx.name.clone();
    c.fx.exec("SET SESSION group_concat_max_len = 67108864")
        .await;
    let tables = c
        .fx
        .text(&format!(
            "SELECT CAST(GROUP_CONCAT(table_name ORDER BY table_name) AS CHAR) \
             FROM information_schema.tables WHERE table_schema = '{db}' AND table_name LIKE 'recvault\\_%'"
        ))
        .await
        .expect("recvault's tables");
    let mut out = String::new();
    for table in tables.split(',') {
        let columns = c
            .fx
            .text(&format!(
                "SELECT CAST(GROUP_CONCAT(CONCAT('COALESCE(CAST(`', column_name, '` AS CHAR), ''NULL'')') \
                 ORDER BY ordinal_position SEPARATOR ', ') AS CHAR) FROM information_schema.columns \
                 WHERE table_schema = '{db}' AND table_name = '{table}'"
            ))
            .await
            .expect("columns");
        let rows =
            c.fx.text(&format!(
                "SELECT CAST(GROUP_CONCAT(CONCAT_WS(' | ', {columns}) SEPARATOR '\\n') AS CHAR) \
                 FROM `{db}`.`{table}`"
            ))
            .await
            .unwrap_or_default();
        out.push_str(&format!("== {table}\n{rows}\n"));
    }
    assert!(out.contains("== recvault_erasure_items\n"), "{out}");
    out
}
