//! The one glob syntax for event types, shared by every type filter: `GET /events?type=`, the
//! live feed's `?type=` and subscription filters (`filter.types`). The syntax:
//!
//! - `*` matches any run of characters, including none and including dots: `meeting.*`
//!   matches `meeting.held`, `*.held` matches `meeting.held`, `*` matches every type, and
//!   `talks.*_changed` matches `talks.status_changed`.
//! - Every other character matches itself only, case-sensitively. There is no `?`, no
//!   character class and no escape (event types never contain `*`).
//! - A pattern without `*` is an exact type; a pattern must match the whole type, not a part.
//!
//! This module must never allocate per match nor backtrack more than linearly per star: a filter
//! runs on every record a read or a delivery examines.

/// Whether `text` matches `pattern` (see the module doc for the syntax).
pub fn matches(pattern: &str, text: &str) -> bool {
    let Some((first, after_first)) = pattern.split_once('*') else {
        return pattern == text;
    };
    // `after_first` is everything after the first star: the middle parts, then the last.
    let (middles, last) = after_first.rsplit_once('*').unwrap_or(("", after_first));
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    // Leftmost matches of the middle parts are enough: with only `*` as a wildcard, taking
    // the earliest place for each part leaves the most room for the next.
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in middles.split('*') {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Whether `pattern` matches every text (it is nothing but stars), so a filter holding it
/// filters nothing.
pub fn matches_everything(pattern: &str) -> bool {
    !pattern.is_empty() && pattern.bytes().all(|b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_without_a_star_matches_only_the_same_whole_type() {
        assert!(matches("statement.made", "statement.made"));
        assert!(!matches("statement.made", "statement.made2"));
        assert!(!matches("statement.made", "xstatement.made"));
        assert!(!matches("statement", "statement.made"));
        assert!(!matches("Statement.made", "statement.made"));
        assert!(matches("", ""));
        assert!(!matches("", "meeting.held"));
    }

    #[test]
    fn a_trailing_star_matches_any_rest_including_dots_and_nothing() {
        assert!(matches("meeting.*", "meeting.held"));
        assert!(matches("meeting.*", "meeting."));
        assert!(matches("meeting*", "meeting.held"));
        assert!(matches("talks.*", "talks.status.changed"));
        assert!(!matches("meeting.*", "meeting"));
        assert!(!matches("meeting.*", "statement.made"));
    }

    #[test]
    fn a_leading_or_inner_star_matches_like_a_trailing_one() {
        assert!(matches("*.held", "meeting.held"));
        assert!(matches("*.made", "statement.made"));
        assert!(!matches("*.held", "statement.made"));
        assert!(matches("*held", "held"));
        assert!(matches("talks.*_changed", "talks.status_changed"));
        assert!(!matches("talks.*_changed", "talks.status_change"));
        assert!(matches("*.*", "meeting.held"));
        assert!(!matches("*.*", "meeting"));
        assert!(matches("m*g.h*d", "meeting.held"));
    }

    #[test]
    fn stars_match_runs_including_none_and_do_not_overlap_the_fixed_parts() {
        assert!(matches("*", ""));
        assert!(matches("*", "anything.at.all"));
        assert!(matches("**", "meeting.held"));
        assert!(matches("a*a", "aa"));
        assert!(!matches("a*a", "a"));
        assert!(matches("a*b*a", "aba"));
        assert!(!matches("a*b*a", "ab"));
        assert!(matches("*ab*ab*", "abab"));
        assert!(!matches("*ab*ab*", "aba"));
    }

    #[test]
    fn only_an_all_star_pattern_matches_everything() {
        assert!(matches_everything("*"));
        assert!(matches_everything("***"));
        assert!(!matches_everything(""));
        assert!(!matches_everything("*.*"));
        assert!(!matches_everything("meeting.*"));
    }
}
