//! Exports and downloads from the console: a compliance user exports a
//! search's results as a job with a progress page, downloads the same zip
//! `recvault export` makes (read back by Python's zipfile), and every
//! download — the zip, a search's CSV — is in the audit trail with the
//! user, the address and the reason, refused without one where required.
//! A job interrupted by a stop is made when the daemon starts again.

use std::process::Command;

use super::*;

/// What Python's zipfile reads from a zip: each recording's SHA-256 and
/// the manifest's statuses (another implementation than ours).
const READER: &str = r#"
import csv, hashlib, io, json, sys, zipfile
z = zipfile.ZipFile(io.BytesIO(sys.stdin.buffer.read()))
assert z.testzip() is None
files = {n: hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist() if n.startswith("recordings/")}
rows = list(csv.DictReader(io.StringIO(z.read("recordings.csv").decode("utf-8"), newline="")))
print(json.dumps({"files": files, "statuses": [r["status"] for r in rows], "sums": "SHA256SUMS" in z.namelist()}))
"#;

fn read_zip(bytes: &[u8]) -> serde_json::Value {
    use std::io::Write as _;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(READER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python could not read the zip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The id of the job a start answered with (its page's URL).
fn job_of(r: &Reply) -> String {
    assert_eq!(r.status, 303, "{}", r.text());
    let to = r.header("location").unwrap();
    to.strip_prefix("/console/exports/").unwrap().to_string()
}

/// Follows job `id`'s page until it is done; the page.
async fn until_done(c: &mut Client, id: &str) -> Reply {
    for _ in 0..600 {
        let page = c.get(&format!("/console/exports/{id}")).await;
        assert_eq!(page.status, 200, "{}", page.text());
        if page.text().contains("<dd>done</dd>") {
            return page;
        }
        assert!(
            page.text().contains("http-equiv=\"refresh\""),
            "an unfinished job's page refreshes itself: {}",
            page.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("export {id} never finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_jobs_and_every_download_is_audited() {
    let (mut s, original) = console_site("console_exports", "").await;
    let port = s.port;
    let mut bob = logged_in(port, "bob").await;
    let search = "/console/search?phone=555-123-4567";
    let page = bob.get(search).await;
    assert_eq!(page.status, 200, "{}", page.text());

    // The CSV: refused without a reason (required by default), then
    // served and audited with who, from where and why.
    let r = bob.get("/console/search.csv?phone=555-123-4567").await;
    assert_eq!(r.status, 400, "{}", r.text());
    let csv = bob
        .get("/console/search.csv?phone=555-123-4567&reason=regulator+letter+7")
        .await;
    assert_eq!(csv.status, 200, "{}", csv.text());
    assert!(csv.text().contains("5551234567"), "{}", csv.text());

    // A listener is offered no export and refused one.
    let mut carol = logged_in(port, "carol").await;
    let hers = carol.get(search).await;
    assert!(csrf_of(&hers.text(), "/console/exports/start").is_none());
    assert_eq!(carol.get("/console/exports").await.status, 403);

    // Bob exports the results: a job, followed to its end.
    let id = job_of(
        &bob.submit(&page, "/console/exports/start", &[("reason", "DSAR 12")])
            .await,
    );
    let done = until_done(&mut bob, &id).await;
    assert!(
        done.text().contains("1 of 1 recordings exported"),
        "{}",
        done.text()
    );
    let download = format!("/console/exports/{id}/download");
    assert_eq!(bob.get(&download).await.status, 400, "a reason is required");
    let hers = carol.get(&format!("{download}?reason=curious")).await;
    assert_eq!(
        hers.status,
        403,
        "a listener never gets a zip: {}",
        hers.text()
    );
    assert_eq!(
        carol.get(&format!("/console/exports/{id}")).await.status,
        403
    );
    let zip = bob
        .get(&format!("{download}?reason=send+to+the+caller"))
        .await;
    assert_eq!(zip.status, 200, "{}", zip.text());
    assert_eq!(zip.header("content-type"), Some("application/zip"));
    let read = read_zip(&zip.body);
    let files = read["files"].as_object().unwrap();
    assert_eq!(files.len(), 1, "{read}");
    assert_eq!(
        files.values().next().unwrap().as_str().unwrap(),
        sha256(&original),
        "the original's bytes"
    );
    assert_eq!(read["statuses"], serde_json::json!(["exported"]));
    assert_eq!(read["sums"], true);

    // Every download in the trail: user, address, reason; no number in clear.
    let site = &s.site;
    let downloads = audit_lines(site, &["--action", "download"]);
    for (what, why) in [
        ("search results as CSV", "regulator letter 7"),
        (
            &*format!("console export job {id} zip"),
            "send to the caller",
        ),
    ] {
        assert!(
            downloads.iter().any(|l| l.contains(what)
                && l.contains(why)
                && l.contains("bob (console account, console from 127.0.0.1)")),
            "{what}: {downloads:?}"
        );
    }
    let exports = audit_lines(site, &["--action", "export"]);
    assert!(
        exports
            .iter()
            .any(|l| l.contains(&format!("console export job {id} of")) && l.contains("DSAR 12")),
        "{exports:?}"
    );
    for l in downloads.iter().chain(&exports) {
        assert!(!l.contains("5551234567"), "a number in clear: {l}");
    }

    // A job a stop interrupted is made when the daemon starts again.
    s.stop();
    let ledger = s.site.ledger();
    let search = serde_json::to_string(&recvault::catalog::Search {
        selectors: vec![recvault::catalog::Selector::Phone("5551234567".into())],
        ..Default::default()
    })
    .unwrap();
    let who = "bob (console account, console from 127.0.0.1)";
    let again = ledger
        .export_job_add(who, 1, "resumed", "phone", &search)
        .unwrap();
    let taken = ledger.export_job_take().unwrap().unwrap();
    assert_eq!(taken.id, again, "left running, as a kill leaves it");
    drop(ledger);
    s.start().await;
    let mut bob = logged_in(port, "bob").await;
    let done = until_done(&mut bob, &again.to_string()).await;
    assert!(
        done.text().contains("1 of 1 recordings exported"),
        "{}",
        done.text()
    );
    let job = s.site.ledger().export_job(again).unwrap().unwrap();
    assert_eq!(
        (job.attempts, job.search),
        (2, None),
        "made again; its search cleared"
    );
}
