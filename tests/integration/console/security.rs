//! The console's plumbing, refused the way it should be: cookies and
//! headers, a forged or missing CSRF proof, a session replayed after
//! logout, a role asking for more than it has, a path outside `/console/`,
//! failed logins slowed, and `check` refusing the console in clear off
//! loopback. Each refusal changes nothing.

use super::*;

fn holds(s: &Served) -> usize {
    s.site.ledger().holds().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_proofs_and_roles_refuse_what_they_should() {
    let (s, _) = console_site("console_security", "").await;
    let port = s.port;

    // Not logged in: pages send to the login, forms are refused.
    let mut anon = Client::new(port);
    let r = anon.get("/console/search").await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/console/login"))
    );
    let r = anon.post("/console/holds/place", &[("case", "X")]).await;
    assert_eq!(r.status, 401, "{}", r.text());

    // Every answer is hardened.
    let login = anon.get("/console/login").await;
    let csp = login.header("content-security-policy").unwrap();
    for part in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("script-src"), "no script at all: {csp}");
    assert_eq!(login.header("x-frame-options"), Some("DENY"));
    assert_eq!(login.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(login.header("cache-control"), Some("no-store"));

    // A wrong password: 401, no session.
    let mut mallory = Client::new(port);
    let r = mallory.log_in("alice", "not the password").await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("wrong user name or password"));
    assert!(!mallory.cookies.contains_key("recvault_session"));

    // A login: the session cookie is HttpOnly, Secure, SameSite=Strict.
    let mut bob = Client::new(port);
    let r = bob.log_in("bob", PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("recvault_session="))
        .unwrap();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }

    // A forged proof, a proof for another form, none: 403, no hold placed.
    let fields = [
        ("case", "FORGED-1"),
        ("reason", "x"),
        ("phone", "5551234567"),
    ];
    let mut forged = vec![("csrf", "00".repeat(32))];
    forged.extend(fields.iter().map(|(k, v)| (*k, v.to_string())));
    let forged: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = bob.post("/console/holds/place", &forged).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = bob.post("/console/holds/place", &fields).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let page = bob.get("/console/search").await;
    let logout_proof = csrf_of(&page.text(), "/console/logout").unwrap();
    let mut other_form = vec![("csrf", logout_proof.as_str())];
    other_form.extend_from_slice(&fields);
    let r = bob.post("/console/holds/place", &other_form).await;
    assert_eq!(r.status, 403, "a proof for another form: {}", r.text());
    // Another session's proof.
    let mut alice = logged_in(port, "alice").await;
    let preview = alice
        .get("/console/holds/preview?case=FORGED-1&reason=x&phone=5551234567")
        .await;
    let alices = csrf_of(&preview.text(), "/console/holds/place").unwrap();
    let mut stolen = vec![("csrf", alices.as_str())];
    stolen.extend_from_slice(&fields);
    let r = bob.post("/console/holds/place", &stolen).await;
    assert_eq!(r.status, 403, "another session's proof: {}", r.text());
    assert_eq!(holds(&s), 0, "a refused form changed nothing");

    // A listener is refused the compliance pages.
    let mut carol = logged_in(port, "carol").await;
    for page in [
        "/console/holds",
        "/console/holds/preview?case=A&reason=b&phone=1",
        "/console/erasure",
        "/console/audit",
    ] {
        let r = carol.get(page).await;
        assert_eq!(r.status, 403, "{page}: {}", r.text());
        assert!(
            r.text().contains("needs the compliance role"),
            "{}",
            r.text()
        );
    }
    assert_eq!(
        carol.get("/console/search?phone=5551234567").await.status,
        200
    );
    assert_eq!(holds(&s), 0);

    // Hostile parameters are refused by name, not obeyed.
    for bad in [
        "/console/search?phone=%3Cscript%3E",
        "/console/search?sort=name;DROP",
        "/console/search?page=-1",
        "/console/audit?action=nope",
    ] {
        let r = bob.get(bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(!r.text().contains("<script>"), "{bad} echoed unescaped");
    }
    assert_eq!(bob.get("/console/no/such/page").await.status, 404);
    assert_eq!(
        bob.send("PUT", "/console/search", &[], None).await.status,
        405
    );
    // Outside /console/ a POST is still refused as before.
    assert_eq!(bob.post("/r/1/x", &[("a", "b")]).await.status, 405);
    assert_eq!(bob.get("/consolex").await.status, 404);

    // Logout ends the session: its cookie replayed is worth nothing.
    let saved = bob.cookies.clone();
    let page = bob.get("/console/search").await;
    let r = bob.submit(&page, "/console/logout", &[]).await;
    assert_eq!(r.status, 303);
    assert!(!bob.cookies.contains_key("recvault_session"));
    bob.cookies = saved;
    let r = bob.get("/console/search").await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/console/login"))
    );
    let r = bob.submit(&preview, "/console/holds/place", &fields).await;
    assert_eq!(r.status, 401, "replayed after logout: {}", r.text());
    assert_eq!(holds(&s), 0);

    // Failed logins are slowed: after three, even the right password waits.
    let mut guesser = Client::new(port);
    for _ in 0..3 {
        assert_eq!(guesser.log_in("dave", "guess").await.status, 401);
    }
    let r = guesser.log_in("dave", PASSWORD).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    // Another name from another address is not held back by it.
    let mut other = Client::new(port);
    other.from = "127.0.0.2".into();
    assert_eq!(other.log_in("alice", PASSWORD).await.status, 303);
}

#[test]
fn check_refuses_the_console_in_clear_off_loopback() {
    let mut site = Site::new("console_check");
    site.configure(Target::Local, "");
    let key = site.root.join("link.key");
    std::fs::write(&key, format!("{}\n", crate::serve::KEY)).unwrap();
    let mut config = std::fs::read_to_string(&site.config).unwrap();
    config.push_str(&format!(
        "\n[serve]\nlisten = \"0.0.0.0:8089\"\nkey_file = \"{}\"\n\n[console]\nenabled = true\n",
        key.display()
    ));
    std::fs::write(&site.config, config).unwrap();
    let out = site.recvault(&["check", "--offline"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("console.enabled") && err.contains("in clear"),
        "{err}"
    );
}
