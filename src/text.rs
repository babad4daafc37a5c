//! Text shown to people without `Debug` formatting.
//!
//! The router builds compile with `-Zfmt-debug=none` (cross/size-config.toml), which turns
//! every `{:?}` into nothing. Messages that quote the user's input or name a time limit
//! use these `Display` wrappers instead, which write exactly what `{:?}` writes in a normal
//! build (the tests below compare them with `format!("{:?}", ..)`).

use std::fmt::{self, Display, Formatter, Write};
use std::time::Duration;

/// A string in double quotes with `Debug`'s escapes (`\"`, `\\`, `\n`, `\u{..}`, ...), so a
/// message can show exactly what the user typed, invisible characters included.
#[derive(Clone, Copy)]
pub struct Quoted<'a>(pub &'a str);

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            // `char::escape_debug` also escapes `'`, which `str`'s Debug leaves alone.
            if c == '\'' {
                f.write_char(c)?;
            } else {
                write!(f, "{}", c.escape_debug())?;
            }
        }
        f.write_char('"')
    }
}

/// A duration written as `Debug` writes it: `5s`, `1.5s`, `250ms`, `12.5µs`, `7ns`.
#[derive(Clone, Copy)]
pub struct DurationText(pub Duration);

impl Display for DurationText {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        // (whole units, remainder in nanoseconds, nanoseconds per unit, suffix)
        let (whole, rest, unit, suffix) = if secs > 0 {
            (secs, nanos, 1_000_000_000, "s")
        } else if nanos >= 1_000_000 {
            (
                u64::from(nanos / 1_000_000),
                nanos % 1_000_000,
                1_000_000,
                "ms",
            )
        } else if nanos >= 1_000 {
            (u64::from(nanos / 1_000), nanos % 1_000, 1_000, "µs")
        } else {
            (u64::from(nanos), 0, 1, "ns")
        };
        write!(f, "{whole}")?;
        if rest > 0 {
            // The fraction with every digit of the unit, trailing zeros dropped.
            let mut digits = String::new();
            let mut scale = unit / 10;
            let mut left = rest;
            while scale > 0 && left > 0 {
                let digit = left / scale;
                digits.push(char::from(b'0' + (digit % 10) as u8));
                left %= scale;
                scale /= 10;
            }
            write!(f, ".{digits}")?;
        }
        f.write_str(suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tricky_strings() -> Vec<String> {
        let mut all: Vec<String> = [
            "",
            "plain",
            "with space",
            "quote\"inside",
            "single'quote",
            "back\\slash",
            "tab\there",
            "new\nline\r\n",
            "nul\0byte",
            "bell\u{7}esc\u{1b}del\u{7f}",
            "latin é ü ß",
            "\u{301}combining first",
            "e\u{301} combining later",
            "zero\u{200b}width",
            "bidi\u{202e}override",
            "emoji 🦀",
            "private\u{e000}use",
            "nbsp\u{a0}and\u{ad}soft hyphen",
            "line\u{2028}separator",
            "bom\u{feff}",
            "c1\u{85}control",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Pseudo-random strings over a mix of ASCII, controls and assorted Unicode blocks.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let len = next() % 12;
            let s: String = (0..len)
                .filter_map(|_| {
                    let r = next();
                    let c = match r % 4 {
                        0 => (r >> 8) % 0x80,
                        1 => (r >> 8) % 0x800,
                        2 => (r >> 8) % 0x1_0000,
                        _ => (r >> 8) % 0x11_0000,
                    };
                    char::from_u32(c as u32)
                })
                .collect();
            all.push(s);
        }
        all
    }

    #[test]
    fn quoted_writes_what_debug_writes() {
        for s in tricky_strings() {
            assert_eq!(Quoted(&s).to_string(), format!("{s:?}"), "{s:?}");
        }
    }

    #[test]
    fn duration_text_writes_what_debug_writes() {
        let mut all = vec![
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(999),
            Duration::from_micros(1),
            Duration::from_nanos(12_500),
            Duration::from_millis(1),
            Duration::from_millis(250),
            Duration::from_micros(1_500),
            Duration::from_secs(1),
            Duration::from_millis(1_500),
            Duration::from_secs(5),
            Duration::from_secs(90),
            Duration::new(3, 1),
            Duration::new(u64::MAX, 999_999_999),
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let nanos = (seed % 1_000_000_000) as u32;
            let secs = match seed >> 62 {
                0 => 0,
                1 => (seed >> 32) % 100,
                _ => seed >> 20,
            };
            // Round some to whole units, as real limits are.
            let nanos = match (seed >> 40) % 4 {
                0 => nanos / 1_000_000 * 1_000_000,
                1 => nanos / 1_000 * 1_000,
                _ => nanos,
            };
            all.push(Duration::new(secs, nanos));
        }
        for d in all {
            assert_eq!(DurationText(d).to_string(), format!("{d:?}"), "{d:?}");
        }
    }
}
