//! Repeated file names, end to end (issue 20 item 10): the real daemon, a
//! VICIdial database in MariaDB and files whose names several calls share.
//! Each file gets the row whose times agree with its own — campaign and
//! `recording_log.location` — and a file no row can be told for is recorded
//! as ambiguous, shown in `status`, and left with its name's attribution.

use std::path::Path;
use std::time::Duration;

use super::SERVER_IP;
use super::dialer::{DUE_NOW, Dialer, output};
use crate::common::*;

/// A `recording_log` row (with its outbound call, campaign `C<id>`) for
/// `stem` that started `start` and lasted `length` seconds; its location
/// points at `rel` under monitorDONE.
async fn row(d: &mut Dialer, id: u32, stem: &str, start: i64, length: u32, rel: &str) {
    let uniqueid = format!("{start}.{id}");
    d.fx.exec(&format!(
        "INSERT INTO recording_log (recording_id, server_ip, start_time, start_epoch, end_epoch, \
             length_in_sec, filename, location, lead_id, user, vicidial_id) VALUES \
         ({id}, '{SERVER_IP}', FROM_UNIXTIME({start}), {start}, {}, {length}, '{stem}', \
             'http://{SERVER_IP}/RECORDINGS/{rel}', {id}, 'VDAD', '{uniqueid}')",
        start + i64::from(length)
    ))
    .await;
    d.fx.exec(&format!(
        "INSERT INTO vicidial_log (uniqueid, lead_id, list_id, campaign_id, start_epoch, \
             length_in_sec, phone_number, user) VALUES \
         ('{uniqueid}', {id}, 1, 'C{id}', {start}, {length}, '555{id:07}', 'agent{id}')"
    ))
    .await;
}

/// A WAV of `seconds` at `dir/name`, last written at `mtime` (Unix seconds).
fn file(dir: &Path, name: &str, seconds: f64, mtime: i64) {
    let age = chrono::Local::now().timestamp() - mtime;
    put_recording(
        dir,
        name.as_bytes(),
        &wav(seconds, mtime as u64),
        Duration::from_secs(age as u64),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_file_of_a_repeated_name_gets_its_own_row_and_nothing_is_guessed() {
    let g = garage();
    let Some(mut d) = Dialer::new("vd_repeat", &g, DUE_NOW).await else {
        return;
    };
    let old = d.site.add_dir("old");
    let dirs = format!("[\"{}\", \"{}\"]", d.site.spool.display(), old.display());
    d.site.set_option("spool", "dirs", &dirs);
    d.serve("");
    let spool = d.site.spool.clone();
    let now = chrono::Local::now().timestamp();
    let (h, day) = (3600, 86_400);
    // One name, two calls three days apart: the older file is attributed
    // only now, after the newer call's row exists.
    let n = "5551230001";
    row(
        &mut d,
        7001,
        n,
        now - 3 * day,
        2,
        &format!("old/{n}-all.wav"),
    )
    .await;
    row(&mut d, 7002, n, now - h, 5, &format!("{n}-all.wav")).await;
    file(&old, &format!("{n}-all.wav"), 2.0, now - 3 * day + 2 + 120);
    file(&spool, &format!("{n}-all.wav"), 5.0, now - h + 5 + 60);
    // One name, two calls ten minutes apart: their lengths tell them apart.
    let m = "5551230002";
    row(&mut d, 7003, m, now - 2 * h, 3, &format!("old/{m}-all.wav")).await;
    row(
        &mut d,
        7004,
        m,
        now - 2 * h + 600,
        20,
        &format!("{m}-all.wav"),
    )
    .await;
    file(&old, &format!("{m}-all.wav"), 3.0, now - 2 * h + 3 + 30);
    file(
        &spool,
        &format!("{m}-all.wav"),
        20.0,
        now - 2 * h + 600 + 20 + 30,
    );
    // Two calls of the same length an hour apart, both before the file:
    // both agree. And a call that began after its only file was written.
    let q = "5551230003";
    row(&mut d, 7005, q, now - 5 * h, 4, &format!("{q}-all.wav")).await;
    row(&mut d, 7006, q, now - 4 * h, 4, &format!("{q}-all.wav")).await;
    file(&spool, &format!("{q}-all.wav"), 4.0, now - 4 * h + 4 + 60);
    let p = "5551230004";
    row(&mut d, 7007, p, now - 600, 1, &format!("{p}-all.wav")).await;
    file(&spool, &format!("{p}-all.wav"), 1.0, now - h);

    d.start();
    let count = |d: &Dialer, sql: &str| d.try_ledger_value::<i64>(sql).unwrap_or(0);
    let answered = "SELECT COUNT(*) FROM recordings WHERE db_attribution IN ('done', 'ambiguous')";
    let archived = "SELECT COUNT(*) FROM recordings WHERE state = 'local_deleted'";
    let linking = "SELECT COUNT(*) FROM locations WHERE state IN ('waiting', 'rewriting')";
    d.wait_for(
        Duration::from_secs(90),
        "attribution, archiving and links",
        |d| count(d, answered) == 6 && count(d, archived) == 6 && count(d, linking) == 0,
    )
    .await;
    d.stop();

    let of = |d: &Dialer, path: &Path, column: &str| -> Option<String> {
        d.ledger_value(&format!(
            "SELECT CAST({column} AS TEXT) FROM recordings WHERE path = CAST('{}' AS BLOB)",
            path.display()
        ))
    };
    for (path, row) in [
        (old.join(format!("{n}-all.wav")), 7001),
        (spool.join(format!("{n}-all.wav")), 7002),
        (old.join(format!("{m}-all.wav")), 7003),
        (spool.join(format!("{m}-all.wav")), 7004),
    ] {
        let shown = path.display();
        assert_eq!(
            of(&d, &path, "vicidial_recording_id"),
            Some(row.to_string()),
            "{shown}"
        );
        assert_eq!(
            of(&d, &path, "campaign"),
            Some(format!("C{row}")),
            "{shown}"
        );
        // Its own row's location now plays it.
        let id = of(&d, &path, "id").unwrap();
        let location =
            d.fx.text(&format!(
                "SELECT location FROM recording_log WHERE recording_id = {row}"
            ))
            .await
            .unwrap();
        assert!(
            location.contains(&format!("/r/{id}/")),
            "{shown}: {location}"
        );
    }
    for (stem, rows) in [(q, "7005, 7006"), (p, "7007")] {
        let path = spool.join(format!("{stem}-all.wav"));
        assert_eq!(
            of(&d, &path, "db_attribution").as_deref(),
            Some("ambiguous")
        );
        assert_eq!(of(&d, &path, "campaign"), None, "nothing guessed");
        assert_eq!(of(&d, &path, "vicidial_recording_id"), None);
        assert!(of(&d, &path, "db_reason").unwrap().contains(rows));
        let id = of(&d, &path, "id").unwrap();
        let rewrites: i64 = d.ledger_value(&format!(
            "SELECT COUNT(*) FROM locations WHERE recording_id = {id}"
        ));
        assert_eq!(
            rewrites, 0,
            "an ambiguous recording's location is never rewritten"
        );
    }
    for row in [7005, 7006, 7007] {
        let location =
            d.fx.text(&format!(
                "SELECT location FROM recording_log WHERE recording_id = {row}"
            ))
            .await
            .unwrap();
        assert!(location.contains("/RECORDINGS/"), "{row}: {location}");
    }
    let status = output(&d.site.recvault(&["status"]));
    assert!(
        status.contains("4 attributed (0 from archive tables)"),
        "{status}"
    );
    assert!(status.contains(", 2 ambiguous ("), "{status}");
    assert!(status.contains("  last ambiguous: "), "{status}");
}
