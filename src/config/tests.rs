//! Config validation: every error names the file and the key.
use super::*;

pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/recvault/recvault.toml"), text)
}

/// The message a config that must be refused is refused with.
pub(super) fn refused(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn empty_config_is_valid_and_has_no_store() {
    let c = parse("").unwrap();
    assert!(c.store.is_none());
    assert_eq!(c.spool.settle, Duration::from_secs(15));
    assert_eq!(c.spool.upload_after, Duration::from_secs(3 * 86400));
    assert_eq!(c.ledger.path, PathBuf::from(DEFAULT_LEDGER_PATH));
    assert_eq!(c.spool.staging, PathBuf::from("/var/lib/recvault/staging"));
    assert_eq!(c.ledger.backup_every, Some(Duration::from_secs(6 * 3600)));
    assert_eq!(c.ledger.backup_keep, 7);
}

#[test]
fn ledger_backups_can_be_turned_off_but_not_kept_zero_times() {
    let c = parse("[ledger]\nbackup_every = \"0s\"\n").unwrap();
    assert_eq!(c.ledger.backup_every, None);
    let e = refused("[ledger]\nbackup_keep = 0\n");
    assert!(e.contains("ledger.backup_keep"), "{e}");
}

#[test]
fn unknown_key_names_the_key_and_file() {
    let e = refused("[spool]\nsettel = \"5s\"\n");
    assert!(e.contains("/etc/recvault/recvault.toml"), "{e}");
    assert!(e.contains("settel"), "{e}");
}

#[test]
fn bad_duration_names_the_key() {
    let e = refused("[spool]\nsettle = \"soon\"\n");
    assert!(e.contains("key `spool.settle`"), "{e}");
    assert!(e.contains("soon"), "{e}");
}

#[test]
fn wrong_type_names_the_key() {
    let e = refused("[daemon]\nworkers = \"four\"\n");
    assert!(e.contains("workers"), "{e}");
}

#[test]
fn relative_dir_is_rejected_with_index() {
    let e = refused("[spool]\ndirs = [\"/a\", \"b\"]\n");
    assert!(e.contains("spool.dirs[1]"), "{e}");
}

#[test]
fn s3_requires_bucket() {
    let e = refused("[store]\nkind = \"s3\"\n");
    assert!(e.contains("store.bucket"), "{e}");
}

#[test]
fn bad_template_names_the_key() {
    let e = refused("[store]\nkind = \"local\"\npath = \"/s\"\nkey_template = \"{nope}\"\n");
    assert!(e.contains("store.key_template"), "{e}");
}

#[test]
fn rates_windows_and_free_space() {
    let c = parse("[spool]\nmin_free = \"10%\"\n[store]\nkind = \"local\"\npath = \"/s\"\nmax_upload_rate = \"4MiB\"\nupload_windows = [\"20:00-07:00\"]\n").unwrap();
    let store = c.store.unwrap();
    assert_eq!(store.max_upload_rate, Some(4 << 20));
    assert_eq!(c.spool.min_free, Some(MinFree::Percent(10.0)));
    let e = refused("[store]\nkind = \"local\"\npath = \"/s\"\nupload_windows = [\"8-9\"]\n");
    assert!(
        e.contains("store.upload_windows") && e.contains("8-9"),
        "{e}"
    );
    let e = refused("[store]\nkind = \"local\"\npath = \"/s\"\nmax_upload_rate = \"fast\"\n");
    assert!(e.contains("store.max_upload_rate"), "{e}");
    let e = refused("[spool]\nmin_free = \"lots\"\n");
    assert!(e.contains("spool.min_free"), "{e}");
}

#[test]
fn key_file_secret_never_in_debug_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.toml");
    std::fs::write(
        &key,
        "access_key_id = \"AKID\"\nsecret_access_key = \"SUPERSECRET\"\n",
    )
    .unwrap();
    let text = format!(
        "[store]\nkind = \"s3\"\nbucket = \"b\"\nkey_file = \"{}\"\n",
        key.display()
    );
    let c = parse(&text).unwrap();
    let dbg = format!("{c:?}");
    assert!(dbg.contains("AKID"));
    assert!(!dbg.contains("SUPERSECRET"), "{dbg}");

    std::fs::write(
        &key,
        "access_key_id = \"AKID\"\nsecret_access_key = SUPERSECRET\n",
    )
    .unwrap();
    let e = refused(&text);
    assert!(e.contains("store.key_file"), "{e}");
    assert!(!e.contains("SUPERSECRET"), "{e}");
}

#[test]
fn retention_and_naming_parse() {
    let c = parse(
        "[spool]\ndirs = [\"/s/sales\"]\n[naming]\ntemplate = \"CAMPAIGN_FULLDATE_CUSTPHONE\"\n\
         [naming.dir_campaigns]\n\"/s/sales\" = \"SALES\"\n\
         [retention]\ndefault = \"180d\"\n[retention.campaigns]\nCOLLECT = \"90d\"\nSALES = \"forever\"\nCONSENT = \"7y\"\n",
    )
    .unwrap();
    assert_eq!(c.retention.default.secs(), Some(180 * 86400));
    assert_eq!(c.retention.campaigns["SALES"], Keep::Forever);
    assert_eq!(c.retention.sweep_every, Duration::from_secs(3600));
    assert_eq!(c.naming.dir_campaigns[Path::new("/s/sales")], "SALES");
}

#[test]
fn retention_defaults_to_keeping_everything() {
    assert!(parse("").unwrap().retention.keeps_everything());
    assert!(
        parse("[retention]\nsweep_every = \"2h\"\n")
            .unwrap()
            .retention
            .keeps_everything()
    );
}

#[test]
fn retention_errors_name_the_key() {
    let e = refused("[retention.campaigns]\nCOLLECT = \"ninety days\"\n");
    assert!(e.contains("key `retention.campaigns.COLLECT`"), "{e}");
    let e = refused("[retention]\ndefault = \"1h\"\n");
    assert!(e.contains("key `retention.default`"), "{e}");
    let e = refused("[retention]\ndefualt = \"90d\"\n");
    assert!(e.contains("defualt"), "{e}");
    let e = refused("[naming]\ntemplate = \"FULLDATE_PHONE\"\n");
    assert!(e.contains("key `naming.template`"), "{e}");
    assert!(e.contains("PHONE"), "{e}");
    let e = refused("[naming.dir_campaigns]\n\"/elsewhere\" = \"X\"\n");
    assert!(e.contains("naming.dir_campaigns"), "{e}");
    let e = refused("[store]\nkind = \"local\"\npath = \"/s\"\nobject_lock_legal_hold = true\n");
    assert!(e.contains("store.object_lock_legal_hold"), "{e}");
}

#[test]
fn shipped_example_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let c = Config::load(&path).unwrap();
    assert!(
        c.store.is_none(),
        "the shipped config must do nothing until a store is configured"
    );
    assert!(!c.spool.dirs.is_empty());
    assert!(
        c.retention.keeps_everything(),
        "the shipped config must delete nothing until a policy is set"
    );
    assert_eq!(c.compress.codec, Codec::Flac, "FLAC ships as the default");
}

#[test]
fn codecs_default_to_flac_and_campaigns_override_them() {
    let c = parse("").unwrap();
    assert_eq!(c.compress.codec_for(None), Codec::Flac);
    assert_eq!(c.compress.zstd, ZstdSettings::default());
    let c = parse(
        "[compress]\ncodec = \"zstd\"\nlevel = 19\nlong = true\n[compress.campaigns]\nSALES = \"flac\"\nMP3ONLY = \"none\"\n",
    )
    .unwrap();
    assert_eq!(c.compress.codec_for(None), Codec::Zstd);
    assert_eq!(c.compress.codec_for(Some("OTHER")), Codec::Zstd);
    assert_eq!(c.compress.codec_for(Some("SALES")), Codec::Flac);
    assert_eq!(c.compress.codec_for(Some("MP3ONLY")), Codec::None);
    assert_eq!(
        c.compress.zstd,
        ZstdSettings {
            level: 19,
            long: true
        }
    );
    let e = refused("[compress.campaigns]\nSALES = \"mp3\"\n");
    assert!(e.contains("key `compress.campaigns.SALES`"), "{e}");
    assert!(e.contains("`flac`, `zstd` or `none`"), "{e}");
    let e = refused("[compress]\ncodec = \"FLAC\"\n");
    assert!(e.contains("key `compress.codec`"), "{e}");
    let e = refused("[compress]\nlong = \"yes\"\n");
    assert!(e.contains("long"), "{e}");
}

#[test]
fn vicidial_and_serve_are_off_by_default() {
    let c = parse("").unwrap();
    assert!(c.vicidial.is_none() && c.serve.is_none());
    assert_eq!(c.retention.attribution_wait, None);
    let c = parse("[vicidial]\nenabled = false\nastguiclient = \"/nonexistent\"\n").unwrap();
    assert!(c.vicidial.is_none(), "a disabled section reads nothing");
}

#[test]
fn vicidial_reads_astguiclient_and_sets_the_retention_wait() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("astguiclient.conf");
    std::fs::write(
        &conf,
        "VARserver_ip => 10.0.0.5\nVARDB_server => 10.0.0.9\nVARDB_pass => hunter22\nPATHDONEmonitor => /data/monitorDONE\n",
    )
    .unwrap();
    let text = format!(
        "[vicidial]\nenabled = true\nastguiclient = \"{}\"\nattribution_wait = \"2d\"\n",
        conf.display()
    );
    let c = parse(&text).unwrap();
    let v = c.vicidial.as_ref().unwrap();
    assert_eq!(v.db.to_string(), "cron@10.0.0.9:3306/asterisk");
    assert_eq!(v.db.server_ip, "10.0.0.5");
    assert_eq!(v.done_monitor, PathBuf::from("/data/monitorDONE"));
    assert_eq!(v.attribution_wait, Duration::from_secs(2 * 86400));
    assert!(v.rewrite_locations);
    assert_eq!(v.purge_queue, Some(Duration::from_secs(60)));
    assert_eq!(c.retention.attribution_wait, Some(v.attribution_wait));
    let off = parse(&format!(
        "{text}erase_purged = false\npurge_poll = \"5s\"\n"
    ))
    .unwrap();
    assert_eq!(off.vicidial.unwrap().purge_queue, None);
    let e = refused(&format!("{text}purge_poll = \"0s\"\n"));
    assert!(e.contains("vicidial.purge_poll"), "{e}");
    assert!(!format!("{c:?}").contains("hunter22"), "password in Debug");
    let e = refused(&format!("{text}pool_size = 9\n"));
    assert!(e.contains("vicidial.pool_size"), "{e}");
    let e = refused("[vicidial]\nenabled = true\nastguiclient = \"/nonexistent/a.conf\"\n");
    assert!(e.contains("/nonexistent/a.conf"), "{e}");
    let e = refused("[vicidial]\nenabled = true\ndsn = \"mysql://u:hunter22@h:0/db\"\n");
    assert!(e.contains("vicidial.dsn") && !e.contains("hunter22"), "{e}");
    // VICIdial passwords never travel in clear: TLS, or loopback only.
    let serve = |listen: &str, tls: &str| {
        format!("{text}\n[serve]\nlisten = \"{listen}\"\nauth = \"vicidial\"\n{tls}")
    };
    for listen in ["0.0.0.0:8089", "10.0.0.5:8089", "[::]:8089"] {
        let e = refused(&serve(listen, ""));
        assert!(
            e.contains("key `serve.auth`") && e.contains("in clear") && e.contains("tls_cert"),
            "{e}"
        );
    }
    for listen in ["127.0.0.1:8089", "[::1]:8089"] {
        let c = parse(&serve(listen, "")).unwrap();
        assert_eq!(c.serve.unwrap().auth_user_level, Some(7));
    }
    let tls = "tls_cert = \"/etc/recvault/c.pem\"\ntls_key = \"/etc/recvault/k.pem\"\n";
    assert!(parse(&serve("0.0.0.0:8089", tls)).is_ok());
}

#[test]
fn serve_settings_and_their_errors() {
    let c = parse("[serve]\nlisten = \"127.0.0.1:8089\"\n").unwrap();
    let s = c.serve.unwrap();
    assert_eq!(s.listen.port(), 8089);
    assert_eq!(s.presign_ttl, Duration::from_secs(300));
    assert_eq!(s.key_file, PathBuf::from("/etc/recvault/link.key"));
    assert_eq!(
        s.cache_dir,
        PathBuf::from("/var/lib/recvault/staging/playback")
    );
    assert!(
        s.allow
            .iter()
            .any(|r| r.contains("10.1.2.3".parse().unwrap()))
    );
    assert!(
        !s.allow
            .iter()
            .any(|r| r.contains("8.8.8.8".parse().unwrap()))
    );
    assert!(s.auth_user_level.is_none() && s.tls.is_none() && s.redirect);
    let c =
        parse("[serve]\nlisten = \"[::]:8443\"\npublic_url = \"https://dialer1.example:8443/\"\n")
            .unwrap();
    assert_eq!(
        c.serve.unwrap().public_url.as_deref(),
        Some("https://dialer1.example:8443")
    );
    for (text, key) in [
        ("listen = \"8089\"", "serve.listen"),
        (
            "listen = \"0.0.0.0:1\"\ntls_cert = \"/c.pem\"",
            "serve.tls_key",
        ),
        (
            "listen = \"0.0.0.0:1\"\nallow = [\"10.0.0.0/33\"]",
            "serve.allow[0]",
        ),
        ("listen = \"0.0.0.0:1\"\nauth = \"vicidial\"", "serve.auth"),
        ("listen = \"0.0.0.0:1\"\nauth = \"ldap\"", "serve.auth"),
        (
            "listen = \"0.0.0.0:1\"\npresign_ttl = \"8d\"",
            "serve.presign_ttl",
        ),
        (
            "listen = \"0.0.0.0:1\"\npresign_ttl = \"6m\"",
            "serve.presign_ttl",
        ),
        (
            "listen = \"0.0.0.0:1\"\npublic_url = \"ftp://x\"",
            "serve.public_url",
        ),
        (
            "listen = \"0.0.0.0:1\"\npublic_url = \"http://x/a?b\"",
            "serve.public_url",
        ),
        (
            "listen = \"0.0.0.0:1\"\nclient_rate = 0",
            "serve.client_rate",
        ),
        (
            "listen = \"0.0.0.0:1\"\nkey_file = \"link.key\"",
            "serve.key_file",
        ),
    ] {
        let e = refused(&format!("[serve]\n{text}\n"));
        assert!(e.contains(&format!("key `{key}`")), "{text}: {e}");
    }
    let long = format!("http://{}", "a".repeat(200));
    let e = refused(&format!(
        "[serve]\nlisten = \"0.0.0.0:1\"\npublic_url = \"{long}\"\n"
    ));
    assert!(e.contains("255"), "{e}");
}

#[test]
fn directories_recvault_deletes_in_stay_apart_from_what_it_keeps() {
    let spool = "[spool]\ndirs = [\"/var/spool/asterisk/monitorDONE\"]\n";
    // The defaults: staging and the playback cache inside the ledger's directory.
    let c = parse(&format!("{spool}[serve]\nlisten = \"127.0.0.1:8089\"\n")).unwrap();
    assert_eq!(c.spool.staging, PathBuf::from("/var/lib/recvault/staging"));
    // Each place refused, by key, with what it collides with.
    for (extra, key, why) in [
        (
            "staging = \"/var/spool/asterisk/monitorDONE\"",
            "spool.staging",
            "is the spool directory",
        ),
        (
            "staging = \"/var/spool/asterisk\"",
            "spool.staging",
            "contains the spool directory",
        ),
        (
            "staging = \"/var/spool/asterisk/monitorDONE/x\"",
            "spool.staging",
            "lies inside the spool directory",
        ),
        (
            "staging = \"/var/spool/asterisk/monitorDONE/x/..\"",
            "spool.staging",
            "is the spool directory",
        ),
        (
            "staging = \"/var/lib/recvault\"",
            "spool.staging",
            "is the ledger's directory",
        ),
        (
            "staging = \"/var/lib/recvault/staging/../\"",
            "spool.staging",
            "is the ledger's directory",
        ),
        (
            "staging = \"/var/lib\"",
            "spool.staging",
            "contains the ledger's directory",
        ),
        ("staging = \"/\"", "spool.staging", "is /"),
        (
            "staging = \"/etc/recvault\"",
            "spool.staging",
            "the directory of serve.key_file",
        ),
        (
            "staging = \"/etc/recvault/staging\"",
            "spool.staging",
            "lies inside `/etc/recvault`",
        ),
        (
            "staging = \"/etc\"",
            "spool.staging",
            "contains `/etc/recvault`",
        ),
    ] {
        let text = format!("{spool}{extra}\n[serve]\nlisten = \"127.0.0.1:8089\"\n");
        let e = refused(&text);
        assert!(e.contains("/etc/recvault/recvault.toml"), "{e}");
        assert!(
            e.contains(&format!("key `{key}`")) && e.contains(why),
            "{extra}: {e}"
        );
    }
    let serve = "[serve]\nlisten = \"127.0.0.1:8089\"\n";
    for (extra, why) in [
        (
            "cache_dir = \"/var/spool/asterisk/monitorDONE\"",
            "is the spool directory",
        ),
        (
            "cache_dir = \"/var/lib/recvault\"",
            "is the ledger's directory",
        ),
        ("cache_dir = \"/\"", "is /"),
        (
            "cache_dir = \"/srv/tls\"\ntls_cert = \"/srv/tls/c.pem\"\ntls_key = \"/srv/k/k.pem\"",
            "serve.tls_cert",
        ),
        (
            "cache_dir = \"/srv/k/cache\"\ntls_cert = \"/srv/tls/c.pem\"\ntls_key = \"/srv/k/k.pem\"",
            "lies inside `/srv/k`",
        ),
    ] {
        let e = refused(&format!("{spool}{serve}{extra}\n"));
        assert!(
            e.contains("key `serve.cache_dir`") && e.contains(why),
            "{extra}: {e}"
        );
    }
    let e = refused(&format!(
        "{spool}[store]\nkind = \"local\"\npath = \"/var/lib/recvault\"\n"
    ));
    assert!(
        e.contains("key `store.path`") && e.contains("ledger's directory"),
        "{e}"
    );
    // A directory of its own anywhere else, or inside the ledger's directory.
    parse(&format!(
        "{spool}staging = \"/srv/staging\"\n{serve}cache_dir = \"/srv/cache\"\n"
    ))
    .unwrap();
    parse(&format!(
        "{spool}staging = \"/var/lib/recvault/s\"\n{serve}cache_dir = \"/var/lib/recvault/c\"\n"
    ))
    .unwrap();
}

#[test]
fn fleet_takes_a_dsn_file_or_vicidials_connection_and_never_shows_the_password() {
    assert!(parse("").unwrap().fleet.is_none());
    let e = refused("[fleet]\nenabled = true\n");
    assert!(
        e.contains("fleet.dsn_file") && e.contains("[vicidial]"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let dsn = dir.path().join("fleet.dsn");
    std::fs::write(
        &dsn,
        "# the cluster's primary\nmysql://rv:S3cret-pw@10.0.0.9:3307/asterisk\n",
    )
    .unwrap();
    let text = format!(
        "[daemon]\nhost = \"dialer2\"\n[fleet]\nenabled = true\ndsn_file = \"{}\"\n",
        dsn.display()
    );
    let c = parse(&text).unwrap();
    let f = c.fleet.as_ref().unwrap();
    assert_eq!(f.db.to_string(), "rv@10.0.0.9:3307/asterisk");
    assert_eq!(f.host_timeout, Duration::from_secs(120));
    assert!(!format!("{c:?}").contains("S3cret-pw"));
    let e = refused(&format!("{text}host_timeout = \"20s\"\n"));
    assert!(e.contains("fleet.host_timeout"), "{e}");
    std::fs::write(&dsn, "postgres://x@y/z\n").unwrap();
    let e = refused(&text);
    assert!(
        e.contains("fleet.dsn_file") && !e.contains("postgres://x"),
        "{e}"
    );
}
