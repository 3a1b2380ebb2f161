//! The pattern leaf types of the typed validator: `Pat<P>`, a string held to one
//! `schemas/common.json` pattern definition (its `maxLength` and its `pattern`, the schema's own
//! regular expression compiled once, or a hand matcher for the hottest ones). They must never
//! accept a value the schema's pattern refuses (a test holds the two equal).

use std::marker::PhantomData;
use std::sync::LazyLock;

use serde::de::{Deserialize, Deserializer};

use super::fields::{Digest, StrVisitor, chars_within, digest_str};

/// A pattern definition: its longest length (characters) and its test.
pub(crate) trait Pattern {
    /// `maxLength`, or `usize::MAX` where the definition has none.
    const MAX: usize;
    /// What the value is, for a message.
    const WHAT: &'static str;
    /// Whether `s` matches the definition's `pattern` (and any `not` of it).
    fn matches(s: &str) -> bool;
}

/// A string held to a [`Pattern`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pat<P>(pub(super) Digest, PhantomData<P>);

impl<'de, P: Pattern> Deserialize<'de> for Pat<P> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(|s: &str| {
            chars_within(s, 0, P::MAX)?;
            if !P::matches(s) {
                return Err(format!("`{s}` is not {}", P::WHAT));
            }
            Ok(Pat(digest_str(s), PhantomData))
        }))
    }
}

/// A regular expression compiled once; the schema's own pattern text, so both engines read
/// the same rule.
macro_rules! regex_pattern {
    ($name:ident, $max:expr, $what:expr, $re:expr) => {
        #[doc = concat!("The pattern `", $re, "`.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) struct $name;
        impl Pattern for $name {
            const MAX: usize = $max;
            const WHAT: &'static str = $what;
            fn matches(s: &str) -> bool {
                static RE: LazyLock<Option<regex::Regex>> =
                    LazyLock::new(|| regex::Regex::new($re).ok());
                RE.as_ref().is_some_and(|re| re.is_match(s))
            }
        }
    };
}

/// `entity_id`: `kind:slug`, the hottest field of all, so matched by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntityIdPattern;

impl Pattern for EntityIdPattern {
    const MAX: usize = 136;
    const WHAT: &'static str = "an id (`kind:slug`)";
    fn matches(s: &str) -> bool {
        // ^[a-z][a-z0-9_]*:[a-z0-9][a-z0-9._-]{0,127}$
        let b = s.as_bytes();
        let Some(colon) = b.iter().position(|&c| c == b':') else {
            return false;
        };
        let (kind, slug) = (&b[..colon], &b[colon + 1..]);
        kind.first().is_some_and(u8::is_ascii_lowercase)
            && kind
                .iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
            && slug
                .first()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && slug.len() <= 128
            && slug.iter().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
            })
    }
}

regex_pattern!(
    ProcessIdPattern,
    136,
    "a process id",
    "^([a-z][a-z0-9_]*:)?[a-z0-9][a-z0-9._-]{0,127}$"
);
regex_pattern!(
    UuidPattern,
    usize::MAX,
    "a UUID",
    "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
);
regex_pattern!(
    UuidV7Pattern,
    usize::MAX,
    "a UUIDv7",
    "^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
);
regex_pattern!(
    DatePattern,
    usize::MAX,
    "a date (YYYY-MM-DD)",
    "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
);
regex_pattern!(
    DateTimePattern,
    usize::MAX,
    "a date-time",
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
);
regex_pattern!(
    YearMonthPattern,
    usize::MAX,
    "a month (YYYY-MM)",
    "^[0-9]{4}-(0[1-9]|1[0-2])$"
);
regex_pattern!(YearPattern, usize::MAX, "a year (YYYY)", "^[0-9]{4}$");
regex_pattern!(
    LanguagePattern,
    35,
    "a language tag",
    "^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"
);
regex_pattern!(
    UrlPattern,
    2048,
    "an absolute URL",
    r"^[A-Za-z][A-Za-z0-9+.-]*://[^\s]+$"
);
regex_pattern!(
    WikidataPattern,
    usize::MAX,
    "a Wikidata id",
    "^Q[1-9][0-9]{0,11}$"
);
regex_pattern!(CountryPattern, usize::MAX, "a country code", "^[A-Z]{2,3}$");
regex_pattern!(
    ContentHashPattern,
    200,
    "a content hash (`algorithm:hex`)",
    "^[a-z0-9-]+:[0-9a-f]{32,128}$"
);
regex_pattern!(
    CorrelationPattern,
    136,
    "a correlation id",
    "^[A-Za-z0-9][A-Za-z0-9._:/-]*$"
);
regex_pattern!(CameoPattern, usize::MAX, "a CAMEO code", "^[0-9]{2,4}$");
regex_pattern!(
    PloverEventPattern,
    64,
    "a PLOVER event code",
    "^[A-Z][A-Z_]*$"
);
regex_pattern!(
    SnakeWordPattern,
    64,
    "a lower-case word",
    "^[a-z][a-z0-9_]*$"
);
regex_pattern!(
    JsonPointerPattern,
    1000,
    "a JSON pointer",
    "^(/([^/~]|~[01])*)*$"
);

/// `meta.inferred` items: a JSON pointer that starts with `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InferredPointerPattern;

impl Pattern for InferredPointerPattern {
    const MAX: usize = 1000;
    const WHAT: &'static str = "a JSON pointer starting with `/`";
    fn matches(s: &str) -> bool {
        s.starts_with('/') && JsonPointerPattern::matches(s)
    }
}

/// `duration`: ISO 8601, neither `P`, `PT` nor ending in `T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DurationPattern;

impl Pattern for DurationPattern {
    const MAX: usize = 64;
    const WHAT: &'static str = "an ISO 8601 duration";
    fn matches(s: &str) -> bool {
        static RE: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
            regex::Regex::new(
                "^P([0-9]+Y)?([0-9]+M)?([0-9]+W)?([0-9]+D)?(T([0-9]+H)?([0-9]+M)?([0-9]+([.,][0-9]+)?S)?)?$",
            )
            .ok()
        });
        RE.as_ref().is_some_and(|re| re.is_match(s)) && s != "P" && s != "PT" && !s.ends_with('T')
    }
}

/// `date_or_datetime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateOrDateTimePattern;

impl Pattern for DateOrDateTimePattern {
    const MAX: usize = usize::MAX;
    const WHAT: &'static str = "a date or a date-time";
    fn matches(s: &str) -> bool {
        DatePattern::matches(s) || DateTimePattern::matches(s)
    }
}

/// `partial_datetime`: a year, a month, a date or a date-time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PartialDateTimePattern;

impl Pattern for PartialDateTimePattern {
    const MAX: usize = usize::MAX;
    const WHAT: &'static str = "a year, month, date or date-time";
    fn matches(s: &str) -> bool {
        YearPattern::matches(s) || YearMonthPattern::matches(s) || DateOrDateTimePattern::matches(s)
    }
}

// A term name of `terms`.
regex_pattern!(
    TermNamePattern,
    usize::MAX,
    "a term name",
    "^[a-z][a-z0-9_]{0,63}$"
);
