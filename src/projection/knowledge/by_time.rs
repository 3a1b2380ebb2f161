//! One actor's facts in the actor view's order (when they occurred, then seq), built the first
//! time a view asks for that actor and kept in order as facts fold, so a page costs what it
//! shows. It must never parse a record: it orders by the facts' own `occurred`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use prometheus::IntGauge;
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
    /// Each fact once, in the view's order: the facts of the actor's set in the knowledge's
    /// actor index, which serves as this order's list in seq order (the same facts: a fact
    /// joins both at once), so it is not held twice.
    pub by_time: Vec<Ix>,
    /// The facts (ascending) a count must check one by one.
    pub(super) special: Vec<Ix>,
}

impl ActorOrder {
    /// The facts (ascending) that were ever corrected or retracted, and the registry entries
    /// (registrations, updates) naming the actor: every entry is among them.
    pub fn special(&self) -> &[Ix] {
        &self.special
    }
}

impl ActorOrder {
    /// How many of `actor`'s facts (this is their order) are listed at `cut` (a seq), where
    /// `listed` tells for the facts that need a look. Without `valid_at` only: a date cut
    /// must look at each.
    pub fn count(
        &self,
        k: &Knowledge,
        actor: &str,
        cut: u64,
        listed: impl Fn(Ix) -> bool,
    ) -> usize {
        let cut_ix = k.known_by(cut);
        let known = k
            .by_actor
            .get(actor)
            .map_or(0, |set| set.range_cardinality(..cut_ix) as usize);
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

/// The bound of the actor orders a knowledge keeps (`[projections] actor_index_bytes`), and
/// the gauge their size is reported to. Shared by every knowledge an engine folds.
#[derive(Debug, Clone)]
pub struct ActorIndexBound {
    /// Most bytes the built orders hold together; an order larger than this alone is built
    /// for the view that asked and never kept.
    pub bytes: usize,
    /// Where the bytes held are reported (`/metrics`), if anywhere.
    pub gauge: Option<IntGauge>,
}

impl Default for ActorIndexBound {
    /// No bound: a fold with no engine behind it (`annals replay`, tests) keeps every order.
    fn default() -> ActorIndexBound {
        ActorIndexBound {
            bytes: usize::MAX,
            gauge: None,
        }
    }
}

/// What one kept order costs beyond its lists: its key, the map's slot, the `Arc`.
const ORDER_OVERHEAD: usize = 96;

/// What an order of `actor` holds, in bytes.
fn cost(actor: &str, order: &ActorOrder) -> usize {
    let ixs = order.by_time.capacity() + order.special.capacity();
    ixs * std::mem::size_of::<Ix>() + actor.len() + ORDER_OVERHEAD
}

/// One kept order, with its cost and when a view last used it.
#[derive(Debug)]
struct Kept {
    order: Arc<ActorOrder>,
    bytes: usize,
    used: AtomicU64,
}

impl Clone for Kept {
    fn clone(&self) -> Kept {
        Kept {
            order: self.order.clone(),
            bytes: self.bytes,
            used: AtomicU64::new(self.used.load(Ordering::Relaxed)),
        }
    }
}

/// The kept orders and what they hold together.
#[derive(Debug, Clone, Default)]
struct Orders {
    map: FxHashMap<Box<str>, Kept>,
    bytes: usize,
}

/// Per actor, their [`ActorOrder`]. Built the first time a view asks for an actor (one parse
/// of each of their facts' `occurred`), then kept as facts are folded (a fact that occurred
/// last, the usual case, is pushed at the end), so a page of the view costs what it shows.
/// Built only on demand: a fold or a save load pays nothing for it, and only actors someone
/// looks at hold one (about 4 bytes a fact). Never more than [`ActorIndexBound`] together:
/// past it the orders views used least recently are dropped (a view that holds one keeps
/// its copy), and the next ask builds them again.
#[derive(Debug, Default)]
pub(super) struct ByTime {
    orders: RwLock<Orders>,
    bound: ActorIndexBound,
    /// Ticks of use, for least-recently-used eviction.
    tick: AtomicU64,
}

impl Clone for ByTime {
    fn clone(&self) -> ByTime {
        ByTime {
            orders: RwLock::new(self.read().clone()),
            bound: self.bound.clone(),
            tick: AtomicU64::new(self.tick.load(Ordering::Relaxed)),
        }
    }
}

/// Where a fact sits in the actor view's order.
pub(super) fn time_key(facts: &FactStore, ix: Ix) -> (String, u64) {
    let f = facts.get(ix);
    let occurred = serde_json::from_str(&f.occurred_json()).unwrap_or(Value::Null);
    (asof::sort_key(&occurred), f.seq)
}

impl ByTime {
    /// No order built yet, kept within `bound`.
    pub(super) fn bounded(bound: ActorIndexBound) -> ByTime {
        if let Some(g) = &bound.gauge {
            g.set(0);
        }
        ByTime {
            bound,
            ..ByTime::default()
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Orders> {
        self.orders.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes the kept orders hold together (what the bound counts).
    pub(super) fn bytes(&self) -> usize {
        self.read().bytes
    }

    /// Whether any order is kept (a fold need not place its facts otherwise).
    pub(super) fn any(&mut self) -> bool {
        !self
            .orders
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .is_empty()
    }

    /// The kept order of `actor`, marked as just used.
    pub(super) fn get(&self, actor: &str) -> Option<Arc<ActorOrder>> {
        let orders = self.read();
        let kept = orders.map.get(actor)?;
        kept.used
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        Some(kept.order.clone())
    }

    /// Keeps a just-built order of `actor` (another view may have built it first: that one
    /// is kept and returned), within the bound.
    pub(super) fn keep(&self, actor: &str, order: Arc<ActorOrder>) -> Arc<ActorOrder> {
        let bytes = cost(actor, &order);
        if bytes > self.bound.bytes {
            return order;
        }
        let mut orders = self.orders.write().unwrap_or_else(|e| e.into_inner());
        if let Some(kept) = orders.map.get(actor) {
            return kept.order.clone();
        }
        let used = AtomicU64::new(self.tick.fetch_add(1, Ordering::Relaxed));
        orders.map.insert(
            actor.into(),
            Kept {
                order: order.clone(),
                bytes,
                used,
            },
        );
        orders.bytes += bytes;
        enforce(&self.bound, &mut orders);
        order
    }

    /// Places a newly folded fact (or a fact a correction newly names the actor in) in an
    /// actor's order, if that order is kept. `special`: its listing needs a look (see
    /// [`ActorOrder`]); `new`: it just joined the actor's set, so it is not in the order yet.
    pub(super) fn place(
        &mut self,
        facts: &FactStore,
        actor: &str,
        ix: Ix,
        special: bool,
        new: bool,
    ) {
        let orders = self.orders.get_mut().unwrap_or_else(|e| e.into_inner());
        let Some(kept) = orders.map.get_mut(actor) else {
            return;
        };
        // No view holds a clone while facts are folded (the fold holds the write lock), so
        // this never copies.
        let order = Arc::make_mut(&mut kept.order);
        if special {
            insert_sorted(&mut order.special, ix);
        }
        if new {
            let key = time_key(facts, ix);
            let list = &mut order.by_time;
            if list.last().is_none_or(|&last| time_key(facts, last) < key) {
                list.push(ix);
            } else {
                let at = list.partition_point(|&i| time_key(facts, i) < key);
                list.insert(at, ix);
            }
        }
        let bytes = cost(actor, order);
        orders.bytes = orders.bytes - kept.bytes + bytes;
        kept.bytes = bytes;
        enforce(&self.bound, orders);
    }

    /// A fact was just corrected or retracted: from now on its listing needs a look in every
    /// kept order that holds it (that is, whose actor's set in `by_actor` holds it).
    pub(super) fn mark_special(
        &mut self,
        ix: Ix,
        by_actor: &FxHashMap<Box<str>, roaring::RoaringBitmap>,
    ) {
        let orders = self.orders.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        for (actor, kept) in orders.map.iter_mut() {
            if by_actor
                .get(actor.as_ref())
                .is_some_and(|set| set.contains(ix))
            {
                let order = Arc::make_mut(&mut kept.order);
                insert_sorted(&mut order.special, ix);
                let bytes = cost(actor, order);
                orders.bytes = orders.bytes - kept.bytes + bytes;
                kept.bytes = bytes;
                changed = true;
            }
        }
        if changed {
            enforce(&self.bound, orders);
        }
    }
}

/// Drops the least recently used orders until the rest fit the bound (down to three quarters
/// of it, so a run of new actors does not sort the orders at every ask), and reports the size.
fn enforce(bound: &ActorIndexBound, orders: &mut Orders) {
    if orders.bytes > bound.bytes {
        let mut by_use: Vec<(u64, Box<str>)> = orders
            .map
            .iter()
            .map(|(a, k)| (k.used.load(Ordering::Relaxed), a.clone()))
            .collect();
        by_use.sort_unstable();
        let target = bound.bytes / 4 * 3;
        for (_, actor) in by_use {
            if orders.bytes <= target {
                break;
            }
            if let Some(k) = orders.map.remove(&actor) {
                orders.bytes -= k.bytes;
            }
        }
    }
    if let Some(g) = &bound.gauge {
        g.set(orders.bytes as i64);
    }
}
