//! What the console changes, by the rules: a hold placed after its
//! preview and released only by a second admin; an erasure previewed,
//! asked by one person and confirmed by another, then every copy gone and
//! the report downloadable; a recording heard only after a reason, with
//! Range, and every listen in the audit trail under the user's name.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_are_previewed_placed_and_released_by_two_people() {
    let (s, _) = console_site("console_holds", "").await;
    let port = s.port;
    let mut bob = logged_in(port, "bob").await;
    let mut alice = logged_in(port, "alice").await;
    let mut dave = logged_in(port, "dave").await;

    // The preview counts what the hold covers, and places nothing.
    let preview = bob
        .get("/console/holds/preview?case=LIT-7&reason=subpoena&phone=%2B1+(555)+123-4567")
        .await;
    assert_eq!(preview.status, 200, "{}", preview.text());
    assert!(
        preview
            .text()
            .contains("would cover <strong>1</strong> recording (1 on testhost)"),
        "{}",
        preview.text()
    );
    assert!(s.site.ledger().holds().unwrap().is_empty());
    let r = bob.submit(&preview, "/console/holds/place", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let held = s.site.ledger().holds().unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].case_id, "LIT-7");
    assert!(
        held[0].created_by.starts_with("bob (console account"),
        "{:?}",
        held[0]
    );

    // Asked by alice; neither she nor a compliance user may confirm it.
    let page = alice.get("/console/holds").await;
    let r = alice
        .submit(
            &page,
            "/console/holds/release",
            &[("case", "LIT-7"), ("reason", "case closed")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("waits for a second person"),
        "{}",
        r.text()
    );
    let page = alice.get("/console/holds").await;
    assert!(
        page.text()
            .contains("A second person with the admin role must confirm it")
    );
    // While it waits, nobody is offered to ask again: the hold's row shows
    // the request instead of its "Ask to release" form.
    for page in [&page, &bob.get("/console/holds").await] {
        let t = page.text();
        assert!(
            !t.contains("Ask to release") && csrf_of(&t, "/console/holds/release").is_none(),
            "{t}"
        );
        assert!(t.contains("release asked by alice (console account"), "{t}");
    }
    let id = {
        let t = page.text();
        let at = t.find("/console/pending/").unwrap() + "/console/pending/".len();
        t[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
    };
    let approve = format!("/console/pending/{id}/approve");
    let cancel = format!("/console/pending/{id}/cancel");
    // Her own page offers no confirm button; her proof for it is refused.
    assert!(csrf_of(&page.text(), &approve).is_none());
    let own = alice.post(&approve, &[("csrf", &"ab".repeat(32))]).await;
    assert_eq!(own.status, 403);
    let bobs_page = bob.get("/console/holds").await;
    assert!(
        csrf_of(&bobs_page.text(), &approve).is_none(),
        "no confirm for compliance"
    );
    assert!(s.site.ledger().holds().unwrap()[0].released_at.is_none());

    // Dave, the second admin, sees it waiting (visible to both) and confirms.
    let daves = dave.get("/console/holds").await;
    assert!(
        daves.text().contains("release of hold case LIT-7"),
        "{}",
        daves.text()
    );
    assert!(csrf_of(&daves.text(), &cancel).is_some());
    let r = dave.submit(&daves, &approve, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let h = &s.site.ledger().holds().unwrap()[0];
    assert!(h.released_at.is_some());
    assert!(
        h.released_by
            .as_deref()
            .unwrap()
            .starts_with("dave (console account"),
        "{h:?}"
    );
    let why = h.release_reason.as_deref().unwrap();
    assert!(
        why.contains("asked by alice") && why.contains("confirmed by dave"),
        "{why}"
    );
    // Confirmed once: it waits no more.
    assert_eq!(dave.submit(&daves, &approve, &[]).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_is_confirmed_by_a_second_person_and_playback_needs_a_reason() {
    let (s, original) = console_site("console_erasure", "").await;
    let port = s.port;
    let mut carol = logged_in(port, "carol").await;
    let page = "/console/recordings/testhost/1";

    // Listening: refused until a reason is given, then played with Range.
    let r = carol.get(&format!("{page}/audio")).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let rec = carol.get(page).await;
    assert_eq!(rec.status, 200, "{}", rec.text());
    let r = carol
        .submit(&rec, &format!("{page}/listen"), &[("reason", "")])
        .await;
    assert_eq!(r.status, 400, "a reason is required: {}", r.text());
    let r = carol
        .submit(
            &rec,
            &format!("{page}/listen"),
            &[("reason", "QA ticket 42")],
        )
        .await;
    assert_eq!(r.status, 303);
    let part = carol
        .send(
            "GET",
            &format!("{page}/audio"),
            &[("range", "bytes=100-1099")],
            None,
        )
        .await;
    assert_eq!(part.status, 206, "{}", part.text());
    assert_eq!(part.body, original[100..1100]);
    let whole = carol.get(&format!("{page}/original")).await;
    assert_eq!(whole.status, 200);
    assert_eq!(sha256(&whole.body), sha256(&original));
    assert!(
        whole
            .header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );
    assert!(
        whole
            .header("repr-digest")
            .unwrap()
            .starts_with("sha-256=:")
    );
    let site = &s.site;
    wait_for(Duration::from_secs(30), "the listens audited", || {
        audit_lines(site, &["--action", "listen"])
            .iter()
            .filter(|l| l.contains("carol (console account") && l.contains("QA ticket 42"))
            .count()
            >= 2
    });

    // The erasure: previewed by bob (number written another way), asked,
    // refused to bob himself, confirmed by alice.
    let mut bob = logged_in(port, "bob").await;
    let form = bob.get("/console/erasure").await;
    let preview = bob
        .submit(
            &form,
            "/console/erasure/preview",
            &[("request", "DSR-9"), ("phone", "555.123.4567")],
        )
        .await;
    assert_eq!(preview.status, 200, "{}", preview.text());
    assert!(
        preview.text().contains("1 recording(s) to erase"),
        "{}",
        preview.text()
    );
    let token_field = preview.text();
    assert!(token_field.contains("name=\"token\""));
    let r = bob.submit(&preview, "/console/erasure/request", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("waits for a second person"),
        "{}",
        r.text()
    );
    assert!(
        site.ledger().recording(1).unwrap().erasure.is_none(),
        "nothing erased yet"
    );
    let mut alice = logged_in(port, "alice").await;
    let page_a = alice.get("/console/erasure").await;
    assert!(
        page_a.text().contains("erasure request DSR-9"),
        "{}",
        page_a.text()
    );
    let approve = {
        let t = page_a.text();
        let at = t.find("/console/pending/").unwrap();
        let end = t[at..].find('"').unwrap();
        t[at..at + end].to_string()
    };
    let r = alice.submit(&page_a, &approve, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("confirmed"), "{}", r.text());
    wait_for(Duration::from_secs(60), "the erasure carried out", || {
        site.ledger().recording(1).unwrap().is_erased()
    });
    let progress = bob.get("/console/erasure/progress?request=DSR-9").await;
    assert_eq!(progress.status, 200, "{}", progress.text());
    assert!(
        progress.text().contains("complete: every copy is gone"),
        "{}",
        progress.text()
    );
    let report = bob.get("/console/erasure/report.csv?request=DSR-9").await;
    assert_eq!(report.status, 200);
    assert!(
        report.text().contains("complete") && report.text().contains("erased"),
        "{}",
        report.text()
    );
    // Every copy is gone: no object left in the local store.
    let objects: Vec<_> = walk(&s.site.root.join("store"))
        .into_iter()
        .filter(|p| {
            let p = p.to_string_lossy();
            p.contains("testhost/2") && !p.contains(".recvault")
        })
        .collect();
    assert!(objects.is_empty(), "{objects:?}");
    // Erased: it plays for nobody, even with the reason given.
    let r = carol.get(&format!("{page}/audio")).await;
    assert_eq!(r.status, 410, "{}", r.text());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
