//! The console in a real browser: Debian's chromium driven by
//! playwright-core (`tests/console/browser.mjs`, installed by
//! `scripts/install-deps.sh test` into `tests/console/node_modules`). It
//! logs in, searches a number written three ways, plays and seeks a
//! recording, places a hold after its preview, has a listener refused,
//! exports the hold's case as a job and downloads its zip, releases the
//! hold and confirms an erasure by two people, and takes a
//! screenshot of each page (into `docs/console/`, which the README shows,
//! with `RECVAULT_SCREENSHOTS=1`). A console error — a
//! CSP violation is one — fails it. Under CI a missing chromium or node
//! module fails the test; elsewhere it is skipped, saying so.

use std::path::Path;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_drives_the_console_end_to_end() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/console/browser.mjs");
    let module = root.join("tests/console/node_modules/playwright-core");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing: Vec<&str> = [
        (!Path::new(&chromium).exists()).then_some("chromium"),
        (!module.exists()).then_some("tests/console/node_modules/playwright-core"),
        std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_err()
            .then_some("node"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        let why = format!(
            "missing {}: run scripts/install-deps.sh test",
            missing.join(", ")
        );
        assert!(std::env::var("CI").is_err(), "{why}");
        eprintln!("skipped: {why}");
        return;
    }
    let (s, _) = console_site("console_browser", "").await;
    // The README's screenshots are remade on request; otherwise they go to
    // the test's own directory, so a test run leaves the tree as it was.
    let shots = match std::env::var_os("RECVAULT_SCREENSHOTS") {
        Some(_) => root.join("docs/console"),
        None => s.site.root.join("screenshots"),
    };
    std::fs::create_dir_all(&shots).unwrap();
    let url = format!("http://127.0.0.1:{}", s.port);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(&script)
            .env("CONSOLE_URL", url)
            .env("CONSOLE_PASSWORD", PASSWORD)
            .env("SHOTS_DIR", &shots)
            .env("CHROMIUM", chromium)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser run failed:\n{stdout}\n{}\ndaemon log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.log_text()
    );
    assert!(stdout.contains("9 passed, 0 failed"), "{stdout}");
}
