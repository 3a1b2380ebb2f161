//! Reading one fact back from its compact row ([`FactRef`]): each field as the text the parsed
//! [`Fact`] held ([`Text`]: borrowed from the names or the record, or written back from the
//! row), its references, and the whole [`StoredFact`]. It must never answer a field differently
//! from the [`Fact`] the row was built from.

use std::borrow::Cow;

use super::*;

/// One fact as a view reads it: the texts the parsed [`Fact`] held, from a compact row.
#[derive(Clone, Copy)]
pub struct FactRef<'a> {
    /// Global position.
    pub seq: u64,
    pub(super) ix: Ix,
    /// A copy: the row may have been read from a page the cache drops at any time.
    pub(super) row: Row,
    /// Where its references end in the pool.
    pub(super) refs_end: u32,
    pub(super) store: &'a FactStore,
}

impl fmt::Debug for FactRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.stored(), f)
    }
}

impl PartialEq for FactRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.stored() == other.stored()
    }
}

impl<'a> FactRef<'a> {
    fn odd(&self) -> Option<&'a Odd> {
        self.store.odd.get(&self.ix)
    }

    fn name(&self, n: Sym) -> &'a str {
        self.store.names.get(n)
    }

    /// Event id.
    pub fn id(&self) -> Text<'a> {
        if self.row.flags & ODD_ID != 0 {
            return Text::Borrowed(self.odd().and_then(|o| o.id.as_deref()).unwrap_or(""));
        }
        let u = uuid::Uuid::from_u128(id_key_of(self.row.id));
        let mut buf = [0u8; 36];
        u.hyphenated().encode_lower(&mut buf);
        Text::Inline { buf, len: 36 }
    }

    /// Event type, as recorded.
    pub fn kind(&self) -> &'a str {
        match self.row.event_kind {
            Some(kind) => kind.name(),
            None => self.name(self.odd().and_then(|o| o.kind).unwrap_or(Sym::MAX)),
        }
    }

    /// Event type, or `None` for a type this build does not know.
    pub fn event_kind(&self) -> Option<EventKind> {
        self.row.event_kind
    }

    /// Transaction time.
    pub fn recorded_at(&self) -> Text<'a> {
        if self.row.flags & ODD_TIME != 0 {
            return Text::Borrowed(
                self.odd()
                    .and_then(|o| o.recorded_at.as_deref())
                    .unwrap_or(""),
            );
        }
        let [hi, lo] = self.row.recorded_at;
        let mut buf = [0u8; 36];
        write_micros(((u64::from(hi) << 32) | u64::from(lo)) as i64, &mut buf);
        Text::Inline { buf, len: 27 }
    }

    /// Who recorded it.
    pub fn recorded_by(&self) -> &'a str {
        self.name(self.row.recorded_by)
    }

    /// When it happened, as recorded (JSON text): written back from its shape and digits,
    /// or held whole.
    pub fn occurred_json(&self) -> Cow<'a, str> {
        let text = self.name(self.row.occurred);
        if self.row.flags & OCCURRED_SHAPE == 0 {
            return Cow::Borrowed(text);
        }
        Cow::Owned(occurred::join(
            text,
            occurred::number(self.row.occurred_digits),
        ))
    }

    /// The negotiation it belongs to.
    pub fn process(&self) -> Option<&'a str> {
        (self.row.flags & HAS_PROCESS != 0).then(|| self.name(self.row.process))
    }

    /// The event id a correction or retraction targets (empty for other types).
    pub fn target(&self) -> &'a str {
        if self.row.flags & HAS_TARGET == 0 {
            return "";
        }
        self.odd().and_then(|o| o.target.as_deref()).unwrap_or("")
    }

    /// The references the fact makes, in indexing order, with their text.
    pub fn refs(&self) -> impl Iterator<Item = (Role, &'a str)> + use<'a> {
        let store = self.store;
        let refs = store
            .refs
            .get(self.row.refs as usize..self.refs_end as usize)
            .unwrap_or(&[]);
        refs.iter().filter_map(move |&packed| {
            let role = Role::from_u8((packed >> ROLE_SHIFT) as u8)?;
            Some((role, store.names.get(packed & SYM_MASK)))
        })
    }

    /// The record's length and where `data` and `evidence` sit in it.
    fn spans(&self) -> (u32, Span, Span) {
        if self.row.flags & ODD_SPANS != 0 {
            return self.odd().and_then(|o| o.spans).unwrap_or_default();
        }
        unpack_spans(self.row.spans)
    }

    /// The payload as recorded, before any correction (JSON text), read from `record`: the
    /// record this fact was derived from (`None` for another one).
    pub fn data_in<'r>(&self, record: &'r [u8]) -> Option<&'r str> {
        let (len, data, _) = self.spans();
        record_field(record, len, data)
    }

    /// The evidence as recorded (JSON text), read from `record`, as [`FactRef::data_in`].
    pub fn evidence_in<'r>(&self, record: &'r [u8]) -> Option<&'r str> {
        let (len, _, evidence) = self.spans();
        record_field(record, len, evidence)
    }

    /// What a save keeps of this fact: the very form [`Fact::stored`] gives for the fact it
    /// was built from.
    pub fn stored(&self) -> StoredFact {
        let (record_len, data, evidence) = self.spans();
        StoredFact::assemble(
            self.seq,
            record_len,
            [
                &self.id(),
                self.kind(),
                &self.recorded_at(),
                self.recorded_by(),
                &self.occurred_json(),
                self.process().unwrap_or(""),
                self.target(),
            ],
            (data, evidence),
            self.row.flags & HAS_PROCESS != 0,
            self.refs(),
        )
    }
}

/// The text at `(a, b)` of `record`, if `record` is `len` bytes long (the record the span was
/// found in).
pub(super) fn record_field(record: &[u8], len: u32, (a, b): Span) -> Option<&str> {
    if record.len() != len as usize {
        return None;
    }
    std::str::from_utf8(record.get(a as usize..b as usize)?).ok()
}

/// A field's text as a [`FactRef`] gives it: written out on the stack (an id, a time) or
/// borrowed from the store. Reads as a `str`.
#[derive(Clone, Copy)]
pub enum Text<'a> {
    /// Written out from its compact form.
    Inline {
        /// The text, in its first `len` bytes.
        buf: [u8; 36],
        /// Its length.
        len: u8,
    },
    /// Held as it is.
    Borrowed(&'a str),
}

impl Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Text::Inline { buf, len } => buf
                .get(..*len as usize)
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or(""),
            Text::Borrowed(s) => s,
        }
    }
}

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        self
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq<str> for Text<'_> {
    fn eq(&self, other: &str) -> bool {
        **self == *other
    }
}

impl PartialEq<&str> for Text<'_> {
    fn eq(&self, other: &&str) -> bool {
        **self == **other
    }
}

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self)
    }
}
