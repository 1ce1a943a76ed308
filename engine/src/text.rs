//! Text from outside (registry responses, image labels, layout files) goes into error
//! messages, D-Bus properties, the journal and terminals. At the point where it enters it is
//! made inert: control characters (terminal escapes, newlines that forge log lines) and
//! bidirectional overrides are shown escaped, and the length is capped.

/// Longest outside text kept, in characters.
pub const MAX_OUTSIDE_CHARS: usize = 400;

/// `s` with every control or bidi-override character escaped (`\u{1b}`), at most
/// [`MAX_OUTSIDE_CHARS`] characters of it.
pub fn outside(s: &str) -> String {
    escape(s, MAX_OUTSIDE_CHARS)
}

fn escape(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push_str("...");
            break;
        }
        if c.is_control() || is_bidi_control(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`outside`] for a whole error message, which may quote several outside texts: the same
/// escaping, a longer cap.
pub fn outside_long(s: &str) -> String {
    escape(s, 4 * MAX_OUTSIDE_CHARS)
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_inert_and_length_is_capped() {
        let hostile = "denied\u{1b}]0;owned\u{7}\u{1b}[2J\nFAKE LOG LINE\u{202e}";
        let clean = outside(hostile);
        assert!(!clean.chars().any(|c| c.is_control()), "{clean:?}");
        assert!(clean.contains("\\u{1b}]0;owned"), "{clean}");
        assert!(clean.contains("\\u{a}FAKE LOG LINE"), "{clean}");
        assert!(clean.contains("\\u{202e}"), "{clean}");
        let long = "x".repeat(10_000);
        assert_eq!(outside(&long).chars().count(), MAX_OUTSIDE_CHARS + 3);
        assert_eq!(outside("version 2.1 ✓"), "version 2.1 ✓");
    }
}
