//! VICIdial's GDPR purge queue in a fleet: a row whose recording has
//! copies on A and on B becomes one fleet erasure; with B stopped, A erases
//! its copy and the row stays open (not marked `date_deleted`); B back, it
//! erases its copy and only then is the row marked done, once.

use std::fs;

use super::Cluster;
use crate::common::*;

const ROW: u32 = 7101;
const PASS: &str = "VICIdial GDPR purge queue read";

/// Whether queue row [`ROW`] is marked done.
async fn marked(c: &mut Cluster) -> bool {
    c.count(&format!(
        "SELECT COUNT(*) FROM recording_log_deletion_queue WHERE recording_id = {ROW} \
         AND date_deleted IS NOT NULL"
    ))
    .await
        == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_queue_row_is_marked_only_when_every_box_with_a_copy_erased_it() {
    let Some(mut c) = Cluster::new("fleet_queue", &["A", "B"]).await else {
        return;
    };
    expect_code(&c.node("A").recvault(&["fleet", "init", "--confirm"]), 0);
    // A reads VICIdial's database (and so its purge queue); B is a plain box.
    let (addr, database) = (c.node("A").db.addr, c.fx.name.clone());
    let config = c.node("A").site.config.clone();
    let mut text = fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[vicidial]\nenabled = true\nastguiclient = \"/nonexistent/astguiclient.conf\"\n\
         dsn = \"mysql://root@{addr}/{database}\"\nserver_ip = \"10.9.9.1\"\n\
         rewrite_locations = false\npurge_poll = \"1s\"\n"
    ));
    fs::write(&config, text).unwrap();
    // The same call on both boxes (a copy kept on B), and its recording_log row.
    let name = c.node("A").call("5557101000", 1, 91);
    let stem = name.trim_end_matches("-all.wav").to_string();
    let wav_path = c.node("A").site.spool.join(&name);
    let b_path = c.node("B").site.spool.join(&name);
    fs::copy(&wav_path, &b_path).unwrap();
    let when = chrono::Local::now() - chrono::Duration::days(1);
    c.fx.exec(&format!(
        "INSERT INTO recording_log (recording_id, channel, server_ip, extension, start_time, \
             start_epoch, length_in_sec, filename, location, lead_id, user, vicidial_id) VALUES \
         ({ROW}, 'Local/1@default', '10.9.9.1', '5557101000', FROM_UNIXTIME({e}), {e}, 1, \
             '{stem}', 'http://10.9.9.1/RECORDINGS/{name}', {ROW}, 'VDAD', '{e}.{ROW}')",
        e = when.timestamp()
    ))
    .await;
    c.node("A").start();
    c.node("A").wait_log("this box leads the fleet").await;
    c.node("B").start();
    c.node("A").wait_state(&name, "local_deleted").await;
    c.node("B").wait_state(&name, "local_deleted").await;
    c.wait_db(
        "both copies in the catalog",
        &format!("SELECT COUNT(*) FROM recvault_recordings WHERE name = '{name}'"),
        2,
    )
    .await;
    c.node("B").stop();

    // The admin's GDPR purge of the lead.
    c.fx.exec(&format!(
        "INSERT INTO recording_log_deletion_queue (recording_id, lead_id, filename, location, \
         date_queued) SELECT recording_id, lead_id, filename, location, NOW() FROM recording_log \
         WHERE recording_id = {ROW}"
    ))
    .await;
    c.fx.exec(&format!(
        "UPDATE recording_log SET filename = NULL, location = NULL WHERE recording_id = {ROW}"
    ))
    .await;
    let request = format!("VICIdial GDPR purge, recording_log {ROW}");
    c.wait_db(
        "A's copy erased",
        &format!(
            "SELECT COUNT(*) FROM recvault_erasure_items WHERE request = '{request}' \
             AND host = 'A' AND erased_at IS NOT NULL"
        ),
        1,
    )
    .await;
    assert_eq!(
        c.count(&format!(
            "SELECT COUNT(*) FROM recvault_erasure_items WHERE request = '{request}' AND host = 'B'"
        ))
        .await,
        1
    );
    // Two more reads of the queue by the leader after A erased its copy.
    let seen = c.node("A").log_text().matches(PASS).count();
    let deadline = std::time::Instant::now() + super::LIMIT;
    while c.node("A").log_text().matches(PASS).count() < seen + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the leader stopped reading the queue"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert!(!marked(&mut c).await, "marked while B still has its copy");

    // B back: it erases its copy, and the row is marked.
    c.node("B").start();
    c.wait_db(
        "the queue row marked done",
        &format!(
            "SELECT COUNT(*) FROM recording_log_deletion_queue WHERE recording_id = {ROW} \
             AND date_deleted IS NOT NULL"
        ),
        1,
    )
    .await;
    assert_eq!(
        c.count(&format!(
            "SELECT COUNT(*) FROM recvault_erasure_items WHERE request = '{request}' \
             AND erased_at IS NOT NULL"
        ))
        .await,
        2
    );
    assert!(!b_path.exists());
    for host in ["A", "B"] {
        c.node(host).stop();
    }
}
