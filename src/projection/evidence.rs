//! How far to trust a fact, as known at a cut: the evidence summary every fact object of every
//! view carries (`evidence`: its items with the Admiralty pair, the distinct originators, the
//! best pair, whether an independent originator corroborates it) and what the coder inferred
//! (`inferred`: the record's `meta.inferred` pointers as corrections change them). It holds the
//! one rule of independence: the originator of an evidence item is the last link of its
//! attribution chain, or the source itself when the source asserts on its own account, so ten
//! rewrites of one wire story are one originator. Grades and withdrawals are looked up as of
//! the cut, once per source per view. This module must never copy a grade into a fact, never
//! keep a record (it reads it through the record cache for the fact it stamps), and never
//! count a withdrawn source's originator.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::asof::Cut;
use super::fact::Role;
use super::knowledge::{Ix, Knowledge};
use super::records;
use super::sources;
use crate::event::EventKind;

/// The credibility an item that states none gets: "truth cannot be judged".
const NO_CREDIBILITY: u64 = 6;

/// The reliability letter of a source that was never graded: "cannot be judged".
const NO_GRADE: &str = "F";

/// Who an evidence item's claim comes from: the end of its attribution chain, else the source
/// itself (an empty chain means the outlet asserts, as an absent one does).
pub fn originator(item: &Value) -> Option<String> {
    item.get("attribution")
        .and_then(Value::as_array)
        .and_then(|a| a.last())
        .and_then(Value::as_str)
        .or_else(|| item.get("source").and_then(Value::as_str))
        .map(str::to_string)
}

/// A source as known at a cut: its reliability letter (the latest grade) and whether it was
/// withdrawn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    /// The latest reliability letter, if the source was ever graded.
    pub grade: Option<String>,
    /// Whether a withdrawal of the source is in force.
    pub withdrawn: bool,
}

/// The evidence summaries of one view, at one cut: sources are looked up once per view, so a
/// view that shows many facts citing one source pays for that source once.
pub struct Trust<'k> {
    k: &'k Knowledge,
    cut: &'k Cut,
    standings: RefCell<HashMap<String, Standing>>,
    /// Per source, the facts about it (registration, updates, grades, corrections,
    /// withdrawals) known at the cut, in seq order: built on first need from the type
    /// indexes, so a source cited by millions of facts costs a view what the registry holds,
    /// not what cites it.
    about: RefCell<Option<HashMap<String, Vec<Ix>>>>,
}

/// The part of a record this module reads beyond the fact's spans: `meta`.
#[derive(Deserialize)]
struct Parts<'a> {
    #[serde(borrow, default)]
    meta: Option<&'a RawValue>,
}

impl<'k> Trust<'k> {
    /// The summaries of a view of `k` at `cut`.
    pub fn new(k: &'k Knowledge, cut: &'k Cut) -> Trust<'k> {
        Trust {
            k,
            cut,
            standings: RefCell::new(HashMap::new()),
            about: RefCell::new(None),
        }
    }

    /// A source's standing at the cut (computed once per view).
    pub fn standing(&self, source: &str) -> Standing {
        if let Some(s) = self.standings.borrow().get(source) {
            return s.clone();
        }
        let about = self.about_source(source);
        let s = sources::standing(self.k, self.cut, source, &about);
        self.standings
            .borrow_mut()
            .insert(source.to_string(), s.clone());
        s
    }

    /// The facts about `source` known at the cut, in seq order.
    fn about_source(&self, source: &str) -> Vec<Ix> {
        let mut about = self.about.borrow_mut();
        let map = about.get_or_insert_with(|| {
            let mut map: HashMap<String, Vec<Ix>> = HashMap::new();
            for kind in EventKind::ALL.iter().filter(|kind| kind.is_about_source()) {
                let all = self.k.of_kind(*kind);
                let known = all.partition_point(|&ix| self.k.seq_of(ix) <= self.cut.seq);
                for &ix in &all[..known] {
                    for (role, s) in self.k.fact(ix).refs() {
                        if role == Role::Source {
                            map.entry(s.to_string()).or_default().push(ix);
                        }
                    }
                }
            }
            for list in map.values_mut() {
                list.sort_unstable_by_key(|&ix| self.k.seq_of(ix));
                list.dedup();
            }
            map
        });
        map.get(source).cloned().unwrap_or_default()
    }

    /// One evidence item as the views show it: the item's own fields, its originator, the
    /// source's grade at the cut, the Admiralty pair, and whether the source was withdrawn.
    pub fn item(&self, item: &Value) -> Value {
        let source = item.get("source").and_then(Value::as_str).unwrap_or("");
        let standing = self.standing(source);
        let credibility = item.get("credibility").and_then(Value::as_u64);
        let mut out = Map::new();
        out.insert("source".into(), json!(source));
        out.insert("relation".into(), json!(item.get("relation")));
        out.insert(
            "attribution".into(),
            item.get("attribution").cloned().unwrap_or(json!([])),
        );
        out.insert("originator".into(), json!(originator(item)));
        if let Some(q) = item.get("quote") {
            out.insert("quote".into(), q.clone());
        }
        out.insert("credibility".into(), json!(credibility));
        out.insert("grade".into(), json!(standing.grade));
        out.insert(
            "admiralty".into(),
            json!(admiralty(standing.grade.as_deref(), credibility)),
        );
        out.insert("withdrawn".into(), json!(standing.withdrawn));
        Value::Object(out)
    }

    /// The summary of an `evidence` array (as recorded): its items, the distinct originators
    /// of the items whose source stands, their count, whether there are two or more, and the
    /// best Admiralty pair among those items.
    pub fn summary_of(&self, evidence: &Value) -> Value {
        let items: Vec<Value> = evidence
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| self.item(i))
            .collect();
        let standing: Vec<&Value> = items.iter().filter(|i| i["withdrawn"] != true).collect();
        let mut originators: Vec<&str> = Vec::new();
        for o in standing.iter().filter_map(|i| i["originator"].as_str()) {
            if !originators.contains(&o) {
                originators.push(o);
            }
        }
        let best = standing
            .iter()
            .filter_map(|i| i["admiralty"].as_str())
            .min_by_key(|pair| pair_key(pair));
        json!({
            "items": items,
            "originators": originators,
            "admiralty": best,
            "corroborated": originators.len() >= 2,
            "independent_originators": originators.len(),
        })
    }

    /// The evidence summary of a fact at the cut.
    pub fn evidence(&self, ix: Ix) -> Value {
        self.summary_of(&parts(self.k, ix).0)
    }

    /// The JSON pointers (into the event) the coder inferred, as known at the cut: the
    /// record's `meta.inferred`, where each correction in force drops the pointers its patch
    /// writes over (the corrected value is a new coding) and adds, as pointers into the
    /// corrected event, those its own `meta.inferred` lists under a patch operation's `value`.
    pub fn inferred(&self, ix: Ix) -> Value {
        self.inferred_from(ix, &parts(self.k, ix).1)
    }

    /// [`Trust::inferred`] from the fact's own `meta`, already read.
    fn inferred_from(&self, ix: Ix, meta: &Value) -> Value {
        let mut out: Vec<String> = pointers(meta);
        for c in self.k.corrections_at(ix, self.cut.seq) {
            let correction = self.k.raw_data(c);
            let ops = correction
                .get("patch")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for op in &ops {
                let Some(path) = op.get("path").and_then(Value::as_str) else {
                    continue;
                };
                let written = format!("/data{path}");
                out.retain(|p| !under(p, &written));
                if op.get("op").and_then(Value::as_str) == Some("move")
                    && let Some(from) = op.get("from").and_then(Value::as_str)
                {
                    let moved = format!("/data{from}");
                    out.retain(|p| !under(p, &moved));
                }
            }
            for p in pointers(&parts(self.k, c).1) {
                if let Some(mapped) = into_target(&p, &ops)
                    && !out.contains(&mapped)
                {
                    out.push(mapped);
                }
            }
        }
        json!(out)
    }

    /// Puts `evidence` and `inferred` of the fact `ix` on a view's object for it.
    pub fn stamp(&self, ix: Ix, mut v: Value) -> Value {
        if let Some(o) = v.as_object_mut() {
            // One read of the record for both.
            let (evidence, meta) = parts(self.k, ix);
            o.insert("evidence".into(), self.summary_of(&evidence));
            o.insert("inferred".into(), self.inferred_from(ix, &meta));
        }
        v
    }

    /// [`Trust::stamp`] for the fact with this seq, if the knowledge holds it.
    pub fn stamp_seq(&self, seq: u64, v: Value) -> Value {
        match self.k.ix_of_seq(seq) {
            Some(ix) => self.stamp(ix, v),
            None => v,
        }
    }
}

/// The Admiralty pair: the source's letter (F when never graded) and the item's credibility
/// (6 when it states none).
pub fn admiralty(grade: Option<&str>, credibility: Option<u64>) -> String {
    format!(
        "{}{}",
        grade.unwrap_or(NO_GRADE),
        credibility.unwrap_or(NO_CREDIBILITY)
    )
}

/// Orders pairs best first: the letter, then the number (A1 is best).
fn pair_key(pair: &str) -> (String, u64) {
    let letter: String = pair.chars().take_while(|c| !c.is_ascii_digit()).collect();
    let number = pair[letter.len()..].parse().unwrap_or(u64::MAX);
    (letter, number)
}

/// The evidence (as recorded) and the `meta` object (`Null` when absent) of a fact's record,
/// in one read and one pass. A record that cannot be read, or is not the fact's, counts as a
/// failed read: the view is refused, never shown with a field missing.
fn parts(k: &Knowledge, ix: Ix) -> (Value, Value) {
    let f = k.fact(ix);
    let Some(record) = k.records().get(f.seq) else {
        return (Value::Null, Value::Null);
    };
    let parsed = serde_json::from_slice::<Parts>(&record).ok().and_then(|p| {
        // Read through the fact's own span, as every view reads it (which also checks that
        // the record is the fact's).
        let evidence = serde_json::from_str(f.evidence_in(&record)?).ok()?;
        let meta = match p.meta {
            Some(raw) => serde_json::from_str(raw.get()).ok()?,
            None => Value::Null,
        };
        Some((evidence, meta))
    });
    parsed.unwrap_or_else(|| {
        records::read_failed();
        (Value::Null, Value::Null)
    })
}

/// The `inferred` pointers of a `meta` object.
fn pointers(meta: &Value) -> Vec<String> {
    meta.get("inferred")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// Whether pointer `p` is `at` or below it.
fn under(p: &str, at: &str) -> bool {
    p == at || p.strip_prefix(at).is_some_and(|rest| rest.starts_with('/'))
}

/// A correction's inferred pointer under `/data/patch/{n}/value`, as a pointer into the
/// corrected event (`/data` + that operation's `path` + the rest); `None` for any other.
fn into_target(p: &str, ops: &[Value]) -> Option<String> {
    let rest = p.strip_prefix("/data/patch/")?;
    let (n, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let rest = rest.strip_prefix("value")?;
    if !rest.is_empty() && !rest.starts_with('/') {
        return None;
    }
    let path = ops.get(n.parse::<usize>().ok()?)?.get("path")?.as_str()?;
    Some(format!("/data{path}{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of `kind` at `seq` with `data`, citing `cites`.
    fn record(seq: u64, kind: &str, data: Value, cites: &str) -> Vec<u8> {
        let id = uuid::Uuid::now_v7();
        let evidence = if cites.is_empty() {
            json!([])
        } else {
            json!([{"source": cites, "relation": "reports", "credibility": 2}])
        };
        format!(
            r#"{{"id":"{id}","seq":{seq},"stream":"s","version":{seq},"type":"{kind}","schema_version":1,"recorded_at":"2026-01-01T00:00:00.000000Z","recorded_by":"t","occurred":{{"precision":"unknown"}},"data":{data},"evidence":{evidence},"prev_hash":"00"}}"#
        )
        .into_bytes()
    }

    /// A view looks a source up among the facts about it only (not every fact citing it), and
    /// must find what the walk of every citing fact finds, at every cut.
    #[test]
    fn a_source_s_standing_from_the_facts_about_it_is_the_one_every_citation_gives() {
        let mut k = Knowledge::new();
        let mut seq = 0;
        let mut add = |k: &mut Knowledge, kind: &str, data: Value, cites: &str| {
            seq += 1;
            k.apply(seq, &record(seq, kind, data, cites)).unwrap();
        };
        for src in ["src:a", "src:b"] {
            add(
                &mut k,
                "source.registered",
                json!({"source_id": src, "kind": "wire", "reliability": {"grade": "B", "basis": "b"}}),
                "",
            );
        }
        for i in 0..20 {
            let content = format!("c{i}");
            add(
                &mut k,
                "statement.made",
                json!({"speaker": "actor:x", "content": content}),
                if i % 2 == 0 { "src:a" } else { "src:b" },
            );
            match i {
                5 => add(
                    &mut k,
                    "source.assessed",
                    json!({"source_id": "src:a", "grade": "D", "basis": "b"}),
                    "src:b",
                ),
                12 => add(
                    &mut k,
                    "source.withdrawn",
                    json!({"source_id": "src:b"}),
                    "src:a",
                ),
                _ => {}
            }
        }
        for at in 0..=seq {
            let cut = Cut {
                seq: at,
                valid_at: None,
                today: "2026-01-01".into(),
            };
            let trust = Trust::new(&k, &cut);
            for src in ["src:a", "src:b"] {
                let everything = k.of_source(src);
                assert_eq!(
                    trust.standing(src),
                    sources::standing(&k, &cut, src, &everything),
                    "{src} at {at}"
                );
            }
        }
        let cut = Cut {
            seq,
            valid_at: None,
            today: "2026-01-01".into(),
        };
        let trust = Trust::new(&k, &cut);
        let (a, b) = (trust.standing("src:a"), trust.standing("src:b"));
        assert_eq!((a.grade.as_deref(), a.withdrawn), (Some("D"), false));
        assert_eq!((b.grade.as_deref(), b.withdrawn), (Some("B"), true));
    }

    #[test]
    fn the_originator_is_the_last_link_of_the_chain_else_the_source() {
        let chain = json!({"source": "src:tass", "attribution": ["org:media", "actor:russia"]});
        assert_eq!(originator(&chain).as_deref(), Some("actor:russia"));
        let own = json!({"source": "src:tass", "attribution": []});
        assert_eq!(originator(&own).as_deref(), Some("src:tass"));
        let absent = json!({"source": "src:tass"});
        assert_eq!(originator(&absent).as_deref(), Some("src:tass"));
    }

    #[test]
    fn pairs_order_by_letter_then_number_with_a1_best() {
        let mut pairs = vec!["B2", "A6", "F1", "A1", "B1"];
        pairs.sort_by_key(|p| pair_key(p));
        assert_eq!(pairs, ["A1", "A6", "B1", "B2", "F1"]);
        assert_eq!(admiralty(None, None), "F6");
        assert_eq!(admiralty(Some("C"), Some(3)), "C3");
    }

    #[test]
    fn a_correction_s_inferred_value_points_into_the_corrected_event() {
        let ops = vec![json!({"op": "replace", "path": "/target", "value": "x"})];
        assert_eq!(
            into_target("/data/patch/0/value", &ops).as_deref(),
            Some("/data/target")
        );
        assert_eq!(
            into_target("/data/patch/0/value/a", &ops).as_deref(),
            Some("/data/target/a")
        );
        assert_eq!(into_target("/data/patch/1/value", &ops), None);
        assert_eq!(into_target("/data/reason", &ops), None);
        assert!(under("/data/target/a", "/data/target"));
        assert!(!under("/data/targets", "/data/target"));
    }
}
