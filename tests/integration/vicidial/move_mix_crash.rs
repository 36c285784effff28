//! `[vicidial] move_mix` after `kill -9` at each of its steps — the mix
//! written but not recorded, recorded but not in place, in place with both
//! legs in MIX, one leg moved — and the refusal to run beside the script in
//! a crontab. After each kill and one restart: every leg in ORIG once and
//! byte for byte, one mix, the row written, nothing left in MIX or in the
//! temporary folders, every file in the ledger once.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Stdio;
use std::time::Duration;

use super::SERVER_IP;
use super::dialer::output;
use super::move_mix::{MixBox, assert_mix_matches, have_sox, sox_mix};
use crate::common::*;

const MINUTE: Duration = Duration::from_secs(60);

/// The steps the binary can be killed at (debug builds), and what the
/// folders hold then: (mix in place, legs left in MIX, legs in ORIG).
/// MIX is on tmpfs where the machine has /dev/shm, as on a dialer with a
/// RAM drive: a leg is copied to ORIG, then removed from MIX
/// (`leg-copied`: between the two).
const POINTS: [(&str, bool, usize, usize); 5] = [
    ("mixed", false, 2, 0),
    ("located", false, 2, 0),
    ("published", true, 2, 0),
    ("leg-copied", true, 2, 1),
    ("one-leg", true, 1, 1),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_each_step_loses_and_doubles_nothing() {
    if !have_sox("move_mix crash") {
        return;
    }
    let Some(mut b) = MixBox::with("mm_crash", "", true).await else {
        return;
    };
    let ram = fs::metadata(&b.mix).unwrap().dev() != fs::metadata(&b.orig).unwrap().dev();
    let scratch = b.d.site.root.join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    // A mix a killed run left half-written, whose legs an operator took away.
    let temp = b.d.site.spool.join(".recvault-move-mix");
    fs::create_dir_all(&temp).unwrap();
    fs::write(temp.join("20260303-095959_5551239999-all.wav"), b"RIFF").unwrap();
    for (i, (point, mix_there, in_mix, in_orig)) in POINTS.iter().enumerate() {
        if *point == "leg-copied" && !ram {
            eprintln!("no tmpfs at /dev/shm: the copy across file systems is not killed");
            continue;
        }
        let stem = format!("20260303-1000{i:02}_55512300{i:02}");
        let (inn, out) = (wav(2.0 + i as f64, 40 + i as u64), wav(1.5, 50 + i as u64));
        b.legs(&stem, &inn, &out);
        let id = 30 + i as u32;
        b.row(id, &stem, SERVER_IP, Some(0)).await;
        let all = b.d.site.spool.join(format!("{stem}-all.wav"));

        // Killed by itself at the step, as kill -9 would.
        let mut child =
            b.d.site
                .command(&["run"])
                .env("RECVAULT_TEST_MOVE_MIX_KILL_AT", point)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
        let status = wait_exit(&mut child, MINUTE);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{point}: {status}");
        let in_mix_now = MixBox::names(&b.mix).len();
        let in_orig_now = MixBox::names(&b.orig)
            .iter()
            .filter(|n| n.starts_with(&stem))
            .count();
        assert_eq!(
            (all.exists(), in_mix_now, in_orig_now),
            (*mix_there, *in_mix, *in_orig),
            "{point}: the kill landed elsewhere"
        );

        // Restarted: the work is finished, once.
        b.d.start();
        let mix = b.mix.clone();
        b.d.wait_for(MINUTE, "the interrupted pair finished", |_| {
            MixBox::names(&mix).is_empty()
        })
        .await;
        b.d.stop();
        assert_mix_matches(
            &fs::read(&all).unwrap(),
            &sox_mix(&inn, &out, &scratch),
            point,
        );
        assert_eq!(
            fs::read(b.orig.join(format!("{stem}-in.wav"))).unwrap(),
            inn,
            "{point}"
        );
        assert_eq!(
            fs::read(b.orig.join(format!("{stem}-out.wav"))).unwrap(),
            out,
            "{point}"
        );
        assert!(b.temp_files().is_empty(), "{point}: {:?}", b.temp_files());
        assert_eq!(
            b.column(id, "location").await.unwrap(),
            format!("http://{SERVER_IP}/RECORDINGS/{stem}-all.wav"),
            "{point}"
        );
        assert_eq!(
            b.column(id, "length_in_sec").await.as_deref(),
            Some(&*format!("{}", 2 + i))
        );
    }
    // Each file entered the ledger once (the archive would take each once),
    // and each pair was counted once.
    let ledger = rusqlite::Connection::open(b.d.site.ledger_path()).unwrap();
    for (i, (point, ..)) in POINTS.iter().enumerate() {
        if *point == "leg-copied" && !ram {
            continue;
        }
        let stem = format!("20260303-1000{i:02}_55512300{i:02}");
        for suffix in ["-all.wav", "-in.wav", "-out.wav"] {
            let name = format!("{stem}{suffix}");
            let n = count_where(&ledger, &format!("name = CAST('{name}' AS BLOB)"));
            assert_eq!(n, 1, "{name} in the ledger {n} times");
        }
    }
    let status = output(&b.d.site.recvault(&["status"]));
    let pairs = if ram { 5 } else { 4 };
    assert!(
        status.contains(&format!("move_mix done: {pairs} pairs mixed")),
        "{status}"
    );
}

/// Waits for `child` to end by itself (a bound, not a timing assertion).
fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the daemon did not reach its kill point within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A site with move_mix on and a database nobody answers at (the refusal
/// comes before any is asked).
fn site_without_database(test: &str) -> Site {
    let mut site = Site::new(test);
    site.configure(Target::Local, "");
    let conf = site.root.join("astguiclient.conf");
    fs::write(
        &conf,
        format!(
            "PATHmonitor => {root}/monitor\nPATHDONEmonitor => {spool}\nVARserver_ip => {SERVER_IP}\n\
             VARDB_server => 127.0.0.1\nVARDB_port => {port}\n",
            root = site.root.display(),
            spool = site.spool.display(),
            port = dead_port()
        ),
    )
    .unwrap();
    fs::create_dir_all(site.root.join("monitor/MIX")).unwrap();
    let mut text = fs::read_to_string(&site.config).unwrap();
    text.push_str(&format!(
        "\n[vicidial]\nenabled = true\nastguiclient = \"{}\"\nconnect_timeout = \"1s\"\nmove_mix = true\n",
        conf.display()
    ));
    fs::write(&site.config, text).unwrap();
    site
}

#[test]
fn refuses_to_start_while_a_crontab_runs_the_script() {
    let site = site_without_database("mm_cron");
    let cron = site.root.join("cron-root");
    let crontab = cron.join("var/spool/cron/crontabs/root");
    fs::create_dir_all(crontab.parent().unwrap()).unwrap();
    fs::write(
        &crontab,
        "### recording mixing/compressing/ftping scripts\n\
         #0,3,6,9,12,15,18,21,24,27,30,33,36,39,42,45,48,51,54,57 * * * * /usr/share/astguiclient/AST_CRON_audio_1_move_mix.pl --MIX\n\
         1,4,7,10,13,16,19,22,25,28,31,34,37,40,43,46,49,52,55,58 * * * * /usr/share/astguiclient/AST_CRON_audio_2_compress.pl --MP3\n",
    )
    .unwrap();
    let cron_d = cron.join("etc/cron.d");
    fs::create_dir_all(&cron_d).unwrap();
    let line = "0,3,6,9,12,15,18,21,24,27,30,33,36,39,42,45,48,51,54,57 * * * * root /usr/share/astguiclient/AST_CRON_audio_1_move_mix.pl --MIX --HTTPS";
    fs::write(
        cron_d.join("vicidial"),
        format!("SHELL=/bin/sh\n# step 1\n{line}\n"),
    )
    .unwrap();
    let with_root = |args: &[&str]| {
        site.command(args)
            .env("RECVAULT_TEST_CRON_ROOT", &cron)
            .output()
            .unwrap()
    };
    for args in [
        &["run"][..],
        &["vicidial", "cron-check"],
        &["check", "--offline"],
    ] {
        let out = with_root(args);
        let text = output(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        let named = format!("{} line 3: `{line}`", cron_d.join("vicidial").display());
        assert!(text.contains(&named), "{args:?}: {text}");
        assert!(
            !text.contains("crontabs/root"),
            "a commented line counted: {text}"
        );
    }
    // The line commented out: the daemon starts.
    fs::write(
        cron_d.join("vicidial"),
        format!("SHELL=/bin/sh\n# step 1\n#{line}\n"),
    )
    .unwrap();
    let out = with_root(&["vicidial", "cron-check"]);
    expect_code(&out, 0);
    assert!(output(&out).contains("no crontab runs AST_CRON_audio_1_move_mix.pl"));
    let mut daemon = site
        .command(&["run"])
        .env("RECVAULT_TEST_CRON_ROOT", &cron)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = site.root.join("ledger.sqlite3");
    wait_for(MINUTE, "the daemon to start", || ready.exists());
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status}");
}
