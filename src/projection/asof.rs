//! As-of queries: what the log knew at a moment (`known_at`: a seq or an RFC 3339 timestamp,
//! transaction time) and what the world looked like at a date (`valid_at`: by `occurred`,
//! valid time). Dates are compared at the precision they were recorded with, so a fact known
//! to the month is never treated as if it had a day. This module must never read storage.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::knowledge::Knowledge;

/// The point a view is computed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// Only records with seq at or below this are known.
    pub seq: u64,
    /// Only facts that (may) have occurred by this date, when given (`YYYY[-MM[-DD]]` or a
    /// date-time prefix).
    pub valid_at: Option<String>,
    /// The reference date for "overdue" (valid_at, else today), `YYYY-MM-DD`.
    pub today: String,
}

/// A `known_at` or `valid_at` value that is not understood.
#[derive(Debug, thiserror::Error)]
pub enum AsOfError {
    /// `known_at` is neither a seq nor an RFC 3339 timestamp.
    #[error("`known_at` must be a seq (an integer >= 0) or an RFC 3339 timestamp (got `{0}`)")]
    KnownAt(String),
    /// `valid_at` is not a date.
    #[error(
        "`valid_at` must be a date: YYYY, YYYY-MM, YYYY-MM-DD or an RFC 3339 timestamp (got `{0}`)"
    )]
    ValidAt(String),
}

/// What `known_at` asks for, before it is resolved against the knowledge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnownAt {
    /// A seq.
    Seq(u64),
    /// A timestamp, normalised to the log's `recorded_at` format (UTC, microseconds).
    Time(String),
}

/// Parses `known_at`.
pub fn parse_known_at(s: &str) -> Result<KnownAt, AsOfError> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(KnownAt::Seq(n));
    }
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| AsOfError::KnownAt(s.to_string()))?;
    Ok(KnownAt::Time(recorded_at_format(t)))
}

/// Formats a timestamp as the writer formats `recorded_at`, so strings compare as times.
fn recorded_at_format(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Parses `valid_at`: a partial date or a timestamp (kept as given, compared by prefix).
pub fn parse_valid_at(s: &str) -> Result<String, AsOfError> {
    let bad = || AsOfError::ValidAt(s.to_string());
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let ok = match b.len() {
        4 => digits(0..4),
        7 => digits(0..4) && b[4] == b'-' && digits(5..7),
        10 => digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10),
        _ => OffsetDateTime::parse(s, &Rfc3339).is_ok(),
    };
    if ok { Ok(s.to_string()) } else { Err(bad()) }
}

/// Resolves `known_at` to a seq no later than what the knowledge holds.
pub fn resolve(k: &Knowledge, known_at: Option<&KnownAt>) -> u64 {
    match known_at {
        None => k.seq,
        Some(KnownAt::Seq(n)) => (*n).min(k.seq),
        Some(KnownAt::Time(t)) => k.seq_at_time(t).min(k.seq),
    }
}

/// Today's date (UTC), `YYYY-MM-DD`.
pub fn today() -> String {
    let t = OffsetDateTime::now_utc();
    format!("{:04}-{:02}-{:02}", t.year(), t.month() as u8, t.day())
}

/// Compares two ISO 8601 prefixes at the coarser of their precisions: `2025-08` is not after
/// `2025-08-15` (it may be the same day), and `2026-01-22T23:00Z` is not after `2026-01-22`.
pub fn not_after(a: &str, b: &str) -> bool {
    let n = a.len().min(b.len());
    a[..n] <= b[..n]
}

/// The earliest time a fact may have occurred, as recorded (`start`, else `not_before`).
pub fn earliest(occurred: &Value) -> Option<&str> {
    occurred
        .get("start")
        .or_else(|| occurred.get("not_before"))
        .and_then(Value::as_str)
}

/// A key that orders facts by when they occurred, at their own precision: `start`, else
/// `not_before`, else `not_after`; facts with no date at all sort last.
pub fn sort_key(occurred: &Value) -> String {
    earliest(occurred)
        .or_else(|| occurred.get("not_after").and_then(Value::as_str))
        .map(str::to_string)
        .unwrap_or_else(|| "~".into())
}

/// Whether a fact may have occurred by the cut's `valid_at` (always true without one, and for
/// facts with no known earliest time, which cannot be excluded).
pub fn occurred_by(cut: &Cut, occurred: &Value) -> bool {
    match (&cut.valid_at, earliest(occurred)) {
        (Some(v), Some(start)) => not_after(start, v),
        _ => true,
    }
}

/// The date of a fact as it should be shown: `start` at its recorded precision, never padded.
pub fn when(occurred: &Value) -> Value {
    serde_json::json!({
        "start": occurred.get("start"),
        "end": occurred.get("end"),
        "precision": occurred.get("precision"),
        "not_before": occurred.get("not_before"),
        "not_after": occurred.get("not_after"),
    })
    .as_object()
    .map(|o| {
        Value::Object(
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    })
    .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_at_is_a_seq_or_a_timestamp_normalised_to_recorded_at() {
        assert_eq!(parse_known_at("12").unwrap(), KnownAt::Seq(12));
        assert_eq!(
            parse_known_at("2026-01-23T10:00:00+02:00").unwrap(),
            KnownAt::Time("2026-01-23T08:00:00.000000Z".into())
        );
        assert!(parse_known_at("yesterday").is_err());
    }

    #[test]
    fn dates_compare_at_the_coarser_precision() {
        assert!(not_after("2025-08", "2025-08-15"));
        assert!(not_after("2025-08-15", "2025-08"));
        assert!(!not_after("2025-09", "2025-08-15"));
        assert!(parse_valid_at("2026-01").is_ok());
        assert!(parse_valid_at("2026-1").is_err());
    }
}
