//! `[vicidial] move_mix`: the real daemon does AST_CRON_audio_1_move_mix.pl's
//! work against a real MariaDB with VICIdial's tables — legs in MIX mixed
//! (checked against `sox -D -m` of the same legs), moved to ORIG, the row's
//! location and length written as the script writes them; a leg still being
//! written left alone; an orphan leg reported and kept.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::SERVER_IP;
use super::dialer::{Dialer, output};
use crate::common::*;

const MINUTE: Duration = Duration::from_secs(60);

/// Legs finish a second after their last write; nothing is archived.
const SPOOL: &str = "settle = \"1s\"\nupload_after = \"3d\"\nrescan = \"2s\"";

/// A VICIdial box whose legs recvault mixes.
pub struct MixBox {
    pub d: Dialer,
    pub mix: PathBuf,
    pub orig: PathBuf,
    /// MIX on tmpfs, as on a dialer with a RAM drive (removed when dropped).
    _ram: Option<tempfile::TempDir>,
}

impl MixBox {
    /// None without MariaDB (outside CI). `extra` goes into `[vicidial]`.
    pub async fn new(test: &str, extra: &str) -> Option<MixBox> {
        MixBox::with(test, extra, false).await
    }

    /// Like [`MixBox::new`]; with `ram`, MIX is on /dev/shm (tmpfs, another
    /// file system than ORIG: legs are copied, then removed), where there is one.
    pub async fn with(test: &str, extra: &str, ram: bool) -> Option<MixBox> {
        let mut d = Dialer::on(test, Target::Local, SPOOL).await?;
        let done = d.site.spool.clone();
        let orig = d.site.add_dir("ORIG");
        let ram = ram.then(|| tempfile::tempdir_in("/dev/shm").ok()).flatten();
        let mix = match &ram {
            Some(t) => t.path().join("MIX"),
            None => d.site.root.join("monitor/MIX"),
        };
        fs::create_dir_all(&mix).unwrap();
        let text = fs::read_to_string(&d.site.config).unwrap().replace(
            &format!("dirs = [\"{}\"]", done.display()),
            &format!("dirs = [\"{}\", \"{}\"]", done.display(), orig.display()),
        );
        let text = format!(
            "{text}move_mix = true\nmove_mix_dir = \"{}\"\n{extra}\n",
            mix.display()
        );
        fs::write(&d.site.config, text).unwrap();
        let grant = format!(
            "GRANT UPDATE (length_in_sec, length_in_min) ON `{}`.recording_log TO '{}'@'%'",
            d.fx.name, d.user
        );
        d.fx.exec(&grant).await;
        Some(MixBox {
            d,
            mix,
            orig,
            _ram: ram,
        })
    }

    /// Puts a pair of legs in MIX, last written an hour ago.
    pub fn legs(&self, stem: &str, inn: &[u8], out: &[u8]) {
        let hour = Duration::from_secs(3600);
        put_recording(&self.mix, format!("{stem}-in.wav").as_bytes(), inn, hour);
        put_recording(&self.mix, format!("{stem}-out.wav").as_bytes(), out, hour);
    }

    /// A recording_log row as VICIdial's AGI inserts it before the mix
    /// (location: the bare file name).
    pub async fn row(&mut self, id: u32, stem: &str, server_ip: &str, length: Option<u32>) {
        let length = length.map_or("NULL".to_string(), |l| l.to_string());
        self.d
            .fx
            .exec(&format!(
                "INSERT INTO recording_log (recording_id, channel, server_ip, extension, start_time, \
                     start_epoch, length_in_sec, filename, location, lead_id, user) VALUES \
                 ({id}, 'SIP/carrier-0001', '{server_ip}', '8309', NOW(), UNIX_TIMESTAMP(), {length}, \
                     '{stem}', '{stem}', {id}, 'agent1')"
            ))
            .await;
    }

    /// `SELECT column` of row `id`, as text.
    pub async fn column(&mut self, id: u32, column: &str) -> Option<String> {
        self.d
            .fx
            .text(&format!(
                "SELECT CAST({column} AS CHAR) FROM recording_log WHERE recording_id = {id}"
            ))
            .await
    }

    /// Names in a directory, sorted (no sub-directories).
    pub fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Files left in recvault's temporary folders.
    pub fn temp_files(&self) -> Vec<String> {
        [&self.d.site.spool, &self.orig]
            .iter()
            .flat_map(|d| MixBox::names(&d.join(".recvault-move-mix")))
            .collect()
    }
}

/// A 16-bit PCM WAV with a 44-byte header, as Asterisk's `wav` writes.
pub fn pcm(rate: u32, samples: &[i16]) -> Vec<u8> {
    let data = samples.len() as u32 * 2;
    let mut out = Vec::with_capacity(44 + data as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    for v in [16u32, 1 | (1 << 16), rate, rate * 2, 2 | (16 << 16)] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// Samples of any full-scale value, extremes included.
pub fn loud(n: usize, seed: u64) -> Vec<i16> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut v: Vec<i16> = (0..n).map(|_| rng.i16(..)).collect();
    v[..6].copy_from_slice(&[i16::MAX, i16::MAX, i16::MIN, i16::MIN, 1, -1]);
    v
}

/// The samples of a WAV file's `data` chunk.
pub fn samples(wav: &[u8]) -> Vec<i16> {
    let mut at = 12;
    while at + 8 <= wav.len() {
        let size = u32::from_le_bytes(wav[at + 4..at + 8].try_into().unwrap()) as usize;
        if &wav[at..at + 4] == b"data" {
            return wav[at + 8..at + 8 + size]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
        }
        at += 8 + size + (size & 1);
    }
    panic!("no data chunk");
}

/// Whether sox is installed (scripts/install-deps.sh test installs it); under
/// CI its absence fails the test.
pub fn have_sox(test: &str) -> bool {
    let ok = Command::new("sox")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "sox is not installed"
    );
    if !ok {
        eprintln!("SKIPPED {test}: sox is not installed (scripts/install-deps.sh test)");
    }
    ok
}

/// `sox -D -m IN OUT ALL` (the script's command without its dither).
pub fn sox_mix(inn: &[u8], out: &[u8], scratch: &Path) -> Vec<u8> {
    let (i, o, a) = (
        scratch.join("ref-in.wav"),
        scratch.join("ref-out.wav"),
        scratch.join("ref-all.wav"),
    );
    fs::write(&i, inn).unwrap();
    fs::write(&o, out).unwrap();
    let st = Command::new("sox")
        .arg("-D")
        .arg("-m")
        .args([&i, &o, &a])
        .status()
        .unwrap();
    assert!(st.success());
    fs::read(&a).unwrap()
}

/// `soxi -D FILE` cut at the point, as the script reads it.
pub fn soxi_seconds(file: &Path) -> String {
    let out = Command::new("soxi").arg("-D").arg(file).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().split('.').next().unwrap().to_string()
}

/// Asserts `got` is `want` within ±1 LSB per sample (sox's dither is the
/// only thing the script adds), with the same header and length.
pub fn assert_mix_matches(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert_eq!(got[..44], want[..44], "{what}: header");
    let (g, w) = (samples(got), samples(want));
    let worst = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (*a as i32 - *b as i32).abs())
        .max();
    assert!(worst.unwrap_or(0) <= 1, "{what}: off by {worst:?}");
}

/// One call's legs and its recording_log row (id, length already in it).
struct Call {
    stem: String,
    inn: Vec<u8>,
    out: Vec<u8>,
    row: Option<(u32, Option<u32>)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legs_are_mixed_moved_and_recorded_as_the_script_does() {
    if !have_sox("move_mix") {
        return;
    }
    let Some(mut b) = MixBox::new("mm_mixed", "").await else {
        return;
    };
    let call = |n: u32, inn: Vec<u8>, out: Vec<u8>, row: Option<(u32, Option<u32>)>| Call {
        stem: format!("20260301-1015{n:02}_55512300{n:02}"),
        inn,
        out,
        row,
    };
    let calls = [
        call(1, wav(3.5, 1), wav(2.25, 2), Some((11, Some(0)))),
        call(2, wav(1.0, 3), wav(4.0, 4), Some((12, None))),
        call(3, wav(2.0, 5), wav(2.0, 6), Some((13, Some(61)))),
        // Full scale, the extremes included: rounding and clipping.
        call(
            4,
            pcm(8000, &loud(30011, 7)),
            pcm(8000, &loud(29000, 8)),
            Some((14, Some(0))),
        ),
        // Asterisk's wav16, one leg far shorter than the other.
        call(
            5,
            pcm(16000, &loud(48000, 9)),
            pcm(16000, &loud(100, 10)),
            Some((15, Some(0))),
        ),
        // No row at all: mixed and moved, nothing written.
        call(6, wav(1.0, 11), wav(1.0, 12), None),
    ];
    for c in &calls {
        b.legs(&c.stem, &c.inn, &c.out);
        if let Some((id, length)) = c.row {
            b.row(id, &c.stem, SERVER_IP, length).await;
        }
    }
    // The newest row of this server is the one; an older one and another
    // server's newer one keep their values.
    let first = &calls[0].stem;
    b.row(5, first, SERVER_IP, Some(0)).await;
    b.row(99, first, "10.0.0.6", Some(0)).await;
    // Not a leg: never touched.
    fs::write(b.mix.join("notes.txt"), b"hello").unwrap();

    b.d.start();
    let mix = b.mix.clone();
    b.d.wait_for(MINUTE, "every pair mixed", |_| {
        MixBox::names(&mix) == ["notes.txt"]
    })
    .await;
    b.d.stop();

    let scratch = b.d.site.root.join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    for Call {
        stem,
        inn,
        out,
        row,
    } in &calls
    {
        let all = b.d.site.spool.join(format!("{stem}-all.wav"));
        let got = fs::read(&all).unwrap();
        assert_mix_matches(&got, &sox_mix(inn, out, &scratch), stem);
        // Apache serves it, as it serves the script's (root's umask 022).
        assert_eq!(
            fs::metadata(&all).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(
            fs::read(b.orig.join(format!("{stem}-in.wav"))).unwrap(),
            *inn
        );
        assert_eq!(
            fs::read(b.orig.join(format!("{stem}-out.wav"))).unwrap(),
            *out
        );
        let Some((id, length)) = *row else { continue };
        assert_eq!(
            b.column(id, "location").await.unwrap(),
            format!("http://{SERVER_IP}/RECORDINGS/{stem}-all.wav")
        );
        let seconds = soxi_seconds(&all);
        let (want_sec, want_min) = match length {
            Some(l) if l >= 1 => (l.to_string(), None),
            _ => (
                seconds.clone(),
                Some(format!("{:.2}", seconds.parse::<f64>().unwrap() / 60.0)),
            ),
        };
        assert_eq!(
            b.column(id, "length_in_sec").await.unwrap(),
            want_sec,
            "{stem}"
        );
        assert_eq!(b.column(id, "length_in_min").await, want_min, "{stem}");
    }
    assert_eq!(
        b.column(5, "location").await.as_deref(),
        Some(first.as_str())
    );
    assert_eq!(
        b.column(99, "location").await.as_deref(),
        Some(first.as_str())
    );
    assert_eq!(b.column(99, "length_in_sec").await.as_deref(), Some("0"));
    assert_eq!(fs::read(b.mix.join("notes.txt")).unwrap(), b"hello");
    assert!(b.temp_files().is_empty());

    let status = output(&b.d.site.recvault(&["status"]));
    assert!(status.contains("move_mix done: 6 pairs mixed"), "{status}");
    assert!(status.contains("0 legs moved to ORIG unmixed"), "{status}");
    assert!(
        status.contains("1 mixes without a recording_log row"),
        "{status}"
    );
    assert!(
        status.contains("0 pairs and 0 legs without their partner waiting; 1 other files"),
        "{status}"
    );

    // --HTTPS: the next mix's location says https.
    b.d.site.set_option("vicidial", "move_mix_https", "true");
    let stem = "20260301-101600_5551230007";
    b.legs(stem, &wav(1.0, 13), &wav(1.0, 14));
    b.row(16, stem, SERVER_IP, Some(0)).await;
    b.d.start();
    let mix = b.mix.clone();
    b.d.wait_for(MINUTE, "the https pair mixed", |_| {
        MixBox::names(&mix) == ["notes.txt"]
    })
    .await;
    b.d.stop();
    assert_eq!(
        b.column(16, "location").await.unwrap(),
        format!("https://{SERVER_IP}/RECORDINGS/{stem}-all.wav")
    );
    b.d.assert_password_never_logged(&status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_being_written_waits_and_an_orphan_is_kept_and_reported() {
    let Some(mut b) = MixBox::new("mm_orphan", "move_mix_orphan_after = \"3s\"").await else {
        return;
    };
    let busy = "20260302-090000_5551230010";
    let lone = "20260302-090100_5551230011";
    b.legs(busy, &wav(1.0, 20), &wav(1.0, 21));
    b.row(20, busy, SERVER_IP, Some(0)).await;
    b.row(21, lone, SERVER_IP, Some(0)).await;
    let lone_leg = wav(2.0, 22);
    put_recording(
        &b.mix,
        format!("{lone}-in.wav").as_bytes(),
        &lone_leg,
        Duration::from_secs(3600),
    );
    // Asterisk still writes the -out leg (an hour-old mtime does not make it finished).
    let writer = fs::File::options()
        .append(true)
        .open(b.mix.join(format!("{busy}-out.wav")))
        .unwrap();

    b.d.start();
    let orig = b.orig.clone();
    b.d.wait_for(MINUTE, "the orphan moved to ORIG", |_| {
        MixBox::names(&orig).contains(&format!("{lone}-in.wav"))
    })
    .await;
    // The orphan: kept byte for byte, its row untouched, reported.
    assert_eq!(
        fs::read(b.orig.join(format!("{lone}-in.wav"))).unwrap(),
        lone_leg
    );
    assert_eq!(b.column(21, "location").await.as_deref(), Some(lone));
    let log = b.d.log_text();
    assert!(
        log.contains("moved to ORIG unmixed (no -out.wav leg)"),
        "{log}"
    );
    let status = output(&b.d.site.recvault(&["status"]));
    assert!(status.contains("1 legs moved to ORIG unmixed"), "{status}");
    // The pair whose leg is still open stays as it is.
    assert_eq!(
        MixBox::names(&b.mix),
        [format!("{busy}-in.wav"), format!("{busy}-out.wav")]
    );
    assert!(!b.d.site.spool.join(format!("{busy}-all.wav")).exists());
    assert_eq!(b.column(20, "location").await.as_deref(), Some(busy));
    assert!(
        status.contains("1 pairs and 0 legs without their partner waiting"),
        "{status}"
    );

    // Asterisk closes it: mixed at once (inotify), as a finished pair.
    drop(writer);
    let mix = b.mix.clone();
    b.d.wait_for(MINUTE, "the pair mixed once closed", |_| {
        MixBox::names(&mix).is_empty()
    })
    .await;
    b.d.stop();
    assert!(b.d.site.spool.join(format!("{busy}-all.wav")).is_file());
    assert_eq!(
        b.column(20, "location").await.unwrap(),
        format!("http://{SERVER_IP}/RECORDINGS/{busy}-all.wav")
    );
}
