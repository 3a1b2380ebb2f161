//! The retry policy: the configured schedule with ±jitter, and `Retry-After` within bounds.
//! This module must never sleep: it only computes delays, so the dispatcher decides how to wait.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// The delay before attempt `index` (0-based), jittered by ±`jitter_percent`; `None` once the
/// schedule is exhausted. A zero entry (the first try, "immediately") stays zero.
pub fn delay(schedule_ms: &[u64], index: usize, jitter_percent: u32) -> Option<Duration> {
    let base = *schedule_ms.get(index)?;
    if base == 0 || jitter_percent == 0 {
        return Some(Duration::from_millis(base));
    }
    let spread = base as f64 * f64::from(jitter_percent.min(100)) / 100.0;
    let jittered = base as f64 + rand::thread_rng().gen_range(-spread..=spread);
    Some(Duration::from_millis(jittered.max(0.0) as u64))
}

/// A `Retry-After` value (delay-seconds or an HTTP date), capped at `max`.
pub fn retry_after(value: &str, max: Duration) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let when =
            time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822)
                .ok()?;
        let when = SystemTime::from(when);
        when.duration_since(SystemTime::now()).unwrap_or_default()
    };
    Some(wait.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_twenty_percent_and_the_first_try_is_immediate() {
        let schedule = [0, 5_000, 300_000];
        assert_eq!(delay(&schedule, 0, 20), Some(Duration::ZERO));
        for _ in 0..200 {
            let d = delay(&schedule, 1, 20).unwrap().as_millis();
            assert!((4_000..=6_000).contains(&d), "{d}");
        }
        assert_eq!(delay(&schedule, 3, 20), None);
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date_and_capped() {
        let cap = Duration::from_secs(60);
        assert_eq!(retry_after("7", cap), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("7200", cap), Some(cap));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT", cap),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", cap), None);
    }
}
