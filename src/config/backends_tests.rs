//! `[store]` of the Azure, GCS and SFTP kinds: hostile and broken settings
//! are refused naming the key, and no secret reaches Debug or an error.
use super::tests::{parse, refused};
use super::*;

/// A file in a fresh temp dir (kept alive by the returned guard).
fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

const ED25519_HOST: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

#[test]
fn azure_secrets_stay_out_of_debug_and_errors() {
    let key = "c3VwZXJzZWNyZXRrZXlzdXBlcnNlY3JldGtleQ==";
    let (_d, path) = file(&format!("account_key = \"{key}\"\n"));
    let text = format!(
        "[store]\nkind = \"azure\"\naccount = \"calls\"\ncontainer = \"rec-2026\"\nkey_file = \"{}\"\n",
        path.display()
    );
    let c = parse(&text).unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains(key) && dbg.contains("<redacted>"), "{dbg}");
    let StoreBackend::Azure(a) = &c.store.unwrap().backend else {
        panic!()
    };
    assert_eq!(a.endpoint, "https://calls.blob.core.windows.net");

    std::fs::write(&path, "sas_token = \"?sv=2022&sig=TOPSECRETSIG\"\n").unwrap();
    let c = parse(&text).unwrap();
    assert!(!format!("{c:?}").contains("TOPSECRETSIG"));
    // Broken key files: the message says what is expected, never the contents.
    for broken in [
        "account_key = SECRETNOQUOTES\n",
        "account_key = \"a\"\nsas_token = \"b\"\n",
        "sas = \"SECRET\"\n",
    ] {
        std::fs::write(&path, broken).unwrap();
        let e = refused(&text);
        assert!(e.contains("store.key_file") && !e.contains("SECRET"), "{e}");
    }
    std::fs::write(&path, "account_key = \"not base64!SECRET\"\n").unwrap();
    let e = refused(&text);
    assert!(e.contains("not base64") && !e.contains("SECRET"), "{e}");
}

#[test]
fn azure_names_and_required_keys() {
    let e = refused("[store]\nkind = \"azure\"\ncontainer = \"c1c\"\n");
    assert!(e.contains("store.account"), "{e}");
    let e = refused("[store]\nkind = \"azure\"\naccount = \"acct\"\n");
    assert!(e.contains("store.container"), "{e}");
    let e = refused("[store]\nkind = \"azure\"\naccount = \"Bad_Name\"\ncontainer = \"c1c\"\n");
    assert!(e.contains("store.account") && e.contains("Bad_Name"), "{e}");
    let e = refused("[store]\nkind = \"azure\"\naccount = \"acct\"\ncontainer = \"../x\"\n");
    assert!(e.contains("store.container"), "{e}");
    // No key file: Azure's own chain (environment, managed identity).
    let c = parse("[store]\nkind = \"azure\"\naccount = \"acct\"\ncontainer = \"c1c\"\n").unwrap();
    let StoreBackend::Azure(a) = &c.store.unwrap().backend else {
        panic!()
    };
    assert!(matches!(a.credentials, AzureCredentials::Environment));
}

#[test]
fn gcs_wants_a_service_account_key() {
    let e = refused("[store]\nkind = \"gcs\"\n");
    assert!(e.contains("store.bucket"), "{e}");
    let (_d, path) = file("{\"type\": \"authorized_user\", \"refresh_token\": \"SECRET\"}");
    let text = format!(
        "[store]\nkind = \"gcs\"\nbucket = \"b\"\nkey_file = \"{}\"\n",
        path.display()
    );
    let e = refused(&text);
    assert!(
        e.contains("store.key_file") && e.contains("service account") && !e.contains("SECRET"),
        "{e}"
    );
    std::fs::write(
        &path,
        "{\"type\": \"service_account\", \"client_email\": \"a@b\", \"private_key\": \"-----SECRETPEM\"}",
    )
    .unwrap();
    let c = parse(&text).unwrap();
    assert!(!format!("{c:?}").contains("SECRETPEM"));
}

#[test]
fn sftp_pins_a_host_key_and_reads_a_private_key() {
    let e = refused("[store]\nkind = \"sftp\"\nhost = \"h\"\nuser = \"u\"\npath = \"/a\"\n");
    assert!(e.contains("store.host_key"), "{e}");
    let host_key = format!("host_key = \"[archive.example]:2222 {ED25519_HOST} root@x\"");
    let base = format!(
        "[store]\nkind = \"sftp\"\nhost = \"h\"\nuser = \"u\"\npath = \"/a\"\n{host_key}\n"
    );
    let e = refused(&base);
    assert!(
        e.contains("store.key_file") && e.contains("required"),
        "{e}"
    );
    let (_d, path) = file(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRETGARBAGE\n-----END OPENSSH PRIVATE KEY-----\n",
    );
    let with_key = format!("{base}key_file = \"{}\"\n", path.display());
    let e = refused(&with_key);
    assert!(
        e.contains("store.key_file") && !e.contains("SECRETGARBAGE"),
        "{e}"
    );

    let keyfile = path.with_file_name("id");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&keyfile)
        .status()
        .expect("ssh-keygen (openssh-client)");
    assert!(made.success());
    let pem = std::fs::read_to_string(&keyfile).unwrap();
    std::fs::write(&path, &pem).unwrap();
    let c = parse(&with_key).unwrap();
    let dbg = format!("{c:?}");
    let secret_line = pem.lines().nth(1).unwrap();
    assert!(!dbg.contains(secret_line), "{dbg}");
    let StoreBackend::Sftp(s) = &c.store.unwrap().backend else {
        panic!()
    };
    assert_eq!(s.port, 22);
    assert_eq!(s.host_key, parse_host_key(ED25519_HOST).unwrap());
}

#[test]
fn host_key_lines_are_parsed_strictly() {
    for line in [
        ED25519_HOST.to_string(),
        format!("host {ED25519_HOST}"),
        format!("[h]:22 {ED25519_HOST} comment words"),
    ] {
        assert!(parse_host_key(&line).is_ok(), "{line}");
    }
    for bad in [
        "".to_string(),
        "ssh-ed25519".to_string(),
        format!("@cert-authority * {ED25519_HOST}"),
        "ssh-ed25519 AAAAnotbase64!".to_string(),
        format!("a b {ED25519_HOST}"),
    ] {
        assert!(parse_host_key(&bad).is_err(), "{bad}");
    }
}

#[test]
fn keys_of_another_kind_are_refused() {
    let e = refused("[store]\nkind = \"gcs\"\nbucket = \"b\"\nhost = \"h\"\n");
    assert!(e.contains("store.host") && e.contains("sftp"), "{e}");
    let e = refused(
        "[store]\nkind = \"azure\"\naccount = \"acct\"\ncontainer = \"c1c\"\nregion = \"x\"\n",
    );
    assert!(e.contains("store.region"), "{e}");
    let e = refused("[store]\nkind = \"s3\"\nbucket = \"b\"\ncontainer = \"c\"\n");
    assert!(e.contains("store.container"), "{e}");
    let e = refused("[store]\nkind = \"ftp\"\n");
    assert!(e.contains("\"sftp\"") && e.contains("\"azure\""), "{e}");
}
