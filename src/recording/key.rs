//! Object keys: the operator's template, and a reversible encoding of file
//! names (which may hold any byte) into key-safe text.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// The object key template unless `[store] key_template` says otherwise.
/// `{ext}` is the codec's suffix (`.flac`, `.zst`, or nothing for objects
/// stored as they are); a template without it gets it at the end.
pub const DEFAULT_KEY_TEMPLATE: &str = "{prefix}{host}/{yyyy}/{mm}/{dd}/{name}{ext}";

/// A parsed `[store] key_template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Prefix,
    Host,
    Year,
    Month,
    Day,
    Hour,
    Name,
    Id,
    Ext,
}

/// What a key is made from.
pub struct KeyInputs<'a> {
    pub prefix: &'a str,
    pub host: &'a str,
    /// The recording's time (call time where known, else mtime).
    pub time: DateTime<Utc>,
    /// The file name as bytes.
    pub name: &'a [u8],
    pub id: i64,
    /// The codec's suffix (`.flac`, `.zst`, ``).
    pub suffix: &'a str,
}

impl KeyTemplate {
    /// Parses a template such as `{prefix}{host}/{yyyy}/{mm}/{dd}/{name}{ext}`.
    /// A literal `.zst` at the end (wave 1's default, before FLAC) is read
    /// as `{ext}`: a key always names its object's real format.
    pub fn parse(text: &str) -> Result<KeyTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in `{text}`"))?
                + open;
            let part = match &rest[open + 1..close] {
                "prefix" => Part::Prefix,
                "host" => Part::Host,
                "yyyy" => Part::Year,
                "mm" => Part::Month,
                "dd" => Part::Day,
                "hh" => Part::Hour,
                "name" => Part::Name,
                "id" => Part::Id,
                "ext" => Part::Ext,
                other => {
                    return Err(format!(
                        "unknown placeholder `{{{other}}}`; known: {{prefix}} {{host}} {{yyyy}} {{mm}} {{dd}} {{hh}} {{name}} {{id}} {{ext}}"
                    ));
                }
            };
            parts.push(part);
            rest = &rest[close + 1..];
        }
        if let Some(text) = rest.strip_suffix(".zst") {
            rest = text;
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        match parts.iter().filter(|p| **p == Part::Ext).count() {
            0 => parts.push(Part::Ext),
            1 if parts.last() == Some(&Part::Ext) => {}
            _ => return Err("{ext} may appear once, at the end".to_string()),
        }
        if !parts.iter().any(|p| matches!(p, Part::Name | Part::Id)) {
            return Err("must contain {name} or {id} so keys identify recordings".to_string());
        }
        if text.starts_with('/') || text.split('/').any(|c| c == "..") {
            return Err("must not start with `/` or contain `..`".to_string());
        }
        Ok(KeyTemplate { parts })
    }

    /// Renders the key. `unique` adds `~<id>` after the name, for a second
    /// recording whose plain key is already taken (VICIdial names repeat).
    pub fn render(&self, k: &KeyInputs<'_>, unique: bool) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Prefix => out.push_str(k.prefix),
                Part::Host => out.push_str(k.host),
                Part::Year => out.push_str(&format!("{:04}", k.time.year())),
                Part::Month => out.push_str(&format!("{:02}", k.time.month())),
                Part::Day => out.push_str(&format!("{:02}", k.time.day())),
                Part::Hour => out.push_str(&format!("{:02}", k.time.hour())),
                Part::Name => {
                    out.push_str(&name_component(k.name));
                    if unique {
                        out.push_str(&format!("~{}", k.id));
                    }
                }
                Part::Id => out.push_str(&k.id.to_string()),
                Part::Ext => out.push_str(k.suffix),
            }
        }
        out
    }
}

/// Percent-encodes every byte outside a conservative key-safe set, so any
/// file name (spaces, quotes, newlines, non-UTF-8) becomes a valid, unique key
/// component that [`decode_name`] turns back into the same bytes.
pub fn encode_name(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'=' | b'@' | b',')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // A name made only of dots would be a path component with meaning.
    if out.bytes().all(|b| b == b'.') {
        return out.replace('.', "%2E");
    }
    out
}

/// The longest encoded name a key carries. Linux allows 255-byte names, and
/// escaping can triple them: left whole, such a key component is too long for
/// a file system (the local store) and eats S3's 1024-byte key limit.
pub const MAX_NAME_COMPONENT: usize = 200;

/// The file name as it appears in an object key: [`encode_name`], or for a
/// name whose encoding is longer than [`MAX_NAME_COMPONENT`], its start plus
/// `~` and 16 hex digits of the name's SHA-256 (the full name is kept in the
/// object's `original-name` metadata).
pub fn name_component(name: &[u8]) -> String {
    let encoded = encode_name(name);
    if encoded.len() <= MAX_NAME_COMPONENT {
        return encoded;
    }
    let digest = hex::encode(crate::digest::sha256(name));
    let mut cut = MAX_NAME_COMPONENT - 17;
    // Never split a `%XX` escape.
    while encoded.as_bytes()[cut - 1] == b'%' || encoded.as_bytes()[cut - 2] == b'%' {
        cut -= 1;
    }
    format!("{}~{}", &encoded[..cut], &digest[..16])
}

/// Reverses [`encode_name`]. `None` if `text` is not such an encoding.
pub fn decode_name(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Shows a file name to a person: valid UTF-8 as is, with control characters
/// and invalid bytes escaped so one name is always one line. The one place
/// recvault makes text it did not write safe for a terminal or a log
/// ([`display_text`] is the same for text).
pub fn display_name(name: &[u8]) -> String {
    let mut out = String::new();
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' || reorders(c) {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Shows text that came from outside — a login name, a user agent, a file
/// name or a value from VICIdial's database — to a person, escaped as
/// [`display_name`] escapes a name: stored as given, printed so that it can
/// neither forge a line nor send a terminal an escape sequence.
pub fn display_text(text: &str) -> String {
    display_name(text.as_bytes())
}

/// Characters that are not controls but change how a line reads: bidi
/// overrides and isolates (which can reorder what follows them on screen)
/// and the Unicode line and paragraph separators.
fn reorders(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn inputs(name: &[u8]) -> KeyInputs<'_> {
        KeyInputs {
            prefix: "rec/",
            host: "dialer1",
            time: Utc.with_ymd_and_hms(2026, 3, 1, 10, 15, 0).unwrap(),
            name,
            id: 42,
            suffix: ".zst",
        }
    }

    #[test]
    fn default_template_renders() {
        let t = KeyTemplate::parse(DEFAULT_KEY_TEMPLATE).unwrap();
        let k = t.render(&inputs(b"20260301-101500_5551234567-all.wav"), false);
        assert_eq!(
            k,
            "rec/dialer1/2026/03/01/20260301-101500_5551234567-all.wav.zst"
        );
        let u = t.render(&inputs(b"20260301-101500_5551234567-all.wav"), true);
        assert_eq!(
            u,
            "rec/dialer1/2026/03/01/20260301-101500_5551234567-all.wav~42.zst"
        );
    }

    #[test]
    fn keys_end_in_the_codec_suffix_whatever_the_template() {
        let name = b"a-all.wav";
        for template in [
            DEFAULT_KEY_TEMPLATE,
            "{prefix}{host}/{yyyy}/{mm}/{dd}/{name}.zst",
            "{prefix}{host}/{name}",
        ] {
            let t = KeyTemplate::parse(template).unwrap();
            for (suffix, want) in [(".flac", "a-all.wav.flac"), ("", "a-all.wav")] {
                let k = t.render(
                    &KeyInputs {
                        suffix,
                        ..inputs(name)
                    },
                    false,
                );
                assert!(k.ends_with(&format!("/{want}")), "{template}: {k}");
            }
        }
        assert!(KeyTemplate::parse("{name}{ext}/x").is_err());
    }

    #[test]
    fn odd_names_round_trip() {
        let names: [&[u8]; 6] = [
            b"with space.wav",
            b"quote\"'.wav",
            b"new\nline.wav",
            b"-leading.wav",
            b"\xff\xfe latin1 \xe9.wav",
            b"100%/~.wav",
        ];
        for name in names {
            let enc = encode_name(name);
            assert!(enc.bytes().all(|b| b.is_ascii_graphic()), "{enc}");
            assert!(!enc.contains('/'));
            assert_eq!(decode_name(&enc).unwrap(), name);
        }
        assert_eq!(encode_name(b".."), "%2E%2E");
    }

    #[test]
    fn long_names_are_shortened_uniquely() {
        let t = KeyTemplate::parse(DEFAULT_KEY_TEMPLATE).unwrap();
        for name in [vec![b'a'; 255], vec![0xe9; 255], b"x%".repeat(127)] {
            let component = name_component(&name);
            assert!(component.len() <= MAX_NAME_COMPONENT, "{component}");
            let key = t.render(&inputs(&name), true);
            let file_name = key.rsplit('/').next().unwrap();
            assert!(file_name.len() < 255, "{file_name}");
            let mut other = name.clone();
            let last = other.len() - 1;
            other[last] ^= 1;
            assert_ne!(name_component(&other), component);
        }
        assert_eq!(name_component(b"short.wav"), "short.wav");
    }

    #[test]
    fn template_errors() {
        assert!(KeyTemplate::parse("{host}/{yyyy}").is_err());
        assert!(KeyTemplate::parse("{name").is_err());
        assert!(KeyTemplate::parse("{bogus}/{name}").is_err());
        assert!(KeyTemplate::parse("../{name}").is_err());
    }

    #[test]
    fn display_escapes_controls_and_bad_bytes() {
        assert_eq!(display_name(b"a\nb\xff.wav"), "a\\nb\\xff.wav");
        assert_eq!(
            display_text("ev\u{1b}[31mil\r\nx\\y\u{202e}z\u{2028}"),
            "ev\\u{1b}[31mil\\r\\nx\\\\y\\u{202e}z\\u{2028}"
        );
        assert_eq!(display_text("Ünïcode ok"), "Ünïcode ok");
    }
}
