//! Phone numbers in one comparable form. File names (CUSTPHONE), VICIdial's
//! database, legal holds and data-subject requests all pass through
//! [`normalize`], so `+1 555-123-4567`, `15551234567` and `5551234567` are
//! one number wherever they are compared.
//!
//! The rule: keep the digits; a North American number written with its
//! country code (11 digits starting with `1`) loses the `1`, because
//! VICIdial stores and names NANP calls by their 10 digits. Other countries'
//! numbers are compared digit for digit as written: VICIdial keeps the
//! country code apart (`phone_code`) and names files by `phone_number`
//! alone, so type them as the dialer dials them, without the country code.

/// Characters an operator may type around the digits of a number.
const SEPARATORS: &[char] = &['+', ' ', '-', '.', '(', ')', '/'];

/// The comparable form of a phone number: its digits, without a NANP
/// country code. Refuses text with anything but digits and the usual
/// separators (`+ - . ( ) /`, spaces), or with no digit at all.
pub fn normalize(text: &str) -> Result<String, String> {
    if let Some(bad) = text
        .chars()
        .find(|c| !c.is_ascii_digit() && !SEPARATORS.contains(c))
    {
        return Err(format!(
            "`{text}` is not a phone number (`{bad}`): use digits, with + - . ( ) / or spaces between them"
        ));
    }
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return Err(format!("`{text}` is not a phone number: it has no digits"));
    }
    Ok(match digits.strip_prefix('1') {
        Some(national) if digits.len() == 11 => national.to_string(),
        _ => digits,
    })
}

/// [`normalize`] for a number read from a file name or a database: one that
/// does not normalize (no digits) is kept as it is.
pub fn normalize_lenient(text: &str) -> String {
    normalize(text).unwrap_or_else(|_| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_operators_type_are_one_number() {
        for typed in [
            "+1 555-123-4567",
            "15551234567",
            "5551234567",
            "(555) 123-4567",
            "1.555.123.4567",
            "+1 (555) 123 4567",
        ] {
            assert_eq!(normalize(typed).unwrap(), "5551234567", "{typed}");
        }
    }

    #[test]
    fn other_numbers_keep_their_digits() {
        // Not NANP with a country code: nothing is dropped.
        assert_eq!(normalize("+44 20 7946 0958").unwrap(), "442079460958");
        assert_eq!(normalize("2079460958").unwrap(), "2079460958");
        assert_eq!(normalize("25551234567").unwrap(), "25551234567");
        assert_eq!(normalize("155512345678").unwrap(), "155512345678");
        assert_eq!(normalize("1555123456").unwrap(), "1555123456");
        assert_eq!(normalize("555").unwrap(), "555");
    }

    #[test]
    fn text_that_is_not_a_number_is_refused() {
        for bad in ["", "  ", "+", "555-CALL", "555;DROP", "５５５"] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
        assert_eq!(normalize_lenient("n/a"), "n/a");
        assert_eq!(normalize_lenient("15551234567"), "5551234567");
    }
}
