//! The size of a submitted event as the log stores its JSON, and its strings and keys over the
//! limit, found in one walk of the parsed value (this runs on every event). The count must
//! never differ from the length of serde_json's compact encoding (a property test holds the
//! two equal), and a pointer is built only for a string that is too long.

use serde_json::Value;

use super::FieldError;
use super::node::RESERVED_MEMBER;

/// What one walk of an event found: its encoded length and whether any string or key is over
/// the string limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Measure {
    /// Bytes of the value as compact JSON.
    pub(super) len: usize,
    /// Whether a string or a key is longer than the limit it was measured against.
    pub(super) long_string: bool,
    /// Whether a member is named [`RESERVED_MEMBER`].
    pub(super) reserved: bool,
}

/// Measures `value` against the string limit `max` (bytes).
pub(super) fn measure(value: &Value, max: usize) -> Measure {
    let mut m = Measure {
        len: 0,
        long_string: false,
        reserved: false,
    };
    add(value, max, &mut m);
    m
}

fn add(value: &Value, max: usize, m: &mut Measure) {
    match value {
        Value::Null => m.len += 4,
        Value::Bool(b) => m.len += if *b { 4 } else { 5 },
        Value::Number(n) => m.len += number_len(n),
        Value::String(s) => string(s, max, m),
        Value::Array(items) => {
            m.len += 2 + items.len().saturating_sub(1);
            for v in items {
                add(v, max, m);
            }
        }
        Value::Object(map) => {
            // Braces, a colon per member and the commas between them.
            m.len += 2 + map.len() + map.len().saturating_sub(1);
            for (k, v) in map {
                m.reserved |= k == RESERVED_MEMBER;
                string(k, max, m);
                add(v, max, m);
            }
        }
    }
}

/// A string as serde_json writes it: quoted, `"` and `\` and the control characters escaped
/// (`\n`-style where JSON has a short form, `\u00XX` otherwise), everything else verbatim.
fn string(s: &str, max: usize, m: &mut Measure) {
    m.long_string |= s.len() > max;
    // Most strings have nothing to escape: a count without an early exit, in byte lanes (at
    // most 255 to a lane sum), which the compiler vectorises, says so, and only the others
    // are counted byte by byte.
    let special: usize = s
        .as_bytes()
        .chunks(255)
        .map(|chunk| {
            let n: u8 = chunk
                .iter()
                .map(|&b| u8::from(b < 0x20) | u8::from(b == b'"') | u8::from(b == b'\\'))
                .sum();
            usize::from(n)
        })
        .sum();
    let escapes = if special == 0 {
        0
    } else {
        s.bytes()
            .map(|b| match b {
                b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
                0..=0x1f => 5,
                _ => 0,
            })
            .sum()
    };
    m.len += 2 + s.len() + escapes;
}

/// A number's length as serde_json writes it: an integer's digits, any other number by
/// serde_json's own formatting, counted.
fn number_len(n: &serde_json::Number) -> usize {
    if let Some(u) = n.as_u64() {
        return itoa::Buffer::new().format(u).len();
    }
    if let Some(i) = n.as_i64() {
        return itoa::Buffer::new().format(i).len();
    }
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, n) {
        Ok(()) => count.0,
        Err(_) => usize::MAX / 2,
    }
}

/// Reports every string (value or key) longer than `max` bytes. The pointer is built only
/// when something is wrong: this runs on every event.
pub(super) fn check_strings(
    value: &Value,
    pointer: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) {
    let mut path: Vec<Segment<'_>> = Vec::new();
    walk_strings(value, &mut path, pointer, max, errors);
}

/// The pointer (from `base`) of the first member named `key`, at any depth. Run only once
/// [`measure`] found one.
pub(super) fn pointer_of_key(value: &Value, key: &str, base: &str) -> Option<String> {
    fn walk<'a>(value: &'a Value, key: &str, path: &mut Vec<Segment<'a>>) -> bool {
        match value {
            Value::Array(items) => items.iter().enumerate().any(|(i, v)| {
                path.push(Segment::Index(i));
                let found = walk(v, key, path);
                if !found {
                    path.pop();
                }
                found
            }),
            Value::Object(map) => map.iter().any(|(k, v)| {
                path.push(Segment::Key(k));
                let found = k == key || walk(v, key, path);
                if !found {
                    path.pop();
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = Vec::new();
    walk(value, key, &mut path).then(|| render(base, &path))
}

/// One step of a JSON pointer.
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn render(base: &str, path: &[Segment<'_>]) -> String {
    let mut out = base.to_string();
    for seg in path {
        out.push('/');
        match seg {
            Segment::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
            Segment::Index(i) => out.push_str(&i.to_string()),
        }
    }
    out
}

fn walk_strings<'a>(
    value: &'a Value,
    path: &mut Vec<Segment<'a>>,
    base: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) {
    match value {
        Value::String(s) if s.len() > max => errors.push(FieldError {
            pointer: render(base, path),
            message: format!("this string is {} bytes long; the limit is {max}", s.len()),
        }),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(Segment::Index(i));
                walk_strings(v, path, base, max, errors);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                path.push(Segment::Key(k));
                if k.len() > max {
                    errors.push(FieldError {
                        pointer: render(base, path),
                        message: format!("this key is {} bytes long; the limit is {max}", k.len()),
                    });
                }
                walk_strings(v, path, base, max, errors);
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_events_encoded_length_is_counted_as_serde_json_encodes_it() {
        for line in crate::server::DEMO_NDJSON.lines().take(20) {
            let value: Value = serde_json::from_str(line).unwrap();
            assert_eq!(
                measure(&value, usize::MAX).len,
                serde_json::to_vec(&value).unwrap().len()
            );
        }
    }

    #[test]
    fn a_long_string_or_key_is_found_and_reported_at_its_pointer() {
        let value = serde_json::json!({"data": {"short": "abc", "list": ["x", "abcdef"]}});
        assert!(!measure(&value, 6).long_string);
        assert!(measure(&value, 5).long_string);
        let mut errors = Vec::new();
        check_strings(&value, "/events/1", 5, &mut errors);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].pointer, "/events/1/data/list/1");
        let key = serde_json::json!({"a_very_long_key": 1});
        assert!(measure(&key, 5).long_string);
    }

    #[test]
    fn the_reserved_member_name_is_found_at_any_depth_and_at_its_pointer() {
        let value = serde_json::json!({"a": [{"b": 1, RESERVED_MEMBER: 2}]});
        assert!(measure(&value, usize::MAX).reserved);
        assert_eq!(
            pointer_of_key(&value, RESERVED_MEMBER, "/events/0"),
            Some(format!("/events/0/a/0/{RESERVED_MEMBER}"))
        );
        let plain = serde_json::json!({"a": [{"b": 1}]});
        assert!(!measure(&plain, usize::MAX).reserved);
        assert_eq!(pointer_of_key(&plain, RESERVED_MEMBER, ""), None);
    }

    proptest! {
        #[test]
        fn the_measured_length_is_serde_jsons_for_any_value(
            value in crate::log::any_json(),
        ) {
            prop_assert_eq!(measure(&value, usize::MAX).len, serde_json::to_vec(&value).unwrap().len());
        }

        #[test]
        fn a_long_string_is_found_exactly_when_the_walk_reports_one(
            value in crate::log::any_json(),
            max in 0usize..8,
        ) {
            let mut errors = Vec::new();
            check_strings(&value, "", max, &mut errors);
            prop_assert_eq!(measure(&value, max).long_string, !errors.is_empty());
        }
    }
}
