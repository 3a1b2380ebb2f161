//! The values of the stream index (`s` stream 0x00 first version): where a stream's versions
//! from the key's version on sit in the log. An entry written now is a page: runs of events
//! at consecutive seqs, the versions going on from one run to the next, so a stream that many
//! requests append to (each a run at seqs of its own, between other streams' events) costs one
//! sled key per page, rewritten in place by each append, not a new key per request. A new key
//! splits sled's leaves and rewrites their parents: an import of one line per request spent a
//! fifth of its writer's time there, and wrote half its folder.
//! This must never stop reading a form it once wrote: folders hold all three.
//!
//! The forms of a value:
//! - 8 bytes: one event's seq (u64 BE), as folders from before runs hold;
//! - 16 bytes: a run's first seq and its length (u64 BE each), as folders from before pages
//!   hold;
//! - a page: the byte [`PAGE_TAG`], then per run two LEB128 varints: the gap from the seq after
//!   the previous run (after seq 0 for the first run) and the run's length. The other forms
//!   start with a seq in big-endian, whose first byte is 0 below 2^56.

use integer_encoding::VarInt;

/// The first byte of a page.
pub const PAGE_TAG: u8 = 1;

/// A page takes no further run once its value is this long. Each append to the stream
/// rewrites it (sled writes the whole value again), and the writer holds the last page of
/// each stream head it remembers (`[log] stream_heads`). A run of one event a few thousand
/// seqs after the stream's previous one is 3 bytes, so a page holds about 15 such requests;
/// a larger page measured no faster (128 and 512 bytes alike), only more memory per head.
pub const PAGE_BYTES: usize = 48;

/// `len` consecutive versions at consecutive seqs from `seq` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// The seq of the run's first event.
    pub seq: u64,
    /// How many events.
    pub len: u64,
}

/// An entry's runs in version order, in any of its forms; `None` if it is malformed.
pub fn runs(value: &[u8]) -> Option<Vec<Run>> {
    let seq_at = |at: usize| Some(u64::from_be_bytes(value.get(at..at + 8)?.try_into().ok()?));
    match (value.first(), value.len()) {
        (Some(&PAGE_TAG), _) => {}
        (_, 8) => {
            return Some(vec![Run {
                seq: seq_at(0)?,
                len: 1,
            }]);
        }
        (_, 16) => {
            let len = seq_at(8).filter(|n| *n >= 1)?;
            return Some(vec![Run {
                seq: seq_at(0)?,
                len,
            }]);
        }
        _ => return None,
    }
    let mut out = Vec::new();
    let mut rest = &value[1..];
    let mut end = 0u64;
    while !rest.is_empty() {
        let (gap, n) = u64::decode_var(rest)?;
        rest = &rest[n..];
        let (len, n) = u64::decode_var(rest)?;
        rest = &rest[n..];
        let seq = end.checked_add(gap)?;
        end = seq.checked_add(len).filter(|_| len >= 1)?;
        out.push(Run { seq, len });
    }
    (!out.is_empty()).then_some(out)
}

/// A stream's last entry, as the writer extends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastPage {
    /// The version its key names.
    pub first_version: u64,
    /// Its value, in the page form.
    pub value: Vec<u8>,
    /// How many versions it holds.
    versions: u64,
    /// The seq after its last run.
    end: u64,
    /// Where the last run's length starts in `value`, and that length.
    len_at: usize,
    len: u64,
}

impl LastPage {
    /// The entry read from the store under `first_version`, in any form (rewritten in the page
    /// form, which its next append writes); `None` if it is malformed.
    pub fn read(first_version: u64, value: &[u8]) -> Option<LastPage> {
        let mut runs = runs(value)?.into_iter();
        let first = runs.next()?;
        let mut page = LastPage::new(first_version, first.seq, first.len);
        for run in runs {
            page.push(run.seq, run.len);
        }
        Some(page)
    }

    /// A new entry of `len` versions from `first_version` on, at seqs from `seq` on.
    fn new(first_version: u64, seq: u64, len: u64) -> LastPage {
        let mut page = LastPage {
            first_version,
            value: vec![PAGE_TAG],
            versions: 0,
            end: 0,
            len_at: 1,
            len: 0,
        };
        page.push(seq, len);
        page
    }

    /// The stream's last version.
    pub fn last_version(&self) -> u64 {
        self.first_version + self.versions - 1
    }

    /// The stream's entry once `len` more versions are appended at seqs from `seq` on (after
    /// every seq it holds): this one grown, or, once it is full, a new one after it.
    pub fn then(last: Option<LastPage>, seq: u64, len: u64) -> LastPage {
        match last {
            Some(mut page) if page.value.len() < PAGE_BYTES => {
                page.push(seq, len);
                page
            }
            Some(page) => LastPage::new(page.last_version() + 1, seq, len),
            None => LastPage::new(1, seq, len),
        }
    }

    fn push(&mut self, seq: u64, len: u64) {
        if self.versions > 0 && seq == self.end {
            // Right after the last run (a request staged after its stream's previous one):
            // that run grows.
            self.value.truncate(self.len_at);
            self.len += len;
        } else {
            put_var(&mut self.value, seq.saturating_sub(self.end));
            self.len_at = self.value.len();
            self.len = len;
        }
        put_var(&mut self.value, self.len);
        self.versions += len;
        self.end = seq + len;
    }
}

fn put_var(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 10];
    let used = n.encode_var(&mut buf);
    out.extend_from_slice(&buf[..used]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seq: u64, len: u64) -> Run {
        Run { seq, len }
    }

    #[test]
    fn the_forms_folders_from_before_pages_hold_are_read_as_one_run() {
        assert_eq!(runs(&7u64.to_be_bytes()), Some(vec![run(7, 1)]));
        let mut v = 7u64.to_be_bytes().to_vec();
        v.extend_from_slice(&3u64.to_be_bytes());
        assert_eq!(runs(&v), Some(vec![run(7, 3)]));
        v[15] = 0;
        assert_eq!(runs(&v), None, "a run of no event");
        assert_eq!(runs(&[0; 5]), None);
        assert_eq!(runs(&[]), None);
    }

    #[test]
    fn a_page_grows_by_each_append_and_reads_back_its_runs_and_versions() {
        let mut page = LastPage::then(None, 10, 1);
        assert_eq!(page.first_version, 1);
        for (seq, len) in [
            (1_010, 2),
            (1_012, 1),
            (500_000, 1),
            (u64::from(u32::MAX), 4),
        ] {
            page = LastPage::then(Some(page), seq, len);
        }
        assert_eq!(page.first_version, 1, "one entry");
        assert_eq!(page.last_version(), 9);
        // The run right after the one before it joined it.
        let want = vec![
            run(10, 1),
            run(1_010, 3),
            run(500_000, 1),
            run(u64::from(u32::MAX), 4),
        ];
        assert_eq!(runs(&page.value), Some(want));
        let again = LastPage::read(1, &page.value).expect("reads");
        assert_eq!(again, page);
    }

    #[test]
    fn a_full_page_is_followed_by_a_new_entry_at_the_next_version() {
        let mut page = LastPage::then(None, 1, 1);
        let mut seq = 1;
        let mut entries = vec![];
        for _ in 0..200 {
            seq += 1_000;
            let next = LastPage::then(Some(page.clone()), seq, 1);
            if next.first_version != page.first_version {
                entries.push(page.clone());
            }
            page = next;
        }
        entries.push(page);
        assert!(entries.len() > 3, "{} entries", entries.len());
        let mut version = 1;
        for entry in &entries {
            assert!(
                entry.value.len() <= PAGE_BYTES + 20,
                "{}",
                entry.value.len()
            );
            assert_eq!(entry.first_version, version);
            version += runs(&entry.value).expect("reads").len() as u64;
        }
        assert_eq!(version, 202);
    }

    #[test]
    fn an_entry_of_an_older_form_is_extended_as_a_page_under_its_own_key() {
        let mut v = 40u64.to_be_bytes().to_vec();
        v.extend_from_slice(&5u64.to_be_bytes());
        let old = LastPage::read(3, &v).expect("reads");
        assert_eq!(old.last_version(), 7);
        let page = LastPage::then(Some(old), 45, 2);
        assert_eq!(page.first_version, 3);
        assert_eq!(runs(&page.value), Some(vec![run(40, 7)]));
        let page = LastPage::then(Some(page), 90, 1);
        assert_eq!(runs(&page.value), Some(vec![run(40, 7), run(90, 1)]));
        assert_eq!(page.last_version(), 10);
    }

    #[test]
    fn malformed_pages_are_refused_not_misread() {
        assert_eq!(runs(&[PAGE_TAG]), None, "no run");
        assert_eq!(runs(&[PAGE_TAG, 5]), None, "a gap without a length");
        assert_eq!(runs(&[PAGE_TAG, 5, 0]), None, "a run of no event");
        assert_eq!(runs(&[PAGE_TAG, 0xff]), None, "a varint cut short");
        let mut huge = vec![PAGE_TAG];
        put_var(&mut huge, u64::MAX);
        put_var(&mut huge, 2);
        assert_eq!(runs(&huge), None, "past the last seq");
    }
}
