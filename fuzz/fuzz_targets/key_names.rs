//! Fuzzes the key-name encoding (src/recording/key.rs): every file name, whatever its
//! bytes, becomes key-safe text that decodes back to exactly those bytes; the
//! shortened key component stays short, and `display_name` stays one line.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run key_names -- -max_total_time=60`
//! (cargo-fuzz wants nightly; RUSTC_BOOTSTRAP lets stable rustc take the
//! `-Z` flags it passes).
#![no_main]

use libfuzzer_sys::fuzz_target;

// The two modules are compiled in by path rather than through the recvault
// crate, whose AWS SDK dependency tree would take many minutes to build with
// sanitizer instrumentation; they depend on nothing else in the crate.
#[allow(dead_code)]
#[path = "../../src/digest.rs"]
mod digest;
#[allow(dead_code)]
#[path = "../../src/recording/key.rs"]
mod keys;

fuzz_target!(|name: &[u8]| {
    let encoded = keys::encode_name(name);
    assert!(encoded.bytes().all(|b| b.is_ascii_graphic()), "{encoded}");
    assert!(!encoded.contains('/'));
    assert!(encoded.bytes().any(|b| b != b'.') || encoded.is_empty());
    assert_eq!(keys::decode_name(&encoded).as_deref(), Some(name));

    let component = keys::name_component(name);
    assert!(component.len() <= keys::MAX_NAME_COMPONENT);
    if encoded.len() <= keys::MAX_NAME_COMPONENT {
        assert_eq!(component, encoded);
    }

    let shown = keys::display_name(name);
    assert!(!shown.contains('\n') && !shown.contains('\r'));

    // decode_name must never panic on arbitrary text either.
    if let Ok(text) = std::str::from_utf8(name) {
        let _ = keys::decode_name(text);
    }
});
