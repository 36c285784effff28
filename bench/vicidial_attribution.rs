//! Attribution throughput against a VICIdial database of 1,000,000
//! `recording_log` rows (see bench/vicidial.sh): builds database `rv_bench`
//! on 127.0.0.1:3306 (root, no password) from VICIdial's table definitions,
//! with the oldest 30 % of the rows moved to the `_archive` tables as
//! ADMIN_archive_log_tables.pl moves them, prints EXPLAIN for every
//! statement recvault sends, then times the attribution of 10,000
//! recordings three times (batches, and one by one).
//!
//! cargo run --release --example vicidial_attribution [-- ROWS NAMES]

use std::time::{Duration, Instant};

use recvault::vicidial::archive::{ARCHIVE_TABLES_SQL, ArchiveTables};
use recvault::vicidial::attribution::{FileQuery, attribution_sql};
use recvault::vicidial::db::{DbOptions, VicidialDb};
use recvault::vicidial::deletion_queue::{MARK_SQL, PENDING_SQL};
use recvault::vicidial::location::{
    ARCHIVED_LOCATION_SQL, LOCATION_SQL, REPLACE_ARCHIVED_LOCATION_SQL, REPLACE_LOCATION_SQL,
};
use recvault::vicidial::row_match::FileTimes;
use recvault::vicidial::settings::{DbSettings, Secret};
use recvault::vicidial::users::USER_SQL;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlRow, MySqlSslMode};
use sqlx::{AssertSqlSafe, Column, Connection, Executor, Row};

const DB: &str = "rv_bench";
const SERVER_IP: &str = "10.0.0.5";
/// `[naming] time_tolerance`'s default.
const DAY: Duration = Duration::from_secs(86_400);
/// Files written after every call (2033): each name's only row is its own.
const LATE: FileTimes = FileTimes {
    mtime: 2_000_000_000,
    name_time: None,
    duration: None,
};

fn queries<'a>(names: &[&'a str]) -> Vec<FileQuery<'a>> {
    names
        .iter()
        .map(|name| FileQuery { name, times: LATE })
        .collect()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args.next().map_or(1_000_000, |a| a.parse().unwrap());
    let names: usize = args.next().map_or(10_000, |a| a.parse().unwrap());
    let admin_opts = MySqlConnectOptions::new()
        .host("127.0.0.1")
        .username("root")
        .ssl_mode(MySqlSslMode::Disabled);
    let mut admin = MySqlConnection::connect_with(&admin_opts).await.unwrap();
    let t = Instant::now();
    build(&mut admin, rows).await;
    println!(
        "built {rows} recording_log rows (+ logs, leads) in {:.1?}",
        t.elapsed()
    );

    // From the archive, which holds every row: 30 % are archived only.
    let sample: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT CONCAT(filename, '-all.wav') FROM recording_log_archive \
         WHERE server_ip = '{SERVER_IP}' ORDER BY RAND(42) LIMIT {names}"
    )))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    explain_all(&mut admin, &sample).await;

    let settings = DbSettings {
        host: "127.0.0.1".into(),
        port: 3306,
        database: DB.into(),
        user: "root".into(),
        password: Secret::default(),
        server_ip: SERVER_IP.into(),
    };
    let options = DbOptions {
        pool_size: 2,
        connect_timeout: Duration::from_secs(3),
        query_timeout: Duration::from_secs(30),
    };
    let db = VicidialDb::new(&settings, options);
    let refs: Vec<&str> = sample.iter().map(String::as_str).collect();
    let mut batch_rates = Vec::new();
    for run in 1..=3 {
        let t = Instant::now();
        let mut found = 0;
        for chunk in refs.chunks(500) {
            found += db
                .attribute_batch(&queries(chunk), DAY)
                .await
                .unwrap()
                .iter()
                .filter(|a| a.found().is_some())
                .count();
        }
        let rate = refs.len() as f64 / t.elapsed().as_secs_f64();
        println!(
            "run {run}: batches of 500: {} recordings in {:.2?} = {rate:.0}/s ({found} attributed)",
            refs.len(),
            t.elapsed()
        );
        assert_eq!(found, refs.len(), "every sampled recording has a row");
        batch_rates.push(rate);
    }
    let mut single_rates = Vec::new();
    for run in 1..=3 {
        let t = Instant::now();
        for name in &refs {
            let a = db.attribute(name, LATE, DAY).await.unwrap();
            a.found().expect("attributed");
        }
        let rate = refs.len() as f64 / t.elapsed().as_secs_f64();
        println!(
            "run {run}: one by one: {} recordings in {:.2?} = {rate:.0}/s",
            refs.len(),
            t.elapsed()
        );
        single_rates.push(rate);
    }
    let mut daemon_rates = Vec::new();
    for run in 1..=3 {
        let rate = as_the_daemon_does(&db, &sample).await;
        println!(
            "run {run}: as the daemon does (ledger -> database -> ledger, batches of 100): {rate:.0}/s"
        );
        daemon_rates.push(rate);
    }
    println!(
        "median: batches {:.0}/s, one by one {:.0}/s, as the daemon does {:.0}/s",
        median(batch_rates),
        median(single_rates),
        median(daemon_rates)
    );
    db.close().await;
    if std::env::var_os("KEEP").is_none() {
        admin
            .execute(AssertSqlSafe(format!("DROP DATABASE {DB}")))
            .await
            .unwrap();
    }
}

/// The daemon's attribution loop (pipeline::attribution) on a fresh ledger
/// holding `names`: what waits, asked in one statement per 100, answered
/// in one transaction per batch. Returns recordings per second.
async fn as_the_daemon_does(db: &VicidialDb, names: &[String]) -> f64 {
    use recvault::ledger::attribution::{DbAnswer, DbAttribution};
    use recvault::ledger::{Ledger, SpoolFile};
    use recvault::recording::name::Attribution;
    use recvault::recording::{FileIdentity, State};
    let dir = tempfile_dir();
    let ledger = Ledger::open(&dir.join("ledger.sqlite3")).unwrap();
    for (i, name) in names.iter().enumerate() {
        let file = SpoolFile {
            path: dir.join(name),
            name: name.as_bytes().to_vec(),
            identity: FileIdentity {
                dev: 1,
                ino: i as u64,
                size: 1,
                mtime_ns: LATE.mtime * 1_000_000_000,
            },
        };
        ledger
            .insert(&file, &Attribution::default(), State::Settled, "bench")
            .unwrap();
    }
    let t = Instant::now();
    let mut done = 0;
    loop {
        let now = recvault::units::now_secs();
        let todo = ledger.attribution_todo(now, 100).unwrap();
        if todo.is_empty() {
            break;
        }
        let names: Vec<String> = todo
            .iter()
            .map(|t| String::from_utf8_lossy(&t.name).into_owned())
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let files: Vec<FileQuery<'_>> = refs
            .iter()
            .zip(&todo)
            .map(|(name, t)| FileQuery {
                name,
                times: FileTimes {
                    mtime: t.identity.mtime_ns / 1_000_000_000,
                    name_time: t.call_time,
                    duration: None,
                },
            })
            .collect();
        let found = db.attribute_batch(&files, DAY).await.unwrap();
        let answers: Vec<_> = todo
            .into_iter()
            .zip(found)
            .map(|(t, a)| {
                let answer = match a.found().cloned() {
                    Some(a) => DbAnswer::Found(DbAttribution {
                        vicidial_recording_id: a.recording_id,
                        campaign: a.campaign,
                        source: "outbound",
                        lead_id: a.lead_id,
                        phone: a.phone,
                        agent: a.agent,
                        started_at: a.started_at,
                        length_secs: a.length_secs,
                        ..DbAttribution::default()
                    }),
                    None => DbAnswer::Missing,
                };
                (t, answer)
            })
            .collect();
        done += ledger
            .record_attributions(now, Duration::from_secs(7 * 86400), &answers)
            .unwrap();
    }
    let rate = names.len() as f64 / t.elapsed().as_secs_f64();
    assert_eq!(done, names.len(), "every recording attributed");
    drop(ledger);
    let _ = std::fs::remove_dir_all(&dir);
    rate
}

/// A scratch directory under the target directory's tmp.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rv-bench-attribution-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// VICIdial's tables, then, through MariaDB's sequence engine: 100 lists in 20
/// campaigns, ROWS/2 leads, ROWS recordings one every 30 s (90 % this server,
/// 10 % another; of the calls 60 % outbound, 30 % inbound, 10 % manual-dial
/// ids that only the lead attributes) with their vicidial_log and
/// vicidial_closer_log rows.
async fn build(admin: &mut MySqlConnection, rows: u64) {
    let leads = rows / 2;
    let schema = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/vicidial/vicidial_tables.sql"),
    )
    .unwrap();
    let mut statements = vec![
        format!("DROP DATABASE IF EXISTS {DB}"),
        format!("CREATE DATABASE {DB} DEFAULT CHARACTER SET utf8 COLLATE utf8_unicode_ci"),
        format!("USE {DB}"),
    ];
    let schema: String = schema
        .lines()
        .filter(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    statements.extend(
        schema
            .split(";\n")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from),
    );
    statements.extend([
        "INSERT INTO vicidial_lists (list_id, list_name, campaign_id, active) \
         SELECT 1000 + seq, CONCAT('list ', seq), CONCAT('CAMP', seq % 20), 'Y' FROM seq_1_to_100"
            .to_string(),
        format!(
            "INSERT INTO vicidial_list (lead_id, list_id, phone_code, phone_number, status) \
             SELECT seq, 1001 + seq % 100, '1', CAST(5550000000 + seq AS CHAR), 'NEW' FROM seq_1_to_{leads}"
        ),
        format!(
            "INSERT INTO recording_log (recording_id, channel, server_ip, extension, start_time, \
                 start_epoch, end_time, end_epoch, length_in_sec, length_in_min, filename, location, \
                 lead_id, user, vicidial_id) \
             SELECT seq, 'Local/58600051@default', IF(seq % 10 = 0, '10.0.0.6', '{SERVER_IP}'), \
                 '8600051', FROM_UNIXTIME(1767225600 + seq * 30), 1767225600 + seq * 30, \
                 FROM_UNIXTIME(1767225690 + seq * 30), 1767225690 + seq * 30, 90, 1.5, \
                 CONCAT(DATE_FORMAT(FROM_UNIXTIME(1767225600 + seq * 30), '%Y%m%d-%H%i%s'), '_', \
                        5550000000 + 1 + seq % {leads}), \
                 CONCAT('http://{SERVER_IP}/RECORDINGS/', DATE_FORMAT(FROM_UNIXTIME(1767225600 + seq * 30), \
                        '%Y%m%d-%H%i%s'), '_', 5550000000 + 1 + seq % {leads}, '-all.wav'), \
                 1 + seq % {leads}, CONCAT('10', seq % 50), \
                 CASE WHEN seq % 10 < 6 THEN CONCAT(1767225600 + seq * 30, '.', seq) \
                      WHEN seq % 10 < 9 THEN CAST(seq AS CHAR) ELSE CONCAT('M', seq) END \
             FROM seq_1_to_{rows}"
        ),
        "INSERT INTO vicidial_log (uniqueid, lead_id, list_id, campaign_id, call_date, start_epoch, \
             end_epoch, length_in_sec, status, phone_code, phone_number, user) \
         SELECT r.vicidial_id, r.lead_id, l.list_id, CONCAT('CAMP', l.list_id % 20), r.start_time, \
             r.start_epoch, r.end_epoch, 90, 'SALE', '1', l.phone_number, r.user \
         FROM recording_log r JOIN vicidial_list l ON l.lead_id = r.lead_id \
         WHERE r.vicidial_id LIKE '%.%'"
            .to_string(),
        "INSERT INTO vicidial_closer_log (closecallid, lead_id, list_id, campaign_id, call_date, \
             start_epoch, end_epoch, length_in_sec, status, phone_code, phone_number, user, uniqueid) \
         SELECT r.recording_id, r.lead_id, l.list_id, CONCAT('INGROUP', r.recording_id % 7), \
             r.start_time, r.start_epoch, r.end_epoch, 95, 'A', '1', l.phone_number, r.user, \
             CONCAT(r.start_epoch, '.', r.recording_id) \
         FROM recording_log r JOIN vicidial_list l ON l.lead_id = r.lead_id \
         WHERE r.vicidial_id REGEXP '^[0-9]+$'"
            .to_string(),
        // A GDPR queue (1 % of recordings, nine in ten done) and 500 users.
        format!(
            "INSERT INTO recording_log_deletion_queue (recording_id, lead_id, filename, location, \
                 date_queued, date_deleted) \
             SELECT recording_id, lead_id, filename, location, NOW(), \
                 IF(recording_id % 1000 = 0, NULL, NOW()) \
             FROM recording_log WHERE recording_id % 100 = 0 LIMIT {}",
            rows / 100
        ),
        "INSERT INTO vicidial_users (user, pass, full_name, user_level, active) \
         SELECT CONCAT('user', seq), 'pw', CONCAT('User ', seq), 1 + seq % 9, 'Y' FROM seq_1_to_500"
            .to_string(),
        "INSERT INTO system_settings (version, pass_hash_enabled, pass_key, pass_cost) \
         VALUES ('2.14b0.5', '0', 'abcdefghijklmnop', 2)"
            .to_string(),
    ]);
    // ADMIN_archive_log_tables.pl: every row copied, the oldest deleted.
    let cut = 1767225600 + rows * 3 / 10 * 30;
    for (table, time) in [
        ("recording_log", "start_epoch"),
        ("vicidial_log", "start_epoch"),
        ("vicidial_closer_log", "start_epoch"),
    ] {
        statements.push(format!(
            "INSERT IGNORE INTO {table}_archive SELECT * FROM {table}"
        ));
        statements.push(format!("DELETE FROM {table} WHERE {time} <= {cut}"));
    }
    statements.push(
        "ANALYZE TABLE recording_log, vicidial_log, vicidial_closer_log, vicidial_list, vicidial_lists, \
         recording_log_deletion_queue, vicidial_users, recording_log_archive, vicidial_log_archive, \
         vicidial_closer_log_archive"
            .to_string(),
    );
    for s in statements {
        admin
            .execute(AssertSqlSafe(s.clone()))
            .await
            .unwrap_or_else(|e| panic!("{e}: {s}"));
    }
}

/// EXPLAIN of each statement recvault sends, with real values bound.
async fn explain_all(admin: &mut MySqlConnection, sample: &[String]) {
    let key = |n: &str| recvault::vicidial::attribution::recording_log_filename(n).to_string();
    let all = ArchiveTables {
        recording_log: true,
        vicidial_log: true,
        closer_log: true,
    };
    for table in ["recording_log", "recording_log_archive"] {
        let sql = format!("EXPLAIN {}", attribution_sql(table, all, 100));
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(SERVER_IP);
        for name in &sample[..100] {
            q = q.bind(key(name));
        }
        print_plan(
            &format!("attribution from {table} (100 names)"),
            q.fetch_all(&mut *admin).await.unwrap(),
        );
    }
    let cas = || -> Vec<String> {
        vec![
            "http://x/r/1/s".into(),
            "12345".into(),
            "http://10.0.0.5/RECORDINGS/a-all.wav".into(),
        ]
    };
    let plans: [(&str, String, Vec<String>); 8] = [
        ("archive tables", ARCHIVE_TABLES_SQL.into(), vec![]),
        ("location", LOCATION_SQL.into(), vec!["12345".into()]),
        (
            "archived location",
            ARCHIVED_LOCATION_SQL.into(),
            vec!["12345".into()],
        ),
        (
            "location compare-and-set",
            REPLACE_LOCATION_SQL.into(),
            cas(),
        ),
        (
            "archived location compare-and-set",
            REPLACE_ARCHIVED_LOCATION_SQL.into(),
            cas(),
        ),
        (
            "pending deletions",
            PENDING_SQL.into(),
            vec!["0".into(), SERVER_IP.into(), "100".into()],
        ),
        ("deletion mark", MARK_SQL.into(), vec!["5000".into()]),
        ("user check", USER_SQL.into(), vec!["user42".into()]),
    ];
    for (what, sql, binds) in plans {
        let mut q = sqlx::query(AssertSqlSafe(format!("EXPLAIN {sql}")));
        for b in binds {
            q = q.bind(b);
        }
        print_plan(what, q.fetch_all(&mut *admin).await.unwrap());
    }
}

fn print_plan(what: &str, rows: Vec<MySqlRow>) {
    println!("EXPLAIN {what}:");
    let Some(first) = rows.first() else { return };
    let names: Vec<&str> = first.columns().iter().map(|c| c.name()).collect();
    println!("  {}", names.join(" | "));
    for row in &rows {
        let cells: Vec<String> = (0..names.len())
            .map(|i| {
                row.try_get::<Option<String>, _>(i)
                    .ok()
                    .flatten()
                    .or_else(|| {
                        row.try_get::<Option<u64>, _>(i)
                            .ok()
                            .flatten()
                            .map(|v| v.to_string())
                    })
                    .or_else(|| {
                        row.try_get::<Option<i64>, _>(i)
                            .ok()
                            .flatten()
                            .map(|v| v.to_string())
                    })
                    .unwrap_or_else(|| "NULL".into())
            })
            .collect();
        println!("  {}", cells.join(" | "));
    }
}
