// A fact's date as a span of days at its recorded precision: a day is one day, a month is its
// month, an interval runs to the end of its last day, an unknown date is the span between its
// bounds. Never narrows a coarse date to a day, and never invents a bound it was not given.

const DAY = 86400000;

/** Milliseconds (UTC) of the start of a date given as YYYY, YYYY-MM, YYYY-MM-DD or RFC 3339. */
export function startOf(text) {
  if (!text) return null;
  const m = /^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?/.exec(text);
  if (!m) return null;
  return Date.UTC(+m[1], m[2] ? +m[2] - 1 : 0, m[3] ? +m[3] : 1);
}

/** Milliseconds (UTC) just past the end of the period a date names. */
export function endOf(text) {
  if (!text) return null;
  const m = /^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?/.exec(text);
  if (!m) return null;
  if (m[3]) return Date.UTC(+m[1], +m[2] - 1, +m[3] + 1);
  if (m[2]) return Date.UTC(+m[1], +m[2], 1);
  return Date.UTC(+m[1] + 1, 0, 1);
}

/**
 * The span of a view's `when` ({precision, start, end?, not_before?, not_after?}) or a talks'
 * `planned` ({start, end?}): `{from, to, open, day}` in ms, `open` naming a side with no
 * bound, `day` true only when the fact is known to the day. Null when nothing bounds it.
 */
export function span(when) {
  if (!when) return null;
  const p = when.precision;
  let from = null;
  let to = null;
  if (p === "unknown") {
    from = startOf(when.not_before);
    to = endOf(when.not_after);
  } else {
    from = startOf(when.start);
    to = endOf(when.end || when.start);
    if (from === null) {
      from = startOf(when.not_before);
      to = endOf(when.not_after);
    }
  }
  if (from === null && to === null) return null;
  const open = from === null ? "start" : to === null ? "end" : null;
  const day = open === null && to - from <= DAY;
  return { from, to, open, day };
}

/** The date as the record gives it, in words, at its precision. */
export function label(when) {
  if (!when) return "date unknown";
  const p = when.precision;
  if (p === "unknown" || (!when.start && (when.not_before || when.not_after))) {
    const a = when.not_before ? `not before ${when.not_before}` : "";
    const b = when.not_after ? `not after ${when.not_after}` : "";
    const guess = when.start ? ` (best guess ${when.start})` : "";
    return [a, b].filter(Boolean).join(", ") + guess || "date unknown";
  }
  if (when.end && when.end !== when.start) return `${when.start} to ${when.end}`;
  return when.start || "date unknown";
}

export { DAY };
