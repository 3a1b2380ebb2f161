//! The writer's memory of stream heads: the last version of each stream it has written or
//! looked up, with the stream's last index page that its next append extends
//! (`stream_index.rs`), so an append to a stream it knows costs no sled read. A head is in the store
//! once it is here (taken from the store, or from a group the writer has written), and only the
//! writer moves heads, so what is held stays true. This must never hold a head the store does
//! not hold yet (a staged group's heads live in its overlay), and never grow past its bound: a
//! log of many streams (one per actor, say) would otherwise hold every stream name it ever saw.
//! Also the writer's lookup of a head: the group's overlay, then this memory, then the last
//! entry of the stream's index, an unreadable one an error (never taken for a new stream).

use foldhash::{HashMap, HashMapExt};

use super::super::stream_index::LastPage;
use super::super::{AppendError, layout};
use super::Writer;
use super::stage::Overlay;

/// A stream's head as the writer tracks it: its last index entry, which names its last
/// version and which the next append to it extends.
#[derive(Debug, Clone)]
pub(super) struct StreamHead {
    page: LastPage,
}

impl StreamHead {
    /// The head after `len` more events at seqs from `seq` on, and the index entry that
    /// says so (key, value), to write in their group.
    pub(super) fn then(
        head: Option<StreamHead>,
        stream: &str,
        seq: u64,
        len: u64,
    ) -> (StreamHead, (Vec<u8>, Vec<u8>)) {
        let page = LastPage::then(head.map(|h| h.page), seq, len);
        let entry = (
            layout::stream_key(stream, page.first_version),
            page.value.clone(),
        );
        (StreamHead { page }, entry)
    }

    /// The stream's last version.
    pub(super) fn version(&self) -> u64 {
        self.page.last_version()
    }

    /// A stream at `version`, its events at seqs 1 to `version`.
    #[cfg(test)]
    pub(super) fn at(version: u64) -> StreamHead {
        StreamHead::then(None, "", 1, version).0
    }
}

/// Stream heads the store holds: stream → head. At most `bound` streams (`[log] stream_heads`;
/// an entry is a stream name, a version and the stream's last index entry, a page of at most
/// `stream_index::PAGE_BYTES` and a run: about 200 bytes at most, with the map's own). When
/// full it is emptied and refills from the store, as [`super::known::KnownIds`] does: a head not held is one reverse
/// scan of the stream's index away.
pub(super) struct StreamHeads {
    heads: HashMap<String, StreamHead>,
    bound: usize,
    /// Heads held now, on `/metrics`.
    gauge: prometheus::IntGauge,
}

impl StreamHeads {
    /// An empty memory of at most `bound` heads (0: remember none), reporting its size to
    /// `gauge`.
    pub(super) fn new(bound: usize, gauge: prometheus::IntGauge) -> StreamHeads {
        gauge.set(0);
        StreamHeads {
            heads: HashMap::new(),
            bound,
            gauge,
        }
    }

    /// The head of `stream`, if held.
    pub(super) fn get(&self, stream: &str) -> Option<StreamHead> {
        self.heads.get(stream).cloned()
    }

    /// Remembers `stream`'s head, which the store holds.
    pub(super) fn remember(&mut self, stream: &str, head: StreamHead) {
        if self.bound == 0 {
            return;
        }
        if let Some(held) = self.heads.get_mut(stream) {
            *held = head;
            return;
        }
        if self.heads.len() >= self.bound {
            self.heads.clear();
        }
        self.heads.insert(stream.to_string(), head);
        self.gauge.set(self.heads.len() as i64);
    }

    /// How many heads are held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.heads.len()
    }
}

impl Writer {
    /// The stream's head (`None`: no such stream). A store that cannot be read, or an entry
    /// that does not parse, is an error: taken for a new stream, it would restart versions at 1.
    pub(super) fn stream_head(
        &mut self,
        stream: &str,
        overlay: &Overlay,
    ) -> Result<Option<StreamHead>, AppendError> {
        if let Some(h) = overlay.streams.get(stream) {
            return Ok(Some(h.clone()));
        }
        if let Some(h) = self.streams.get(stream) {
            return Ok(Some(h));
        }
        // The stream's last run in the index: its head needs no key of its own.
        let prefix = layout::stream_prefix(stream);
        let Some(last) = self.tree.scan_prefix(&prefix).next_back() else {
            return Ok(None);
        };
        let unreadable = |why: String| AppendError::Unavailable(format!("stream index: {why}"));
        let (k, v) = last.map_err(|e| unreadable(e.to_string()))?;
        let page = k
            .get(prefix.len()..)
            .and_then(layout::read_u64)
            .and_then(|first| LastPage::read(first, &v));
        let Some(page) = page else {
            return Err(unreadable(format!("corrupt entry of `{stream}`")));
        };
        let head = StreamHead { page };
        self.streams.remember(stream, head.clone());
        Ok(Some(head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heads(bound: usize) -> StreamHeads {
        StreamHeads::new(bound, prometheus::IntGauge::new("heads", "test").unwrap())
    }

    #[test]
    fn a_remembered_head_answers_and_a_later_one_replaces_it() {
        let mut heads = heads(8);
        assert!(heads.get("process/p").is_none());
        heads.remember("process/p", StreamHead::at(3));
        heads.remember("process/p", StreamHead::at(5));
        assert_eq!(heads.get("process/p").map(|h| h.version()), Some(5));
        assert_eq!(heads.len(), 1);
    }

    #[test]
    fn the_memory_never_grows_past_its_bound_and_a_zero_bound_holds_nothing() {
        let mut heads = heads(16);
        for i in 0..100u64 {
            heads.remember(&format!("process/p{i}"), StreamHead::at(i + 1));
            assert!(heads.len() <= 16);
        }
        // The last one is always there: a refill starts with it.
        assert_eq!(heads.get("process/p99").map(|h| h.version()), Some(100));
        assert_eq!(heads.gauge.get(), heads.len() as i64);
        let mut none = self::heads(0);
        none.remember("process/p", StreamHead::at(1));
        assert!(none.get("process/p").is_none());
    }
}
