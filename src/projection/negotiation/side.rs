//! Positions by side (`?group=side` on the negotiation view): each holder's positions under the
//! state or organisation they represent, as the actor registry says at the cut. An actor's
//! next link is its entry's `represents`, else the `of` of its first role in force when the
//! position occurred (roles with `from`/`to`), else the delegation or organisation that lists it
//! among its `members`; the chain is followed until a `state`, or an actor with no such link,
//! which is then the side (an actor that represents nobody is its own side). This module must
//! never invent a link the registry does not state, nor loop on a cycle of links.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::super::actors;
use super::super::asof::{self, Cut};
use super::super::knowledge::Knowledge;
use crate::event::EventKind;

/// Actor entries at the cut, each folded once per view.
struct Registry<'k> {
    k: &'k Knowledge,
    cut: &'k Cut,
    entries: HashMap<String, Option<Value>>,
    /// Member to the groups listing it, in actor id order (built on first need).
    member_of: Option<HashMap<String, Vec<String>>>,
}

impl Registry<'_> {
    fn entry(&mut self, actor: &str) -> Option<Value> {
        if let Some(e) = self.entries.get(actor) {
            return e.clone();
        }
        let e = actors::registration(self.k, self.cut, actor);
        self.entries.insert(actor.to_string(), e.clone());
        e
    }

    /// The groups (delegations, organisations) whose `members` list `actor` at the cut.
    fn groups_of(&mut self, actor: &str) -> Vec<String> {
        if self.member_of.is_none() {
            let mut ids: Vec<String> = [EventKind::ActorRegistered, EventKind::ActorUpdated]
                .iter()
                .flat_map(|kind| self.k.of_kind(*kind).iter().copied())
                .filter(|&ix| self.k.visible(ix, self.cut.seq))
                .filter_map(|ix| {
                    self.k.data_at(ix, self.cut.seq)["actor_id"]
                        .as_str()
                        .map(str::to_string)
                })
                .collect();
            ids.sort_unstable();
            ids.dedup();
            let mut map: HashMap<String, Vec<String>> = HashMap::new();
            for id in ids {
                let members = self.entry(&id).and_then(|e| e.get("members").cloned());
                for m in members
                    .as_ref()
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(m) = m.as_str() {
                        map.entry(m.to_string()).or_default().push(id.clone());
                    }
                }
            }
            self.member_of = Some(map);
        }
        self.member_of
            .as_ref()
            .and_then(|m| m.get(actor).cloned())
            .unwrap_or_default()
    }

    /// The actor `actor` speaks for at time `at` (`None`: it is a side itself).
    fn next(&mut self, actor: &str, at: Option<&str>) -> Option<String> {
        let entry = self.entry(actor);
        let field = |f: &str| entry.as_ref().and_then(|e| e.get(f));
        if field("kind").and_then(Value::as_str) == Some("state") {
            return None;
        }
        if let Some(r) = field("represents").and_then(Value::as_str) {
            return Some(r.to_string());
        }
        let in_force = |role: &&Value| {
            let bound = |f: &str| role.get(f).and_then(Value::as_str);
            match at {
                None => true,
                Some(t) => {
                    bound("from").is_none_or(|from| asof::not_after(from, t))
                        && bound("to").is_none_or(|to| asof::not_after(t, to))
                }
            }
        };
        let role_of = field("roles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(in_force)
            .find_map(|r| r.get("of").and_then(Value::as_str));
        if let Some(of) = role_of {
            return Some(of.to_string());
        }
        self.groups_of(actor).into_iter().next()
    }

    /// The side of `actor` at `at`, with the chain of actors that leads to it (first `actor`,
    /// last the side).
    fn side(&mut self, actor: &str, at: Option<&str>) -> Vec<String> {
        let mut chain = vec![actor.to_string()];
        while let Some(next) = chain.last().and_then(|a| self.next(&a.clone(), at)) {
            if chain.contains(&next) {
                break;
            }
            chain.push(next);
        }
        chain
    }

    fn name(&mut self, actor: &str) -> Value {
        self.entry(actor)
            .and_then(|e| e.get("name").cloned())
            .unwrap_or(Value::Null)
    }
}

/// A holder's positions under one side: the chain that leads there, and per issue the
/// positions (each a view's position object, as in `positions`).
type Holder = (Vec<String>, BTreeMap<String, (Value, Vec<Value>)>);

/// `positions_by_side`: the `positions` groups (holder × issue) regrouped by side, then holder,
/// then issue. A position's side is decided at the time it occurred.
pub(super) fn group(k: &Knowledge, cut: &Cut, positions: &[Value]) -> Value {
    let mut registry = Registry {
        k,
        cut,
        entries: HashMap::new(),
        member_of: None,
    };
    let mut sides: BTreeMap<String, BTreeMap<String, Holder>> = BTreeMap::new();
    for g in positions {
        let (Some(holder), Some(issue)) = (g["holder"].as_str(), g["issue"].as_str()) else {
            continue;
        };
        for p in g["positions"].as_array().into_iter().flatten() {
            let occurred = p["event_id"]
                .as_str()
                .and_then(|id| k.by_id(id))
                .map(|ix| k.occurred(ix))
                .unwrap_or(Value::Null);
            let chain = registry.side(holder, asof::earliest(&occurred));
            let side = chain.last().cloned().unwrap_or_else(|| holder.to_string());
            let (_, issues) = sides
                .entry(side)
                .or_default()
                .entry(holder.to_string())
                .or_insert_with(|| (chain, BTreeMap::new()));
            issues
                .entry(issue.to_string())
                .or_insert_with(|| (g["issue_label"].clone(), Vec::new()))
                .1
                .push(p.clone());
        }
    }
    let list: Vec<Value> = sides
        .into_iter()
        .map(|(side, holders)| {
            let holders: Vec<Value> = holders
                .into_iter()
                .map(|(holder, (chain, issues))| {
                    json!({
                        "holder": holder,
                        "name": registry.name(&holder),
                        "via": chain,
                        "issues": issues.into_iter().map(|(issue, (label, positions))| json!({
                            "issue": issue,
                            "issue_label": label,
                            "positions": positions,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({
                "side": side,
                "name": registry.name(&side),
                "holders": holders,
            })
        })
        .collect();
    Value::Array(list)
}
