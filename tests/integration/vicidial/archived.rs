//! VICIdial's archive tables (issue 19 part 2): rows that
//! ADMIN_archive_log_tables.pl moved into `recording_log_archive`,
//! `vicidial_log_archive` and `vicidial_closer_log_archive` still attribute
//! a backlog — with its campaign's retention, not the default — and a
//! location recvault rewrote keeps its link when the script moves the row
//! afterwards. A database without the archive tables is normal.

use std::time::Duration;

use recvault::vicidial::attribution::Attributed;
use recvault::vicidial::location::LocationUpdate;

use super::attribution::{DAY, LATE};
use super::dialer::{DUE_NOW, Dialer, output};
use super::{Fixture, SERVER_IP};
use crate::common::*;
use crate::serve::fetch;
use crate::vicidial_fixture;

const MINUTE: Duration = Duration::from_secs(60);

/// What the script does for `table`: every row copied into its archive
/// (a row already there is not updated), then the live rows matching
/// `older` deleted.
async fn archive(fx: &mut Fixture, table: &str, older: &str) {
    fx.exec(&format!(
        "INSERT IGNORE INTO {table}_archive SELECT * FROM {table}"
    ))
    .await;
    fx.exec(&format!("DELETE FROM {table} WHERE {older}")).await;
}

fn recordings(d: &Dialer, condition: &str) -> i64 {
    d.try_ledger_value(&format!(
        "SELECT COUNT(*) FROM recordings WHERE {condition}"
    ))
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_whose_rows_were_archived_is_attributed_and_kept_by_its_campaign() {
    let g = garage();
    let Some(mut d) = Dialer::new("vd_archived", &g, DUE_NOW).await else {
        return;
    };
    // The default would delete these 100-day-old calls; their campaigns
    // keep them. A recording the database cannot attribute gets the
    // default at once (attribution_wait 1s).
    d.site.set_option("vicidial", "attribution_wait", "\"1s\"");
    let mut config = std::fs::read_to_string(&d.site.config).unwrap();
    config.push_str(
        "\n[retention]\ndefault = \"30d\"\n\n[retention.campaigns]\nARCH = \"forever\"\nINARCH = \"forever\"\nVLOG = \"forever\"\n",
    );
    std::fs::write(&d.site.config, config).unwrap();
    let outbound = d.call(8001, "ARCH", "agent1", 100).await;
    // An inbound call: vicidial_id is the closecallid.
    let inbound = d.call(8002, "UNUSED", "agent2", 100).await;
    d.fx.exec("DELETE FROM vicidial_log WHERE lead_id = 8002")
        .await;
    d.fx.exec("UPDATE recording_log SET vicidial_id = '9002' WHERE recording_id = 8002")
        .await;
    d.fx.exec(
        "INSERT INTO vicidial_closer_log (closecallid, lead_id, list_id, campaign_id, start_epoch, \
             length_in_sec, phone_number, user, uniqueid) \
         SELECT 9002, 8002, 1, 'INARCH', start_epoch, 61, '5550008002', 'agent2', '1.2' \
         FROM recording_log WHERE recording_id = 8002",
    )
    .await;
    // The whole backlog archived: recording_log rows and call logs alike.
    archive(&mut d.fx, "recording_log", "recording_id IN (8001, 8002)").await;
    archive(&mut d.fx, "vicidial_log", "lead_id = 8001").await;
    archive(&mut d.fx, "vicidial_closer_log", "closecallid = 9002").await;
    // Only the call log archived (--daily --vlog-daily keeps 24 hours).
    let recent = d.call(8003, "VLOG", "agent3", 100).await;
    archive(&mut d.fx, "vicidial_log", "lead_id = 8003").await;
    d.start();
    d.wait_for(MINUTE, "attribution from the archive tables", |d| {
        recordings(d, "db_attribution = 'done'") == 3
            && recordings(d, "state = 'local_deleted'") == 3
    })
    .await;
    d.stop();
    let field = |name: &str, column: &str| -> Option<String> {
        d.ledger_value(&format!(
            "SELECT CAST({column} AS TEXT) FROM recordings WHERE name = CAST('{name}' AS BLOB)"
        ))
    };
    assert_eq!(field(&outbound, "campaign").as_deref(), Some("ARCH"));
    assert_eq!(field(&outbound, "agent").as_deref(), Some("agent1"));
    assert_eq!(field(&outbound, "db_source").as_deref(), Some("outbound"));
    assert_eq!(
        field(&outbound, "db_archived").as_deref(),
        Some("recording_log_archive,vicidial_log_archive")
    );
    assert_eq!(field(&inbound, "campaign").as_deref(), Some("INARCH"));
    assert_eq!(field(&inbound, "db_source").as_deref(), Some("inbound"));
    assert_eq!(
        field(&inbound, "db_archived").as_deref(),
        Some("recording_log_archive,vicidial_closer_log_archive")
    );
    assert_eq!(field(&recent, "campaign").as_deref(), Some("VLOG"));
    assert_eq!(field(&recent, "db_source").as_deref(), Some("outbound"));
    assert_eq!(
        field(&recent, "db_archived").as_deref(),
        Some("vicidial_log_archive")
    );
    let status = output(&d.site.recvault(&["status"]));
    assert!(
        status.contains("3 attributed (3 from archive tables)"),
        "{status}"
    );
    // Retention keeps them by their campaigns, not the 30-day default.
    expect_code(&d.site.recvault(&["retention", "run"]), 0);
    for name in [&outbound, &inbound, &recent] {
        assert_eq!(
            field(name, "state").as_deref(),
            Some("local_deleted"),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_archived_after_its_location_was_rewritten_keeps_the_link() {
    let g = garage();
    let Some(mut d) = Dialer::new("vd_moved", &g, DUE_NOW).await else {
        return;
    };
    d.serve("");
    let file = d.call(8101, "SALES", "agent1", 1).await;
    let original = std::fs::read(d.site.spool.join(&file)).unwrap();
    let local = format!("http://{SERVER_IP}/RECORDINGS/{file}");
    // The script ran before recvault rewrote the location: the archive
    // holds a copy with the local URL, and INSERT IGNORE never updates it.
    d.fx.exec("INSERT IGNORE INTO recording_log_archive SELECT * FROM recording_log")
        .await;
    d.start();
    d.wait_for(MINUTE, "the location rewrite", |d| {
        d.try_ledger_value::<i64>("SELECT COUNT(*) FROM locations WHERE state = 'rewritten'")
            .unwrap_or(0)
            == 1
    })
    .await;
    let live = "SELECT location FROM recording_log WHERE recording_id = 8101";
    let link = d.fx.text(live).await.unwrap();
    assert!(link.contains("/r/"), "{link}");
    // The script's next run: the row leaves the live table.
    archive(&mut d.fx, "recording_log", "recording_id = 8101").await;
    let left = "SELECT CAST(COUNT(*) AS CHAR) FROM recording_log WHERE recording_id = 8101";
    assert_eq!(d.fx.text(left).await.as_deref(), Some("0"));
    let archived = "SELECT location FROM recording_log_archive WHERE recording_id = 8101";
    assert_eq!(d.fx.text(archived).await.as_deref(), Some(link.as_str()));
    // The archived row's link still plays the recording.
    let played = fetch(d.port, &d.link_path(&link), &[]).await;
    assert_eq!(played.status, 200, "{}", played.text());
    assert_eq!(played.body, original);
    d.stop();
    // restore-locations puts the archived row back too.
    let restore = d.site.recvault(&["vicidial", "restore-locations"]);
    expect_code(&restore, 0);
    assert_eq!(d.fx.text(archived).await.as_deref(), Some(local.as_str()));
}

#[tokio::test]
async fn a_database_without_archive_tables_is_normal() {
    let Some(mut fx) = vicidial_fixture!("no_archives") else {
        return;
    };
    for table in ["recording_log", "vicidial_log", "vicidial_closer_log"] {
        fx.exec(&format!("DROP TABLE {table}_archive")).await;
    }
    fx.exec(&format!(
        "INSERT INTO recording_log (recording_id, server_ip, start_epoch, filename, location, \
             lead_id, vicidial_id) VALUES \
         (1, '{SERVER_IP}', 1772360100, 'a', 'http://{SERVER_IP}/RECORDINGS/a-all.wav', 0, '1.1')"
    ))
    .await;
    fx.exec("INSERT INTO vicidial_log (uniqueid, lead_id, campaign_id) VALUES ('1.1', 7, 'SALES')")
        .await;
    let found = fx.db.attribute("a-all.wav", LATE, DAY).await.unwrap();
    let a = found.found().expect("attributed");
    assert_eq!(
        (a.campaign.as_deref(), a.archived.len()),
        (Some("SALES"), 0)
    );
    assert_eq!(
        fx.db.attribute("b-all.wav", LATE, DAY).await.unwrap(),
        Attributed::Missing
    );
    let local = format!("http://{SERVER_IP}/RECORDINGS/a-all.wav");
    assert_eq!(
        fx.db
            .replace_location(1, &local, "http://x/r/1/s")
            .await
            .unwrap(),
        LocationUpdate::Updated
    );
    assert_eq!(
        fx.db
            .replace_location(2, &local, "http://x/r/2/s")
            .await
            .unwrap(),
        LocationUpdate::Missing
    );
}
