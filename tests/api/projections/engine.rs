//! The engine in-process, over a temp folder: for random valid event sequences, the state
//! built incrementally (with restarts, graceful or crash-like, at random points) equals the
//! state a full rebuild folds from seq 1.

use annals::log::{Log, NewEvent};
use annals::metrics::Metrics;
use annals::projection::{self, Engine, ProjectionConfig};
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

use super::inproc::{append, caught_up, event, full_fold, open};

#[derive(Debug, Clone)]
pub(super) enum Op {
    Statement(u8, u8),
    Position(u8, u8),
    Meeting(u8),
    Correct(u8, u8),
    Retract(u8),
    Assess(u8),
    Withdraw,
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, any::<u8>()).prop_map(|(a, b)| Op::Statement(a, b)),
        2 => (0u8..3, 0u8..3).prop_map(|(a, b)| Op::Position(a, b)),
        2 => (1u8..28).prop_map(Op::Meeting),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Correct(a, b)),
        1 => any::<u8>().prop_map(Op::Retract),
        1 => (0u8..6).prop_map(Op::Assess),
        1 => Just(Op::Withdraw),
    ]
}

const ACTORS: [&str; 3] = ["actor:a", "actor:b", "actor:c"];
pub(super) const SOURCES: [&str; 2] = ["src:one", "src:two"];
const STANCES: [&str; 3] = ["demand", "reject", "accept"];
const GRADES: [&str; 6] = ["A", "B", "C", "D", "E", "F"];

fn evidence(n: u8) -> Value {
    json!([
        {"source": SOURCES[(n % 2) as usize], "relation": "reports", "credibility": 2},
        {"source": "src:two", "relation": "reports", "attribution": ["org:wire"]}
    ])
}

/// The events of an op; facts (for corrections and retractions to target) are remembered.
pub(super) fn events_of(op: &Op, facts: &mut Vec<Uuid>, n: usize) -> Vec<NewEvent> {
    let mut e = match op {
        Op::Statement(a, b) => event(
            "statement.made",
            json!({"statement_id": format!("statement:s{n}"), "speaker": ACTORS[*a as usize],
                   "content": format!("said {b}")}),
            evidence(*b),
        ),
        Op::Position(a, s) => event(
            "position.stated",
            json!({"position_id": format!("position:p{n}"), "holder": ACTORS[*a as usize],
                   "issue": "issue:land", "stance": STANCES[*s as usize],
                   "object": "land"}),
            evidence(*s),
        ),
        Op::Meeting(d) => event(
            "meeting.held",
            json!({"meeting_id": format!("meeting:m{}", d % 3), "location": {"name": "X"},
                   "participants": [{"actor": "actor:a", "side": "actor:a"}],
                   "duration": format!("PT{d}H")}),
            evidence(*d),
        ),
        Op::Correct(t, c) if !facts.is_empty() => {
            let target = facts[*t as usize % facts.len()];
            return vec![event(
                "event.corrected",
                json!({"target": target, "reason": "fix",
                       "patch": [{"op": "add", "path": "/note", "value": format!("c{c}")}]}),
                json!([]),
            )];
        }
        Op::Retract(t) if !facts.is_empty() => {
            let target = facts[*t as usize % facts.len()];
            return vec![event(
                "event.retracted",
                json!({"target": target, "reason": "wrong"}),
                json!([]),
            )];
        }
        Op::Assess(g) => {
            return vec![event(
                "source.assessed",
                json!({"source_id": "src:one", "grade": GRADES[*g as usize],
                       "basis": "track record"}),
                json!([]),
            )];
        }
        Op::Withdraw => {
            return vec![event(
                "source.withdrawn",
                json!({"source_id": "src:two"}),
                json!([]),
            )];
        }
        _ => return vec![],
    };
    e.occurred = occurred(n).into();
    facts.push(e.id);
    vec![e]
}

/// A fact's `occurred`, of every precision in turn: exact times in several forms (which the
/// compact rows keep as a shape and its digits), and texts they keep whole (no digit, or more
/// than one number holds).
fn occurred(n: usize) -> Value {
    let start = format!("2026-01-{:02}", 20 + n % 5);
    match n % 6 {
        0 => json!({"start": start, "precision": "day"}),
        1 => json!({"start": format!("{start}T09:{:02}:00Z", n % 60), "precision": "exact"}),
        2 => json!({"start": format!("{start}T23:15:0{}.250-05:00", n % 10), "precision": "exact"}),
        3 => json!({"start": format!("{start}T09:00:00.125+03:00"),
                    "end": format!("{start}T11:{:02}:00.125+03:00", n % 60),
                    "precision": "interval"}),
        4 => json!({"start": "2026-01", "precision": "month"}),
        _ => json!({"precision": "unknown"}),
    }
}

fn config() -> ProjectionConfig {
    ProjectionConfig {
        checkpoint_every_events: 3,
        checkpoint_every_ms: 60_000,
        batch_events: 4,
        ..annals::Config::defaults().unwrap().projections
    }
}

async fn close(engine: Engine, log: Log, crash: bool) {
    if crash {
        engine.halt().await;
    } else {
        engine.shutdown().await;
    }
    log.close().await;
    drop(engine);
}

async fn run(ops: Vec<Op>, restarts: Vec<(usize, bool)>) -> (Value, Value, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let mut engine = Engine::start(log.clone(), config(), &Metrics::new().unwrap()).unwrap();
    let mut facts = Vec::new();
    let mut stream_events = Vec::new();
    for s in SOURCES {
        stream_events.push(event(
            "source.registered",
            json!({"source_id": s, "kind": "wire", "publisher": s,
                   "reliability": {"grade": "C", "basis": "unknown"}}),
            json!([]),
        ));
    }
    append(&log, "registry/sources", stream_events).await;
    for (i, op) in ops.iter().enumerate() {
        let events = events_of(op, &mut facts, i);
        if !events.is_empty() {
            append(&log, "process/p", events).await;
        }
        for &(at, crash) in &restarts {
            if at == i {
                if !crash {
                    caught_up(&engine, &log).await;
                }
                close(engine, log, crash).await;
                log = open(dir.path());
                engine = Engine::start(log.clone(), config(), &Metrics::new().unwrap()).unwrap();
            }
        }
    }
    caught_up(&engine, &log).await;
    let incremental = engine.read(projection::all_views);
    let facts_equal = engine.read(|k| {
        let fresh = full_fold(&log);
        assert_eq!(k.facts(), fresh.facts());
        k.seq
    });
    let rebuilt = projection::all_views(&full_fold(&log));
    close(engine, log, false).await;
    (incremental, rebuilt, facts_equal)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn incremental_folding_with_restarts_equals_a_full_rebuild(
        ops in prop::collection::vec(op(), 1..24),
        restarts in prop::collection::vec((0usize..24, any::<bool>()), 0..3),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (incremental, rebuilt, seq) = rt.block_on(run(ops, restarts));
        prop_assert!(seq >= 2);
        prop_assert_eq!(incremental, rebuilt);
    }
}
