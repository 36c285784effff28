//! Fuzzes the VICIdial file-name template (src/recording/name.rs): any template text
//! either parses or is refused with a message, and matching any file name
//! against a parsed template (or the default one) never panics.
//!
//! Input: template text, a NUL byte, then the file-name bytes.
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run name_template -- -max_total_time=60`
#![no_main]

use libfuzzer_sys::fuzz_target;

// Compiled in by path, like key_names.rs: name.rs needs only std, chrono
// and the phone-number form (`super::phone`, std only).
#[allow(dead_code)]
#[path = "../../src/recording/name.rs"]
mod naming;
#[allow(dead_code)]
#[path = "../../src/recording/phone.rs"]
mod phone;

fuzz_target!(|data: &[u8]| {
    let (template, name) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"20260301-101500_5551234567-all.wav"[..]),
    };
    let default = naming::NameTemplate::parse(naming::DEFAULT_NAME_TEMPLATE).expect("default template");
    let _ = default.matches(name);
    let Ok(text) = std::str::from_utf8(template) else { return };
    match naming::NameTemplate::parse(text) {
        Ok(t) => {
            let _ = t.matches(name);
        }
        Err(message) => assert!(!message.is_empty()),
    }
});
