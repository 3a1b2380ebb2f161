//! The `calendar` read model: meetings held (who, where, when, how long, at the date precision
//! they were recorded with) and talks scheduled, with their fate (held, postponed, cancelled,
//! overdue). Computed at query time from the knowledge layer, so corrections and as-of cuts
//! apply for free; a talks entry's meetings and status changes come from the index by talks id,
//! so its fate costs what it shows. Each meeting, talks and status change carries its evidence summary and
//! inferred pointers (`evidence.rs`). This module must never write anything or guess a date finer than recorded.

use serde_json::{Value, json};

use super::asof::{self, Cut};
use super::evidence::Trust;
use super::knowledge::{Ix, Knowledge};
use crate::event::EventKind;

/// The name of this projection in routes and status.
pub const NAME: &str = "calendar";

/// The visible facts of a type at the cut, optionally of one process, that may have occurred
/// by `valid_at`.
pub(crate) fn facts_of<'k>(
    k: &'k Knowledge,
    cut: &'k Cut,
    kind: EventKind,
    process: Option<&'k str>,
) -> impl Iterator<Item = Ix> + 'k {
    // Facts are indexed in seq order: those recorded after the cut are cut off by a binary
    // search rather than filtered one by one. One process's facts are walked in the process's
    // own index, so what they cost does not grow with the other processes.
    let of_kind = match process {
        Some(_) => &[][..],
        None => k.of_kind(kind),
    };
    let of_kind = &of_kind[..of_kind.partition_point(|&ix| k.seq_of(ix) <= cut.seq)];
    let of_process = process.into_iter().flat_map(|p| k.of_process(p, cut.seq));
    of_process
        .chain(of_kind.iter().copied())
        .filter(move |&ix| {
            (process.is_none() || k.fact(ix).event_kind() == Some(kind))
                && k.visible(ix, cut.seq)
                && asof::occurred_by(cut, &k.occurred(ix))
        })
}

/// The facts of a type among `about` (a talks entry's, [`Knowledge::about_talks`]) that are
/// visible at the cut and may have occurred by `valid_at`, in seq order.
fn of_talks<'a>(
    k: &'a Knowledge,
    cut: &'a Cut,
    about: &'a [Ix],
    kind: EventKind,
) -> impl Iterator<Item = Ix> + 'a {
    let known = about.partition_point(|&ix| k.seq_of(ix) <= cut.seq);
    about[..known].iter().copied().filter(move |&ix| {
        k.fact(ix).event_kind() == Some(kind)
            && k.visible(ix, cut.seq)
            && asof::occurred_by(cut, &k.occurred(ix))
    })
}

/// A meeting as the calendar shows it.
pub fn meeting_json(k: &Knowledge, ix: Ix, cut: &Cut, trust: &Trust<'_>) -> Value {
    let d = k.data_at(ix, cut.seq);
    let occurred = k.occurred(ix);
    let f = k.fact(ix);
    let meeting = json!({
        "meeting_id": d.get("meeting_id"),
        "title": d.get("title"),
        "process": f.process(),
        "when": asof::when(&occurred),
        "location": d.get("location"),
        "format": d.get("format"),
        "participants": d.get("participants").cloned().unwrap_or(json!([])),
        "duration": d.get("duration"),
        "duration_approx": d.get("duration_approx"),
        "time_of_day_note": d.get("time_of_day_note"),
        "issues": d.get("issues"),
        "outcomes": d.get("outcomes"),
        "fulfils": d.get("fulfils"),
        "event_id": f.id(),
        "seq": f.seq,
    });
    trust.stamp(ix, meeting)
}

/// Announced talks with their fate at the cut.
pub fn talks_json(k: &Knowledge, ix: Ix, cut: &Cut, trust: &Trust<'_>) -> Value {
    let d = k.data_at(ix, cut.seq);
    let f = k.fact(ix);
    let id = d.get("talks_id").and_then(Value::as_str).unwrap_or("");
    let mut planned = d.get("planned").cloned().unwrap_or(Value::Null);
    let mut location = d.get("location").cloned().unwrap_or(Value::Null);
    let mut history = Vec::new();
    let mut last_status: Option<String> = None;
    // Only the facts indexed under these talks, not every meeting and status change of the
    // log: what a talks entry costs is what it shows.
    let about = k.about_talks(id);
    for c in of_talks(k, cut, &about, EventKind::TalksStatusChanged) {
        let cd = k.data_at(c, cut.seq);
        if cd.get("talks_id").and_then(Value::as_str) != Some(id) {
            continue;
        }
        if let Some(p) = cd.get("planned") {
            planned = p.clone();
        }
        if let Some(l) = cd.get("location") {
            location = l.clone();
        }
        last_status = cd.get("status").and_then(Value::as_str).map(str::to_string);
        history.push(trust.stamp(
            c,
            json!({
                "status": cd.get("status"),
                "reason": cd.get("reason"),
                "planned": cd.get("planned"),
                "event_id": k.fact(c).id(),
                "seq": k.seq_of(c),
            }),
        ));
    }
    let held_by = of_talks(k, cut, &about, EventKind::MeetingHeld).find_map(|m| {
        let md = k.data_at(m, cut.seq);
        (md.get("fulfils").and_then(Value::as_str) == Some(id))
            .then(|| md.get("meeting_id").cloned().unwrap_or(Value::Null))
    });
    let until = planned
        .get("end")
        .or_else(|| planned.get("start"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let fate = if held_by.is_some() {
        "held"
    } else {
        match last_status.as_deref() {
            Some("cancelled") => "cancelled",
            Some("postponed") => "postponed",
            _ if !until.is_empty() && !asof::not_after(&cut.today, until) => "overdue",
            Some("confirmed") => "confirmed",
            Some("relocated") => "relocated",
            _ => "scheduled",
        }
    };
    let talks = json!({
        "talks_id": id,
        "title": d.get("title"),
        "process": f.process(),
        "parties": d.get("parties"),
        "planned": planned,
        "location": location,
        "format": d.get("format"),
        "tracks": d.get("tracks").cloned().unwrap_or(json!([])),
        "issues": d.get("issues"),
        "announced_by": d.get("announced_by"),
        "fate": fate,
        "held_by": held_by,
        "status_history": history,
        "event_id": f.id(),
        "seq": f.seq,
    });
    trust.stamp(ix, talks)
}

/// Meetings by when they occurred, then talks by planned start.
pub fn view(k: &Knowledge, cut: &Cut, process: Option<&str>) -> Value {
    let trust = Trust::new(k, cut);
    let mut meetings: Vec<(String, u64, Value)> = facts_of(k, cut, EventKind::MeetingHeld, process)
        .map(|ix| {
            (
                asof::sort_key(&k.occurred(ix)),
                k.seq_of(ix),
                meeting_json(k, ix, cut, &trust),
            )
        })
        .collect();
    meetings.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut talks: Vec<(String, u64, Value)> = facts_of(k, cut, EventKind::TalksScheduled, process)
        .map(|ix| {
            let t = talks_json(k, ix, cut, &trust);
            let start = t["planned"]["start"].as_str().unwrap_or("~").to_string();
            (start, k.seq_of(ix), t)
        })
        .collect();
    talks.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    json!({
        "meetings": meetings.into_iter().map(|m| m.2).collect::<Vec<_>>(),
        "talks": talks.into_iter().map(|t| t.2).collect::<Vec<_>>(),
    })
}
