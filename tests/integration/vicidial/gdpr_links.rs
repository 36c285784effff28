//! Links VICIdial's own GDPR export can read (issue 19 part 1), and the
//! key rotation and re-signing that keep them so (issue 20 "Also").
//! `admin_modify_lead.php` names each ZIP entry with
//! `preg_match("/$filename.*$/", $location)` and downloads `location` with
//! curl following redirects: the tests do the same, on the rows in a real
//! MariaDB with VICIdial's tables, against the real binary.

use std::fs;
use std::process::Command;
use std::time::Duration;

use super::SERVER_IP;
use super::dialer::{DUE_NOW, Dialer, output};
use crate::common::*;
use crate::serve::{KEY, fetch, signature_of};

const MINUTE: Duration = Duration::from_secs(60);

/// The ZIP entry name VICIdial's export gives a row: what
/// `preg_match("/$filename.*$/", $location)` matches (None: no match, the
/// recording is left out of the export).
fn zip_entry_name(filename: &str, location: &str) -> Option<String> {
    let pattern = regex_lite::Regex::new(&format!("{filename}.*$")).unwrap();
    pattern.find(location).map(|m| m.as_str().to_string())
}

/// `curl -L` as the export runs it: the body, the status, the redirects.
fn curl_follow(url: &str, out: &std::path::Path) -> (Vec<u8>, String) {
    let run = Command::new("curl")
        .args(["-sS", "-L", "-o"])
        .arg(out)
        .args(["-w", "%{http_code} %{num_redirects}", url])
        .output()
        .expect("curl");
    assert!(run.status.success(), "curl {url}: {}", output(&run));
    (
        fs::read(out).unwrap(),
        String::from_utf8_lossy(&run.stdout).into_owned(),
    )
}

/// A location as this box can ask for it (VICIdial's rows name `SERVER_IP`).
fn local_url(d: &Dialer, location: &str) -> String {
    format!("http://127.0.0.1:{}{}", d.port, d.link_path(location))
}

async fn location(d: &mut Dialer, id: u32) -> String {
    d.fx.text(&format!(
        "SELECT location FROM recording_log WHERE recording_id = {id}"
    ))
    .await
    .unwrap_or_else(|| panic!("recording_log {id}: no location"))
}

/// A headerless GSM 6.10 file as VICIdial's compress script writes it
/// (stored as is, so played through a redirect to the store).
fn gsm(frames: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..frames {
        out.push(0xD0 | (i % 16) as u8);
        out.extend((0..32).map(|j| (i * 3 + j) as u8));
    }
    out
}

fn rewritten(d: &Dialer) -> i64 {
    d.try_ledger_value("SELECT COUNT(*) FROM locations WHERE state = 'rewritten'")
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vicidials_gdpr_export_names_and_downloads_every_link_recvault_writes() {
    let g = garage();
    let Some(mut d) = Dialer::new("vl_gdpr", &g, DUE_NOW).await else {
        return;
    };
    d.serve("");
    let wav_file = d.call(4101, "SALES", "a1", 1).await;
    let wav_bytes = fs::read(d.site.spool.join(&wav_file)).unwrap();
    // A call VICIdial's compress script turned into GSM.
    let when = chrono::Local::now() - chrono::Duration::days(1);
    let stem = format!("{}_5550004102", when.format("%Y%m%d-%H%M%S"));
    let gsm_file = format!("{stem}-all.gsm");
    let gsm_bytes = gsm(1500);
    put_recording(
        &d.site.spool,
        gsm_file.as_bytes(),
        &gsm_bytes,
        Duration::from_secs(86400),
    );
    d.row(4102, &stem, when.timestamp(), "SALES", "a2").await;
    d.fx.exec(&format!(
        "UPDATE recording_log SET location = 'http://{SERVER_IP}/RECORDINGS/{gsm_file}' WHERE recording_id = 4102"
    ))
    .await;
    d.start();
    d.wait_for(MINUTE, "both locations rewritten", |d| rewritten(d) == 2)
        .await;
    let mut signatures = Vec::new();
    for (id, file, bytes, redirects) in [
        (4101u32, &wav_file, &wav_bytes, "0"),
        (4102, &gsm_file, &gsm_bytes, "1"),
    ] {
        let filename =
            d.fx.text(&format!(
                "SELECT filename FROM recording_log WHERE recording_id = {id}"
            ))
            .await
            .unwrap();
        let location = location(&mut d, id).await;
        assert!(location.contains("/r/"), "{location}");
        assert_eq!(
            zip_entry_name(&filename, &location).as_deref(),
            Some(file.as_str()),
            "{filename} in {location}"
        );
        let out = d.site.root.join(format!("export-{id}"));
        let (body, status) = curl_follow(&local_url(&d, &location), &out);
        assert_eq!(status, format!("200 {redirects}"), "{location}");
        assert_eq!(sha256(&body), sha256(bytes), "{file}");
        signatures.push(signature_of(&location));
    }
    d.stop();
    // A location's link is a working key to the call: never logged.
    let log = d.log_text();
    for sig in &signatures {
        assert!(!log.contains(sig.as_str()), "the daemon logged a link");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_links_keep_playing_and_resign_and_rotate_key_rewrite_only_what_recvault_wrote() {
    let Some(mut d) = Dialer::on("vl_rotate", Target::Local, DUE_NOW).await else {
        return;
    };
    d.serve("");
    let mut files = Vec::new();
    for id in [4201u32, 4202, 4203] {
        let file = d.call(id, "SALES", "a1", 1).await;
        let bytes = fs::read(d.site.spool.join(&file)).unwrap();
        files.push((id, file, bytes));
    }
    let local = |file: &str| format!("http://{SERVER_IP}/RECORDINGS/{file}");
    d.start();
    d.wait_for(MINUTE, "three locations rewritten", |d| rewritten(d) == 3)
        .await;
    d.stop();

    // An upgraded box: 4201's location holds a link from before links
    // named the recording (v1, no file name), as recvault wrote them then;
    // the migration's mark lets ids handed out before it keep v1 links.
    let rec_id: i64 =
        d.ledger_value("SELECT recording_id FROM locations WHERE vicidial_recording_id = 4201");
    let signer = recvault::serve::link::Signer::from_key(KEY.as_bytes());
    let v1 = format!(
        "http://{SERVER_IP}:{}/r/{rec_id}/{}",
        d.port,
        signer.sign_v1(rec_id, None)
    );
    let current = location(&mut d, 4201).await;
    {
        let ledger = rusqlite::Connection::open(d.site.ledger_path()).unwrap();
        ledger
            .execute_batch(&format!(
                "UPDATE link_marks SET v1_below = {}; \
                 UPDATE locations SET new_location = '{v1}' WHERE recording_id = {rec_id}",
                rec_id + 1
            ))
            .unwrap();
    }
    d.fx.exec(&format!(
        "UPDATE recording_log SET location = '{v1}' WHERE recording_id = 4201 AND location = '{current}'"
    ))
    .await;
    assert_eq!(
        zip_entry_name(&files[0].1.replace("-all.wav", ""), &v1),
        None,
        "a link without the file name is left out of VICIdial's export"
    );
    d.start();
    d.wait_for(MINUTE, "the server", |d| {
        std::net::TcpStream::connect(("127.0.0.1", d.port)).is_ok()
    })
    .await;
    let r = fetch(d.port, &d.link_path(&v1), &[]).await;
    assert_eq!(r.status, 200, "an old link keeps playing: {}", r.text());
    assert_eq!(sha256(&r.body), sha256(&files[0].2));

    // `url resign`: the plan, then (daemon stopped) the old form replaced.
    let plan = output(&d.site.recvault(&["url", "resign"]));
    assert!(
        plan.contains("1 recording_log location(s) to re-sign; 2 already current")
            && plan.contains(&format!("recording_log 4201 ({}): {v1} -> ", files[0].1))
            && plan.contains("nothing changed"),
        "{plan}"
    );
    let busy = d.site.recvault(&["url", "resign", "--confirm"]);
    expect_code(&busy, 1);
    assert!(
        output(&busy).contains("stop the daemon first"),
        "{}",
        output(&busy)
    );
    d.stop();
    let done = output(&d.site.recvault(&["url", "resign", "--confirm"]));
    assert!(done.contains("re-signed 1, left 0"), "{done}");
    let resigned = location(&mut d, 4201).await;
    assert!(
        resigned.ends_with(&format!("/{}", files[0].1)),
        "{resigned}"
    );

    // VICIdial moves 4203 meanwhile (its FTP archive script).
    let ftp = format!("http://10.0.0.20/archive/{}", files[2].1);
    d.fx.exec(&format!(
        "UPDATE recording_log SET location = '{ftp}' WHERE recording_id = 4203"
    ))
    .await;
    let before: Vec<String> = {
        let mut v = Vec::new();
        for id in [4201, 4202] {
            v.push(location(&mut d, id).await);
        }
        v
    };

    // `url rotate-key`: the plan changes nothing; --confirm re-signs what
    // recvault wrote, leaves 4203 and says so, then installs the key.
    let new_key = d.site.root.join("link.key.new");
    let new_secret = "rotated-link-key-abcdefghijklmnopqrstuvwxyz0123456789";
    fs::write(&new_key, format!("{new_secret}\n")).unwrap();
    let key = new_key.display().to_string();
    let plan = output(
        &d.site
            .recvault(&["url", "rotate-key", "--new-key-file", &key]),
    );
    assert!(
        plan.contains("3 recording_log location(s) to re-sign under the new key")
            && plan.contains("links signed with the old key stop playing")
            && plan.contains("nothing changed"),
        "{plan}"
    );
    assert_eq!(location(&mut d, 4201).await, before[0]);
    // A run cut short by kill -9 after 4202's compare-and-set: the ledger
    // holds the new link as pending, VICIdial holds it, the key is the old
    // one. Running the command again finishes it.
    let rec_4202: i64 =
        d.ledger_value("SELECT recording_id FROM locations WHERE vicidial_recording_id = 4202");
    let rec = d.site.ledger().recording(rec_4202).unwrap();
    let next = recvault::serve::link::Signer::from_key(new_secret.as_bytes());
    let cut = format!("http://{SERVER_IP}:{}{}", d.port, next.path(&rec, None));
    {
        let ledger = rusqlite::Connection::open(d.site.ledger_path()).unwrap();
        ledger
            .execute(
                "UPDATE locations SET pending_location = ?1 WHERE recording_id = ?2",
                rusqlite::params![cut, rec_4202],
            )
            .unwrap();
    }
    d.fx.exec(&format!(
        "UPDATE recording_log SET location = '{cut}' WHERE recording_id = 4202"
    ))
    .await;
    let done = d
        .site
        .recvault(&["url", "rotate-key", "--new-key-file", &key, "--confirm"]);
    expect_code(&done, 0);
    let text = output(&done);
    assert!(
        text.contains("re-signed 2, left 1 that someone else changed since")
            && text.contains(&format!(
                "recording_log 4203: changed by someone else to {ftp}"
            )),
        "{text}"
    );
    assert_eq!(location(&mut d, 4203).await, ftp, "VICIdial's change stays");
    assert_eq!(
        fs::read_to_string(d.site.root.join("link.key"))
            .unwrap()
            .trim(),
        new_secret
    );
    assert!(!new_key.exists());
    let mut after = Vec::new();
    assert_eq!(
        location(&mut d, 4202).await,
        cut,
        "the cut-short run finished"
    );
    let pending: i64 =
        d.ledger_value("SELECT COUNT(*) FROM locations WHERE pending_location IS NOT NULL");
    assert_eq!(pending, 0);
    for (i, (id, file, _)) in files.iter().take(2).enumerate() {
        let now = location(&mut d, *id).await;
        assert_ne!(signature_of(&now), signature_of(&before[i]));
        assert_eq!(
            zip_entry_name(&file.replace("-all.wav", ""), &now).as_deref(),
            Some(file.as_str())
        );
        after.push(now);
    }

    // Served again: the new links play, the old ones (both forms) do not.
    d.start();
    d.wait_for(MINUTE, "the server", |d| {
        std::net::TcpStream::connect(("127.0.0.1", d.port)).is_ok()
    })
    .await;
    for (i, (_, _, bytes)) in files.iter().take(2).enumerate() {
        let r = fetch(d.port, &d.link_path(&after[i]), &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(sha256(&r.body), sha256(bytes));
        let old = fetch(d.port, &d.link_path(&before[i]), &[]).await;
        assert_eq!(old.status, 403);
    }
    assert_eq!(fetch(d.port, &d.link_path(&v1), &[]).await.status, 403);
    d.stop();

    // restore-locations still finds and puts back what recvault wrote.
    let restore = output(&d.site.recvault(&["vicidial", "restore-locations"]));
    assert!(restore.contains("restored 2"), "{restore}");
    assert_eq!(location(&mut d, 4201).await, local(&files[0].1));
    assert_eq!(location(&mut d, 4202).await, local(&files[1].1));
    d.assert_password_never_logged(&format!("{plan}{text}{restore}"));
}
