//! Links: signing, identity, parsing.

use super::*;
use crate::recording::{FileIdentity, State};

fn recording(id: i64, name: &str, sha: Option<u8>) -> Recording {
    let example = Recording::example(id, name);
    Recording {
        identity: FileIdentity {
            mtime_ns: 1_700_000_000_000_000_000,
            ..example.identity
        },
        state: State::LocalDeleted,
        sha256: sha.map(|b| hex::encode([b; 32])),
        ..example
    }
}

fn parsed(path: &str) -> Link<'_> {
    match path.split_once('?') {
        Some((p, q)) => parse(p, Some(q)).unwrap(),
        None => parse(path, None).unwrap(),
    }
}

#[test]
fn hmac_matches_rfc_4231() {
    // Test cases 1, 2 and 6 (a key longer than a block).
    let cases: [(&[u8], &[u8], &str); 3] = [
        (
            &[0x0b; 20],
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
    ];
    for (key, message, expected) in cases {
        assert_eq!(hex::encode(hmac_sha256(key, message)), expected);
    }
}

#[test]
fn links_name_their_file_and_verify_only_against_their_own_recording() {
    let signer = Signer::from_key(&[7u8; 32]);
    let b = recording(2, "20260301-101500_5551234567-all.wav", Some(0xb));
    let path = signer.path(&b, None);
    assert!(
        path.ends_with("/20260301-101500_5551234567-all.wav"),
        "{path}"
    );
    let link = parsed(&path);
    assert_eq!((link.id, link.named), (2, true));
    assert_eq!(signer.check(&link, Some(&b), 0, 0), Ok(()));
    // Another recording under the same id (an older ledger put back, a
    // rebuilt or hand-edited row): refused like a forged link.
    let c = recording(2, "20260302-090000_5559999999-all.wav", Some(0xc));
    assert_eq!(
        signer.check(&link, Some(&c), i64::MAX, 0),
        Err(Refusal::BadSignature)
    );
    // The same file name over another call's bytes is another recording.
    let same_name = recording(2, "20260301-101500_5551234567-all.wav", Some(0xc));
    assert_eq!(
        signer.check(&link, Some(&same_name), 0, 0),
        Err(Refusal::BadSignature)
    );
    assert_eq!(signer.check(&link, None, 0, 0), Err(Refusal::BadSignature));
    // The file name is not what decides: another one plays the same
    // recording, never another.
    let renamed = path.replace("5551234567-all.wav", "5559999999-all.wav");
    assert_eq!(signer.check(&parsed(&renamed), Some(&b), 0, 0), Ok(()));
    assert_eq!(
        signer.check(&parsed(&renamed), Some(&c), 0, 0),
        Err(Refusal::BadSignature)
    );
    // Another key, another id, a changed character.
    let other = Signer::from_key(&[8u8; 32]);
    assert_eq!(
        other.check(&link, Some(&b), 0, 0),
        Err(Refusal::BadSignature)
    );
    let moved = Link { id: 3, ..link };
    let b3 = Recording { id: 3, ..b.clone() };
    assert_eq!(
        signer.check(&moved, Some(&b3), 0, 0),
        Err(Refusal::BadSignature)
    );
    let mut sig = link.signature.to_string();
    sig.replace_range(0..1, if sig.starts_with('A') { "B" } else { "A" });
    let altered = Link {
        signature: &sig,
        ..link
    };
    assert_eq!(
        signer.check(&altered, Some(&b), 0, 0),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn a_link_issued_before_compression_keeps_playing_after_it() {
    let signer = Signer::from_key(&[7u8; 32]);
    let settled = recording(5, "a-all.wav", None);
    let path = signer.path(&settled, None);
    let archived = recording(5, "a-all.wav", Some(1));
    assert_eq!(signer.check(&parsed(&path), Some(&archived), 0, 0), Ok(()));
    // Once hashed, new links bind the SHA-256.
    assert_ne!(signer.path(&archived, None), path);
    // A file that changed is another recording.
    let mut changed = archived.clone();
    changed.identity.size += 1;
    assert_eq!(
        signer.check(&parsed(&path), Some(&changed), 0, 0),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn expiring_links_sign_their_expiry() {
    let signer = Signer::from_key(&[7u8; 32]);
    let b = recording(42, "b.wav", Some(2));
    let path = signer.path(&b, Some(1000));
    assert!(path.ends_with("/b.wav?exp=1000"), "{path}");
    let link = parsed(&path);
    assert_eq!(signer.check(&link, Some(&b), 0, 999), Ok(()));
    assert_eq!(
        signer.check(&link, Some(&b), 0, 1001),
        Err(Refusal::Expired)
    );
    let extended = Link {
        expires: Some(99_999),
        ..link
    };
    assert_eq!(
        signer.check(&extended, Some(&b), 0, 1001),
        Err(Refusal::BadSignature)
    );
    let forever = Link {
        expires: None,
        ..link
    };
    assert_eq!(
        signer.check(&forever, Some(&b), 0, 0),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn v1_links_work_only_below_the_mark_and_without_a_name() {
    let signer = Signer::from_key(&[7u8; 32]);
    let b = recording(2, "b.wav", Some(2));
    let v1 = format!("/r/2/{}", signer.sign_v1(2, None));
    let link = parsed(&v1);
    assert!(!link.named);
    assert_eq!(signer.check(&link, Some(&b), 3, 0), Ok(()));
    assert_eq!(
        signer.check(&link, Some(&b), 2, 0),
        Err(Refusal::BadSignature)
    );
    assert_eq!(signer.check(&link, None, 3, 0), Err(Refusal::BadSignature));
    let named_path = format!("{v1}/b.wav");
    let named = parsed(&named_path);
    assert_eq!(
        signer.check(&named, Some(&b), 3, 0),
        Err(Refusal::BadSignature)
    );
    let expiring = format!("/r/2/{}?exp=50", signer.sign_v1(2, Some(50)));
    assert_eq!(signer.check(&parsed(&expiring), Some(&b), 3, 10), Ok(()));
    // A v2 link without its name still verifies (a location too long
    // for the name is written so).
    let unnamed = signer.path_unnamed(&b, None);
    assert_eq!(signer.check(&parsed(&unnamed), Some(&b), 0, 0), Ok(()));
}

#[test]
fn names_are_escaped_and_malformed_links_do_not_parse() {
    let signer = Signer::from_key(&[7u8; 32]);
    let odd = recording(9, "a b/\u{1b}%?#.wav", Some(1));
    let path = signer.path(&odd, None);
    assert!(path.ends_with("/a%20b%2F%1B%25%3F%23.wav"), "{path}");
    assert_eq!(signer.check(&parsed(&path), Some(&odd), 0, 0), Ok(()));
    let sig = "a".repeat(SIGNATURE_LEN);
    assert!(parse(&format!("/r/1/{sig}"), None).is_some());
    assert!(parse(&format!("/r/1/{sig}/x-all.wav"), None).is_some());
    for (path, query) in [
        (format!("/r/1/{}", "a".repeat(42)), None),
        (format!("/r/1/{}", "a".repeat(44)), None),
        (format!("/r/1/{}", "a".repeat(42) + "="), None),
        (format!("/r/-1/{sig}"), None),
        (format!("/r//{sig}"), None),
        (format!("/r/1x/{sig}"), None),
        (format!("/r/{}/{sig}", "9".repeat(19)), None),
        (format!("/r/1/{sig}/"), None),
        (format!("/r/1/{sig}/x/y"), None),
        (format!("/r/1/{sig}/.."), None),
        (format!("/r/1/{sig}/a%2"), None),
        (format!("/r/1/{sig}/a%zz"), None),
        (format!("/r/1/{sig}/a\"b"), None),
        (format!("/r/1/{sig}/{}", "a".repeat(1025)), None),
        (format!("/x/1/{sig}"), None),
        (format!("/r/1/{sig}"), Some("exp=-5")),
        (format!("/r/1/{sig}"), Some("exp=12&x=1")),
        (format!("/r/1/{sig}"), Some("foo=1")),
    ] {
        assert!(parse(&path, query).is_none(), "{path} {query:?}");
    }
    // Whole links, as printed or as VICIdial keeps them.
    let url = format!("http://10.0.0.5:8089/r/1/{sig}/a-all.wav");
    assert_eq!(parse_url(&url).map(|l| (l.id, l.named)), Some((1, true)));
    let url = format!("https://[::1]:8089/r/1/{sig}?exp=5");
    assert_eq!(parse_url(&url).and_then(|l| l.expires), Some(5));
    assert!(parse_url(&format!("/r/1/{sig}")).is_some());
    assert!(parse_url(&format!("http://a@b/r/1/{sig}")).is_none());
    assert!(parse_url(&format!("ftp://b/r/1/{sig}")).is_none());
    assert_ne!(revocation_digest(&sig), revocation_digest(&"b".repeat(43)));
    assert!(!revocation_digest(&sig).contains(&sig));
}

#[test]
fn short_or_missing_keys_are_explained_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("link.key");
    std::fs::write(&key, "tooshortkey\n").unwrap();
    let e = Signer::load(&key).unwrap_err().to_string();
    assert!(
        e.contains("serve.key_file") && e.contains("at least 32"),
        "{e}"
    );
    assert!(!e.contains("tooshortkey"), "{e}");
    std::fs::write(&key, format!("{}\n", "k".repeat(64))).unwrap();
    let s = Signer::load(&key).unwrap();
    assert!(!format!("{s:?}").contains("kkkk"));
    assert!(Signer::load(&dir.path().join("none")).is_err());
}
