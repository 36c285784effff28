//! `recvault export` against Garage: 200 recordings restored, proven and
//! zipped with bounded memory; the zip read back by Python's zipfile and
//! csv modules (another implementation than ours); a damaged object named
//! and counted; an existing zip never replaced without --force.

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;
use std::time::Duration;

use super::*;

const X: &str = "5553334444";

/// What Python's zipfile and csv modules read from a zip: each file's
/// SHA-256, the CSV rows, and whether SHA256SUMS matches the files.
const READER: &str = r#"
import csv, hashlib, io, json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
files = {n: hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist() if n.startswith("recordings/")}
rows = list(csv.DictReader(io.StringIO(z.read("recordings.csv").decode("utf-8"), newline="")))
sums = {}
for line in z.read("SHA256SUMS").decode().splitlines():
    digest, name = line.split("  ", 1)
    sums[name] = digest
print(json.dumps({"files": files, "rows": rows, "sums_match": sums == files}))
"#;

pub fn read_zip(path: &std::path::Path) -> serde_json::Value {
    let out = Command::new("python3")
        .arg("-c")
        .arg(READER)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python could not read the zip: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// X's call `minutes` ago.
fn named(minutes: u64) -> (String, Duration) {
    let when = chrono::Local::now() - chrono::Duration::minutes(minutes as i64 + 1);
    let name = format!("SALES_agent7_{}_{X}-all.wav", when.format("%Y%m%d-%H%M%S"));
    (name, Duration::from_secs(minutes * 60 + 30))
}

#[test]
fn two_hundred_recordings_zip_bit_exact_in_bounded_memory() {
    let g = garage();
    let site = site("export", Target::Garage(&g), DUE_NOW);
    let mut originals = BTreeMap::new();
    // 200 calls of half a minute (480 KiB each, 94 MiB in all): 180
    // archived, the newest 20 still only local.
    for i in 0..200u64 {
        if i == 180 {
            ok(&site, &["run", "--once"]);
            site.set_option("spool", "upload_after", "\"30d\"");
        }
        let (name, age) = named(400 - i);
        let bytes = wav(30.0, i);
        originals.insert(name.clone(), sha256(&bytes));
        put_recording(&site.spool, name.as_bytes(), &bytes, age);
    }
    ok(&site, &["run", "--once"]);
    let zip = site.root.join("subject access.zip");
    // Killed half-way: no zip under its name, and the next run tidies up.
    let partial = |root: &std::path::Path| {
        fs::read_dir(root)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".subject access.zip.")
            })
            // Per-recording temp files come and go while this looks.
            .filter_map(|e| e.metadata().ok().map(|m| m.len()))
            .max()
    };
    let mut child = site
        .command(&["export", "--phone", X, "-o", zip.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(60), "the export to be half-way", || {
        partial(&site.root).is_some_and(|n| n > 40 << 20)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !zip.exists(),
        "a killed export leaves no zip under its name"
    );
    let started = std::time::Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(recvault_bin())
        .arg("--config")
        .arg(&site.config)
        .args(["export", "--phone", "+1 555 333 4444", "-o"])
        .arg(&zip)
        .output()
        .expect("/usr/bin/time (the `time` package)");
    expect_code(&out, 0);
    let report = stdout(&out);
    assert!(
        report.contains("200 of 200 recordings exported"),
        "{report}"
    );
    let rss_kib: u64 = stderr(&out)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .expect("time -v reports the peak RSS")
        .parse()
        .unwrap();
    eprintln!(
        "export of 200 recordings (94 MiB): {:.1} s, peak RSS {rss_kib} KiB",
        started.elapsed().as_secs_f64()
    );
    assert!(rss_kib <= 64 * 1024, "peak RSS {rss_kib} KiB");

    assert_eq!(
        partial(&site.root),
        None,
        "temp files of the killed run removed"
    );
    let read = read_zip(&zip);
    let files = read["files"].as_object().unwrap();
    assert_eq!(files.len(), 200);
    for (name, sha) in &originals {
        assert_eq!(files[&format!("recordings/{name}")], sha.as_str(), "{name}");
    }
    assert_eq!(read["sums_match"], true);
    let rows = read["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 200);
    for row in rows {
        let status = row["status"].as_str().unwrap();
        let local = row["source"].as_str().unwrap().starts_with("local file ");
        match local {
            false => assert_eq!(status, "exported", "{row}"),
            // Never compressed: no SHA-256 was recorded to prove it against.
            true => assert_eq!(
                status,
                "exported (not yet archived: SHA-256 computed at export)"
            ),
        }
        assert_eq!(row["phone"], X);
        assert_eq!(row["campaign"], "SALES");
        assert_eq!(row["agent"], "agent7");
        assert_eq!(row["duration_seconds"], "30.0");
        assert_eq!(
            row["sha256"],
            originals[row["name"].as_str().unwrap()].as_str()
        );
    }
    let sources = |what: &str| {
        rows.iter()
            .filter(|r| r["source"].as_str().unwrap().starts_with(what))
            .count()
    };
    assert_eq!((sources("store "), sources("local file ")), (180, 20));
    let trail = ok(&site, &["audit"]);
    assert!(
        trail.contains("\texport\t") && trail.contains("200 recordings"),
        "{trail}"
    );
    assert!(
        !trail
            .lines()
            .any(|l| l.contains("\texport\t") && l.contains(X)),
        "no number in the trail"
    );
}

#[test]
fn damaged_objects_are_named_and_nothing_is_overwritten() {
    let g = garage();
    let site = site("export-bad", Target::Garage(&g), DUE_NOW);
    for i in 0..3 {
        let (name, age) = named(10 + i);
        put_recording(&site.spool, name.as_bytes(), &wav(1.0, i), age);
    }
    ok(&site, &["run", "--once"]);
    let ids = found_ids(&site, &["--phone", X]);
    let damaged = site.ledger().recording(ids[0]).unwrap();
    // Someone replaced the object behind recvault's back (Garage ignores
    // If-None-Match, so a plain PUT overwrites it).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(g.region.clone()))
            .endpoint_url(&g.endpoint)
            .credentials_provider(Credentials::new(&g.key_id, &g.secret, None, None, "t"))
            .force_path_style(true)
            .build();
        let bytes = zstd::encode_all(&wav(1.0, 99)[..], 3).unwrap();
        aws_sdk_s3::Client::from_conf(config)
            .put_object()
            .bucket(&g.bucket)
            .key(damaged.object_key.as_deref().unwrap())
            .body(bytes.into())
            .send()
            .await
            .unwrap();
    });
    let zip = site.root.join("out.zip");
    fs::write(&zip, b"precious").unwrap();
    let out = site.recvault(&["export", "--phone", X, "-o", zip.to_str().unwrap()]);
    expect_code(&out, 1);
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(
        fs::read(&zip).unwrap(),
        b"precious",
        "never replaced without --force"
    );

    let out = site.recvault(&[
        "export",
        "--phone",
        X,
        "-o",
        zip.to_str().unwrap(),
        "--force",
    ]);
    expect_code(&out, 1);
    let text = stdout(&out);
    let name = String::from_utf8(damaged.name.clone()).unwrap();
    assert!(text.contains(&format!("FAILED: {name}")), "{text}");
    assert!(
        text.contains("2 of 3 recordings exported") && text.contains("1 failed"),
        "{text}"
    );
    let read = read_zip(&zip);
    assert_eq!(read["files"].as_object().unwrap().len(), 2);
    let rows = read["rows"].as_array().unwrap();
    let failed: Vec<_> = rows
        .iter()
        .filter(|r| r["status"].as_str().unwrap().starts_with("FAILED"))
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["name"], name.as_str());
    assert_eq!(failed[0]["file_in_zip"], "");

    let out = site.recvault(&[
        "export",
        "--phone",
        "5550000000",
        "-o",
        "/nonexistent/dir/x.zip",
    ]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("no recording matches phone=5550000000"),
        "{}",
        stdout(&out)
    );
    let out = site.recvault(&["export", "-o", "x.zip"]);
    expect_code(&out, 2);
    let left: Vec<_> = fs::read_dir(&site.root)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".out.zip"))
        .collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
}
