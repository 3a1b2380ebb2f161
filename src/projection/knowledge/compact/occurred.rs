//! A fact's `occurred` text as a row holds it: its shape (the text with every digit replaced
//! by [`DIGIT`]), which few facts differ in and the symbol table numbers once, and its digits
//! as one number in the row. Exact times (`2026-01-22T14:30:05.120+03:00`) are nearly all
//! distinct, so holding each whole text in the names would grow the projections' memory with
//! the log (about 120 bytes a fact); their shapes are a handful. This module must never give
//! back a text other than the one it split: a text it cannot split so (no digit, more than
//! [`MAX_DIGITS`], or a [`DIGIT`] of its own) is held whole.

/// What stands for one digit in a shape. JSON text never holds this character unescaped,
/// and a text that does is held whole anyway.
const DIGIT: char = '\u{1}';

/// The most digits one number holds: any 38-digit decimal fits a u128. Two exact times of an
/// interval with offsets and milliseconds (42 digits) do not, and are held whole.
const MAX_DIGITS: usize = 38;

/// `text` as its shape and its digits (read in order as one decimal number), or `None` when it
/// is to be held whole.
pub(super) fn split(text: &str) -> Option<(String, u128)> {
    if text.contains(DIGIT) {
        return None;
    }
    let mut shape = String::with_capacity(text.len());
    let (mut digits, mut count) = (0u128, 0usize);
    for c in text.chars() {
        if c.is_ascii_digit() {
            count += 1;
            if count > MAX_DIGITS {
                return None;
            }
            digits = digits * 10 + u128::from(c as u8 - b'0');
            shape.push(DIGIT);
        } else {
            shape.push(c);
        }
    }
    (count > 0).then_some((shape, digits))
}

/// The text [`split`] gave `shape` and `digits` for.
pub(super) fn join(shape: &str, digits: u128) -> String {
    let count = shape.chars().filter(|&c| c == DIGIT).count();
    // Zero-padded to the shape's count: a leading zero is a digit of the text.
    let written = format!("{digits:0count$}");
    let mut figures = written.chars();
    shape
        .chars()
        .map(|c| match c {
            DIGIT => figures.next().unwrap_or('0'),
            c => c,
        })
        .collect()
}

/// A u128 as the row's four words, most significant first.
pub(super) fn words(n: u128) -> [u32; 4] {
    [
        (n >> 96) as u32,
        (n >> 64) as u32,
        (n >> 32) as u32,
        n as u32,
    ]
}

/// The u128 of the row's words.
pub(super) fn number(w: [u32; 4]) -> u128 {
    w.iter().fold(0u128, |n, &x| (n << 32) | u128::from(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_occurred_text_with_digits_to_spare_comes_back_as_it_was() {
        for text in [
            r#"{"start":"2026-01-22T14:30:05Z","precision":"exact"}"#,
            r#"{"start":"2026-01-22T14:30:05.000120+03:00","precision":"exact"}"#,
            r#"{"start":"0001-01-01t00:00:00z","precision":"exact"}"#,
            r#"{"precision":"day","start":"2026-01-02"}"#,
            r#"{"start":"2026-01-22","end":"2026-01-25","precision":"interval"}"#,
            r#"{ "start" : "2026",  "precision":"year" }"#,
            r#"{"start":"9999-12-31T23:59:60.999999999-23:59","precision":"exact","not_after":"9999-12-31"}"#,
            r#"{"start":"\u0031"}"#,
            "0",
            "00000000000000000000000000000000000000",
        ] {
            let (shape, digits) = split(text).expect(text); // ok: test code (a #[cfg(test)] module)
            assert_eq!(join(&shape, digits), text);
            assert_eq!(number(words(digits)), digits);
        }
    }

    #[test]
    fn texts_of_one_shape_share_it_and_differ_only_in_their_number() {
        let a = split(r#"{"start":"2026-01-22T14:30:05Z","precision":"exact"}"#);
        let b = split(r#"{"start":"2027-11-02T01:00:59Z","precision":"exact"}"#);
        let ((sa, na), (sb, nb)) = (a.expect("a"), b.expect("b")); // ok: test code (a #[cfg(test)] module)
        assert_eq!(sa, sb);
        assert_ne!(na, nb);
        assert_eq!(nb, 20271102010059);
    }

    #[test]
    fn a_text_without_digits_with_too_many_or_with_the_marker_is_held_whole() {
        assert_eq!(split(r#"{"precision":"unknown"}"#), None);
        assert_eq!(split(&"1".repeat(MAX_DIGITS + 1)), None);
        assert_eq!(split("{\"start\":\"\u{1}2026\"}"), None);
        // Digits of other scripts are not ASCII digits: kept in the shape.
        let (shape, n) = split("٣ 7").expect("one ASCII digit"); // ok: test code (a #[cfg(test)] module)
        assert_eq!((shape.as_str(), n), ("٣ \u{1}", 7));
    }
}
