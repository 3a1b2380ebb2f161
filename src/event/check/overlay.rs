//! What the appends dry-run so far would have added (introduced ids, event ids, stream
//! versions, registry entries), as later appends of the same dry run must see it. A request's
//! dry run (`?dry_run=true`) holds it in plain maps. `annals import --check` packs the ids and
//! event ids, which grow with every line, into sorted, compressed runs (`fst` maps) once the
//! maps hold [`Packing::after`] of them: a few tens of bytes a line instead of a few hundred.
//! Stream versions and registry entries stay in maps: they grow with the streams and the
//! registry, not with the lines. This must never write anywhere; it only remembers.

use std::collections::HashMap;

use serde_json::Value;
use uuid::Uuid;

use super::Origin;

/// When a dry run packs what it has learnt.
#[derive(Debug, Clone, Copy)]
pub struct Packing {
    /// Ids and event ids held in plain maps before they are packed into a run.
    pub after: usize,
}

/// Sorted maps of byte keys to numbers, newest last; a key's newest value wins. A run is
/// merged with the one before it once it is at least half that one's size, so there are
/// about log2(keys / run) of them: each lookup tries every run (a miss is a walk
/// of a few bytes each, a cache miss per byte on a large map), and each key is rewritten
/// about that many times in all (building an `fst` is most of a packing check's extra CPU).
#[derive(Default)]
struct Runs(Vec<fst::Map<Vec<u8>>>);

impl Runs {
    fn get(&self, key: &[u8]) -> Option<u64> {
        self.0.iter().rev().find_map(|run| run.get(key))
    }

    /// Adds a run of `entries` (keys unique), then merges the last two runs while the newer
    /// is at least half the older's size (measured at 1M lines against merging only equal
    /// sizes: 28.7 s and 90 MB against 34.7 s and 104 MB).
    fn push(&mut self, mut entries: Vec<(Vec<u8>, u64)>) -> Result<(), fst::Error> {
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut build = fst::MapBuilder::memory();
        for (key, value) in entries {
            build.insert(key, value)?;
        }
        self.0.push(build.into_map());
        while let [.., older, newer] = self.0.as_slice()
            && newer.len() * 2 >= older.len()
        {
            self.merge_last_two()?;
        }
        Ok(())
    }

    fn merge_last_two(&mut self) -> Result<(), fst::Error> {
        use fst::Streamer;
        let at = self.0.len().saturating_sub(2);
        let mut build = fst::MapBuilder::memory();
        {
            let mut union = self.0[at..].iter().collect::<fst::map::OpBuilder>().union();
            while let Some((key, values)) = union.next() {
                // The newest run (highest index) holds the key's current value.
                if let Some(newest) = values.iter().max_by_key(|v| v.index) {
                    build.insert(key, newest.value)?;
                }
            }
        }
        self.0.truncate(at);
        self.0.push(build.into_map());
        Ok(())
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The dry run's memory: the newest ids and event ids in maps, older ones packed in runs.
/// A lookup tries the maps first.
#[derive(Default)]
pub(super) struct Overlay {
    ids: HashMap<String, String>,
    events: HashMap<Uuid, (Uuid, u64)>,
    streams: HashMap<String, u64>,
    entries: HashMap<String, (Origin, Value)>,
    packing: Option<Packing>,
    /// Packed ids, each valued with its kind's place in `kinds`.
    id_runs: Runs,
    kinds: Vec<String>,
    /// Packed event ids, each valued with its place in `prints`: its content's fingerprint and
    /// its stream version.
    event_runs: Runs,
    prints: Vec<(Uuid, u64)>,
}

fn packing_failed(e: fst::Error) -> String {
    format!("the check could not pack what it learnt: {e}")
}

impl Overlay {
    /// An overlay that packs its ids and event ids as `packing` says.
    pub(super) fn packing(packing: Packing) -> Overlay {
        Overlay {
            packing: Some(packing),
            ..Overlay::default()
        }
    }

    /// The kind of an id introduced by an earlier append.
    pub(super) fn id(&self, id: &str) -> Result<Option<String>, String> {
        if let Some(kind) = self.ids.get(id) {
            return Ok(Some(kind.clone()));
        }
        match self.id_runs.get(id.as_bytes()) {
            None => Ok(None),
            Some(at) => usize::try_from(at)
                .ok()
                .and_then(|at| self.kinds.get(at))
                .map(|k| Some(k.clone()))
                .ok_or_else(|| "the check lost the kind of a packed id".to_string()),
        }
    }

    /// An earlier append's event with this id: its content's fingerprint and its version.
    pub(super) fn event(&self, id: &Uuid) -> Result<Option<(Uuid, u64)>, String> {
        if let Some(e) = self.events.get(id) {
            return Ok(Some(*e));
        }
        match self.event_runs.get(id.as_bytes()) {
            None => Ok(None),
            Some(at) => usize::try_from(at)
                .ok()
                .and_then(|at| self.prints.get(at))
                .map(|e| Some(*e))
                .ok_or_else(|| "the check lost a packed event".to_string()),
        }
    }

    /// A stream's version after the earlier appends.
    pub(super) fn stream(&self, stream: &str) -> Option<u64> {
        self.streams.get(stream).copied()
    }

    /// A registry entry as the earlier appends left it, with where it was registered.
    pub(super) fn entry(&self, key: &str) -> Option<(Origin, Value)> {
        self.entries.get(key).cloned()
    }

    /// Takes in what an accepted append adds, then packs the ids and event ids if the maps
    /// hold as many as `packing` allows.
    pub(super) fn add(
        &mut self,
        ids: HashMap<String, String>,
        events: impl IntoIterator<Item = (Uuid, (Uuid, u64))>,
        entries: impl IntoIterator<Item = (String, (Origin, Value))>,
        stream: (&str, u64),
    ) -> Result<(), String> {
        self.ids.extend(ids);
        self.events.extend(events);
        self.entries.extend(entries);
        self.streams.insert(stream.0.to_string(), stream.1);
        match self.packing {
            Some(packing) if self.len() >= packing.after => self.pack(),
            _ => Ok(()),
        }
    }

    fn len(&self) -> usize {
        self.ids.len() + self.events.len()
    }

    /// Packs the maps' ids and event ids into a run each and empties the maps.
    fn pack(&mut self) -> Result<(), String> {
        let mut ids = Vec::with_capacity(self.ids.len());
        for (id, kind) in self.ids.drain() {
            // A handful of kinds: a linear search is enough.
            let at = match self.kinds.iter().position(|k| *k == kind) {
                Some(at) => at,
                None => {
                    self.kinds.push(kind);
                    self.kinds.len() - 1
                }
            };
            ids.push((id.into_bytes(), at as u64));
        }
        let mut events = Vec::with_capacity(self.events.len());
        for (id, print) in self.events.drain() {
            events.push((id.as_bytes().to_vec(), self.prints.len() as u64));
            self.prints.push(print);
        }
        // Memory goes back to empty, not to the maps' high-water mark.
        self.ids.shrink_to_fit();
        self.events.shrink_to_fit();
        if !ids.is_empty() {
            self.id_runs.push(ids).map_err(packing_failed)?;
        }
        if !events.is_empty() {
            self.event_runs.push(events).map_err(packing_failed)?;
        }
        Ok(())
    }

    /// Whether anything was packed.
    #[cfg(test)]
    pub(super) fn packed(&self) -> bool {
        !self.id_runs.is_empty() || !self.event_runs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(overlay: &Overlay, id: &str) -> Option<String> {
        overlay.id(id).unwrap() // ok: test code (a #[cfg(test)] module)
    }

    fn event(overlay: &Overlay, n: u128) -> Option<(Uuid, u64)> {
        overlay.event(&Uuid::from_u128(n)).unwrap() // ok: test code (a #[cfg(test)] module)
    }

    /// Adds one line's worth: an id `statement:N` and an event N on stream `s` at version N.
    fn add_line(overlay: &mut Overlay, n: u128) {
        let ids = HashMap::from([(format!("statement:{n}"), "a statement".to_string())]);
        let events = [(
            Uuid::from_u128(n),
            (Uuid::from_u128(n + 1_000_000), n as u64),
        )];
        overlay.add(ids, events, [], ("s", n as u64)).unwrap(); // ok: test code (a #[cfg(test)] module)
    }

    #[test]
    fn packed_ids_and_events_read_back_across_runs_and_merges_and_others_are_absent() {
        let mut overlay = Overlay::packing(Packing { after: 10 });
        overlay
            .add(
                HashMap::from([("actor:a".to_string(), "an actor".to_string())]),
                [],
                [],
                ("r", 1),
            )
            .unwrap(); // ok: test code (a #[cfg(test)] module)
        // 5 lines a run (10 entries); 100 lines make 20 runs, merged as they pair up.
        for n in 1..=100 {
            add_line(&mut overlay, n);
        }
        assert!(overlay.packed());
        assert!(
            overlay.id_runs.0.len() <= 5,
            "about log2(20) runs: {}",
            overlay.id_runs.0.len()
        );
        assert!(overlay.len() < 10, "the maps were emptied into runs");
        for n in 1..=100 {
            assert_eq!(
                kind(&overlay, &format!("statement:{n}")).as_deref(),
                Some("a statement")
            );
            assert_eq!(
                event(&overlay, n),
                Some((Uuid::from_u128(n + 1_000_000), n as u64))
            );
        }
        assert_eq!(kind(&overlay, "actor:a").as_deref(), Some("an actor"));
        assert_eq!(kind(&overlay, "statement:101"), None);
        assert_eq!(kind(&overlay, "statement:1x"), None);
        assert_eq!(event(&overlay, 101), None);
        assert_eq!(overlay.stream("s"), Some(100));
        assert_eq!(overlay.stream("r"), Some(1));
    }

    #[test]
    fn runs_merge_as_they_pair_up_and_a_merge_keeps_the_newest_value_of_a_key() {
        let mut runs = Runs::default();
        for n in 0..8u64 {
            runs.push(vec![
                (b"k".to_vec(), n),
                (format!("only-{n}").into_bytes(), n),
            ])
            .unwrap(); // ok: test code (a #[cfg(test)] module)
        }
        // Eight runs of two keys (one shared) end as two: 7 keys, then 3.
        let sizes: Vec<usize> = runs.0.iter().map(fst::Map::len).collect();
        assert_eq!(sizes, [7, 3]);
        assert_eq!(runs.get(b"k"), Some(7));
        for n in 0..8u64 {
            assert_eq!(runs.get(format!("only-{n}").as_bytes()), Some(n));
        }
    }

    #[test]
    fn a_dry_run_without_packing_keeps_everything_in_its_maps() {
        let mut overlay = Overlay::default();
        for n in 0..1000 {
            add_line(&mut overlay, n);
        }
        assert!(!overlay.packed());
        assert_eq!(overlay.len(), 2000);
        assert_eq!(
            event(&overlay, 999),
            Some((Uuid::from_u128(1_000_999), 999))
        );
    }
}
