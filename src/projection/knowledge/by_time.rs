//! One actor's facts in the actor view's order (when they occurred, then seq), built the first
//! time a view asks for that actor and kept in order as facts fold, so a page costs what it
//! shows. It must never parse a record: it orders by the facts' own `occurred`.

use std::sync::{Arc, RwLock};

use rustc_hash::FxHashMap;
use serde_json::Value;

use super::super::asof;
use super::compact::FactStore;
use super::{Ix, Knowledge};

/// One actor's facts as the actor view walks and counts them: each fact once, in the view's
/// order (by when it occurred, [`asof::sort_key`], then seq) and in seq order, and the few
/// whose listing needs a closer look (ever corrected or retracted, or a registration). Every
/// other fact is listed exactly when it is known at the cut, so counting them is a binary
/// search: a page costs what it shows, not what the actor holds.
#[derive(Debug, Clone, Default)]
pub struct ActorOrder {
    /// Each fact once, in the view's order.
    pub by_time: Vec<Ix>,
    /// Each fact once, ascending (seq order).
    pub(super) by_ix: Vec<Ix>,
    /// The facts (ascending) a count must check one by one.
    pub(super) special: Vec<Ix>,
}

impl ActorOrder {
    /// How many of the actor's facts are listed at `cut` (a seq), where `listed` tells for
    /// the facts that need a look. Without `valid_at` only: a date cut must look at each.
    pub fn count(&self, k: &Knowledge, cut: u64, listed: impl Fn(Ix) -> bool) -> usize {
        let cut_ix = k.store.count_upto(cut) as Ix;
        let known = self.by_ix.partition_point(|&i| i < cut_ix);
        let special_known = self.special.partition_point(|&i| i < cut_ix);
        let special_listed = self.special[..special_known]
            .iter()
            .filter(|&&ix| listed(ix))
            .count();
        known - special_known + special_listed
    }
}

/// Inserts `ix` into an ascending list if it is not there yet.
pub(super) fn insert_sorted(list: &mut Vec<Ix>, ix: Ix) {
    if let Err(at) = list.binary_search(&ix) {
        list.insert(at, ix);
    }
}

/// Per actor, their [`ActorOrder`]. Built the first time a view asks for an actor (one parse
/// of each of their facts' `occurred`), then kept as facts are folded (a fact that occurred
/// last, the usual case, is pushed at the end), so a page of the view costs what it shows.
/// Built only on demand: a fold or a save load pays nothing for it, and only actors someone
/// looks at hold one (about 8 bytes a fact).
#[derive(Debug, Default)]
pub(super) struct ByTime(pub(super) RwLock<FxHashMap<Box<str>, Arc<ActorOrder>>>);

impl Clone for ByTime {
    fn clone(&self) -> ByTime {
        ByTime(RwLock::new(
            self.0.read().unwrap_or_else(|e| e.into_inner()).clone(),
        ))
    }
}

/// Where a fact sits in the actor view's order.
pub(super) fn time_key(facts: &FactStore, ix: Ix) -> (String, u64) {
    let f = facts.get(ix);
    let occurred = serde_json::from_str(f.occurred_json()).unwrap_or(Value::Null);
    (asof::sort_key(&occurred), f.seq)
}

impl ByTime {
    pub(super) fn built(&mut self) -> &mut FxHashMap<Box<str>, Arc<ActorOrder>> {
        self.0.get_mut().unwrap_or_else(|e| e.into_inner())
    }

    /// Places a newly folded fact (or a fact a correction newly names the actor in) in an
    /// actor's order, if that order is built and the fact is not in it yet. `special`: its
    /// listing needs a look (see [`ActorOrder`]).
    pub(super) fn place(&mut self, facts: &FactStore, actor: &str, ix: Ix, special: bool) {
        let Some(order) = self.built().get_mut(actor) else {
            return;
        };
        // No view holds a clone while facts are folded (the fold holds the write lock), so
        // this never copies.
        let order = Arc::make_mut(order);
        if special {
            insert_sorted(&mut order.special, ix);
        }
        if order.by_ix.binary_search(&ix).is_ok() {
            return;
        }
        insert_sorted(&mut order.by_ix, ix);
        let key = time_key(facts, ix);
        let list = &mut order.by_time;
        if list.last().is_none_or(|&last| time_key(facts, last) < key) {
            list.push(ix);
            return;
        }
        let at = list.partition_point(|&i| time_key(facts, i) < key);
        list.insert(at, ix);
    }

    /// A fact was just corrected or retracted: from now on its listing needs a look in every
    /// built order that holds it.
    pub(super) fn mark_special(&mut self, ix: Ix) {
        for order in self.built().values_mut() {
            if order.by_ix.binary_search(&ix).is_ok() {
                insert_sorted(&mut Arc::make_mut(order).special, ix);
            }
        }
    }
}
