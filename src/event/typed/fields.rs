//! The leaf types of the typed validator: each deserializes one JSON value and holds it to
//! what its `schemas/common.json` or `vocabularies.json` definition states (type, length in
//! characters, pattern, enum, bounds), so a struct of them accepts exactly what the schema
//! accepts. They keep no copy of the text, only a 64-bit digest for `uniqueItems`; they must
//! never accept a value the schema refuses (a test holds the two equal).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

pub(crate) use super::patterns::*;
use super::vocabulary_has;

/// What a leaf value is, for `uniqueItems`: equal values have equal digests. Two different
/// values with one digest would make an array look repeated; the typed verdict is then a
/// refusal the JSON Schema re-examines (see `Schemas::check_event`), so a collision can
/// never let an invalid event in nor keep a valid one out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Digest(u64);

pub(super) fn digest_str(s: &str) -> Digest {
    // Not SipHash: every string of every event is digested, and a collision costs only the
    // JSON Schema's second look, so a fast hash is enough.
    let mut h = rustc_hash::FxHasher::default();
    s.hash(&mut h);
    Digest(h.finish())
}

fn digest_number(n: f64) -> Digest {
    // JSON Schema compares numbers by value: 1 and 1.0 are one number.
    let n = if n == 0.0 { 0.0 } else { n };
    Digest(n.to_bits() ^ 0x9e37_79b9_7f4a_7c15)
}

/// Length as JSON Schema counts it: in characters, not bytes.
pub(super) fn chars_within(s: &str, min: usize, max: usize) -> Result<(), String> {
    // A string has no more characters than bytes: most need no count.
    let n = if s.len() <= max && min <= 1 {
        usize::from(!s.is_empty())
    } else {
        s.chars().count()
    };
    if n < min {
        return Err(format!("shorter than {min} character(s)"));
    }
    if n > max {
        return Err(format!("longer than {max} characters"));
    }
    Ok(())
}

/// A string of `MIN` to `MAX` characters (`name`, `short_text`, `text`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Str<const MIN: usize, const MAX: usize>(Digest);

impl<'de, const MIN: usize, const MAX: usize> Deserialize<'de> for Str<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(|s: &str| {
            chars_within(s, MIN, MAX)?;
            Ok(Str(digest_str(s)))
        }))
    }
}

/// Visits a string and hands it to a check.
pub(super) struct StrVisitor<F>(pub(super) F);

impl<'de, T, F: FnOnce(&str) -> Result<T, String>> Visitor<'de> for StrVisitor<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        (self.0)(s).map_err(E::custom)
    }
}

/// The `entity_id` family (`actor_ref`, `issue_id`, `source_id`...).
pub(crate) type EntityId = Pat<EntityIdPattern>;
/// `name`.
pub(crate) type Name = Str<1, 300>;
/// `short_text`.
pub(crate) type ShortText = Str<1, 300>;
/// `text`.
pub(crate) type Text = Str<1, 4000>;

/// A vocabulary of `vocabularies.json`, by its definition's name.
pub(crate) trait Vocabulary {
    /// The `$defs` key.
    const DEF: &'static str;
}

macro_rules! vocabulary {
    ($name:ident, $def:expr) => {
        #[doc = concat!("The `", $def, "` vocabulary.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) struct $name;
        impl Vocabulary for $name {
            const DEF: &'static str = $def;
        }
    };
}

vocabulary!(ToneV, "tone");
vocabulary!(StanceV, "stance");
vocabulary!(IssueStatusV, "issue_status");
vocabulary!(TalksStatusV, "talks_status");
vocabulary!(AgreementStageV, "agreement_stage");
vocabulary!(SourceKindV, "source_kind");
vocabulary!(ActorKindV, "actor_kind");
vocabulary!(ParticipantRoleV, "participant_role");
vocabulary!(MeetingFormatV, "meeting_format");
vocabulary!(PrecisionV, "precision");
vocabulary!(EvidenceRelationV, "evidence_relation");
vocabulary!(GradeV, "grade");

/// A word of a vocabulary as this server's configuration extends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word<V>(Digest, PhantomData<V>);

impl<V> Word<V> {
    /// Whether this is `word` (by digest: a collision only refuses, see [`Digest`]).
    pub(crate) fn is(&self, word: &str) -> bool {
        self.0 == digest_str(word)
    }
}

impl<'de, V: Vocabulary> Deserialize<'de> for Word<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(|s: &str| {
            if vocabulary_has(V::DEF, s) {
                Ok(Word(digest_str(s), PhantomData))
            } else {
                Err(format!(
                    "`{s}` is not a word of the `{}` vocabulary",
                    V::DEF
                ))
            }
        }))
    }
}

/// An integer from `MIN` to `MAX`; an integral float (`2.0`) is an integer, as JSON Schema
/// 2020-12 says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Int<const MIN: i64, const MAX: i64>(Digest);

struct IntVisitor<const MIN: i64, const MAX: i64>;

impl<const MIN: i64, const MAX: i64> IntVisitor<MIN, MAX> {
    fn bounded<E: de::Error>(n: f64) -> Result<Int<MIN, MAX>, E> {
        if n < MIN as f64 {
            return Err(E::custom(format!("less than the minimum of {MIN}")));
        }
        if n > MAX as f64 {
            return Err(E::custom(format!("greater than the maximum of {MAX}")));
        }
        Ok(Int(digest_number(n)))
    }
}

impl<'de, const MIN: i64, const MAX: i64> Visitor<'de> for IntVisitor<MIN, MAX> {
    type Value = Int<MIN, MAX>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        if n > MAX as u64 {
            return Err(E::custom(format!("greater than the maximum of {MAX}")));
        }
        Self::bounded(n as f64)
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        if n < MIN {
            return Err(E::custom(format!("less than the minimum of {MIN}")));
        }
        if n > MAX {
            return Err(E::custom(format!("greater than the maximum of {MAX}")));
        }
        Ok(Int(digest_number(n as f64)))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
        if n.fract() != 0.0 || !n.is_finite() {
            return Err(E::invalid_type(de::Unexpected::Float(n), &self));
        }
        Self::bounded(n)
    }
}

impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Int<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntVisitor::<MIN, MAX>)
    }
}

/// A JSON boolean, compared as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bool(bool);

impl<'de> Deserialize<'de> for Bool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        bool::deserialize(d).map(Bool)
    }
}

/// An optional member: absent, or present and valid. Unlike `Option`, a `null` is not
/// "absent" but a value its type must accept, as in the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Maybe<T> {
    /// Not in the object.
    #[default]
    Absent,
    /// In the object.
    Present(T),
}

impl<T> Maybe<T> {
    /// Whether the member was given.
    pub(crate) fn is_present(&self) -> bool {
        matches!(self, Maybe::Present(_))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Maybe<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Maybe::Present)
    }
}

/// A value of any type (`{}`), e.g. a JSON Patch `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AnyValue;

impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| AnyValue)
    }
}

/// An object with members of any kind (`{"type": "object"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AnyObject;

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyObject, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyObject)
            }
        }
        d.deserialize_map(V)
    }
}

/// A `null`, or a `T` (`anyOf: [T, {"type": "null"}]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nullable<T> {
    /// `null`.
    Null,
    /// A value.
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nullable<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Not through `Option`: serde reads a missing member as `None`, and this one is
        // required.
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Nullable<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("null or an object")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Nullable::Null)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Nullable::Value)
            }
        }
        d.deserialize_any(V::<T>(PhantomData))
    }
}

/// An array of `MIN` to `MAX` items; with `UNIQUE`, no two equal (`uniqueItems`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Arr<T, const MIN: usize, const MAX: usize, const UNIQUE: bool>(Vec<T>);

impl<'de, T: Deserialize<'de> + PartialEq, const MIN: usize, const MAX: usize, const UNIQUE: bool>
    Deserialize<'de> for Arr<T, MIN, MAX, UNIQUE>
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const MIN: usize, const MAX: usize, const UNIQUE: bool>(PhantomData<T>);
        impl<
            'de,
            T: Deserialize<'de> + PartialEq,
            const MIN: usize,
            const MAX: usize,
            const UNIQUE: bool,
        > Visitor<'de> for V<T, MIN, MAX, UNIQUE>
        {
            type Value = Arr<T, MIN, MAX, UNIQUE>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items: Vec<T> = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX));
                while let Some(item) = seq.next_element::<T>()? {
                    items.push(item);
                }
                if items.len() < MIN {
                    return Err(de::Error::custom(format!("has fewer than {MIN} item(s)")));
                }
                if items.len() > MAX {
                    return Err(de::Error::custom(format!("has more than {MAX} items")));
                }
                if UNIQUE {
                    for (i, a) in items.iter().enumerate() {
                        if items[..i].contains(a) {
                            return Err(de::Error::custom("has repeated items"));
                        }
                    }
                }
                Ok(Arr(items))
            }
        }
        d.deserialize_seq(V::<T, MIN, MAX, UNIQUE>(PhantomData))
    }
}

/// `term_value`: a number, or a string of 1 to 300 characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TermValue(Digest);

impl<'de> Deserialize<'de> for TermValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TermValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string of 1 to 300 characters")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<TermValue, E> {
                Ok(TermValue(digest_number(n as f64)))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<TermValue, E> {
                Ok(TermValue(digest_number(n as f64)))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<TermValue, E> {
                Ok(TermValue(digest_number(n)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<TermValue, E> {
                chars_within(s, 1, 300).map_err(E::custom)?;
                Ok(TermValue(digest_str(s)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `provision.terms`: 1 to 50 members named like `^[a-z][a-z0-9_]{0,63}$`, each a
/// [`TermValue`]. Kept as sorted pairs so two equal objects compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Terms(Vec<(Digest, TermValue)>);

impl<'de> Deserialize<'de> for Terms {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Terms;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of terms")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Terms, A::Error> {
                let mut terms = Vec::new();
                while let Some(key) = map.next_key::<Pat<TermNamePattern>>()? {
                    let value = map.next_value::<TermValue>()?;
                    terms.push((key.0, value));
                }
                if terms.is_empty() {
                    return Err(de::Error::custom("has no terms"));
                }
                if terms.len() > 50 {
                    return Err(de::Error::custom("has more than 50 terms"));
                }
                terms.sort_by_key(|(k, _)| k.0);
                Ok(Terms(terms))
            }
        }
        d.deserialize_map(V)
    }
}

/// A string checked by `then`, else an object checked by `else` (`if: {"type": "string"}`):
/// tones, provisions, plan changes and PLOVER codes take either form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StrOr<S, O> {
    /// The string form.
    Str(S),
    /// The other form.
    Other(O),
}

impl<'de, S: Deserialize<'de>, O: Deserialize<'de>> Deserialize<'de> for StrOr<S, O> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<S, O>(PhantomData<(S, O)>);
        impl<'de, S: Deserialize<'de>, O: Deserialize<'de>> Visitor<'de> for V<S, O> {
            type Value = StrOr<S, O>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, or the structured form")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                S::deserialize(de::value::StrDeserializer::<E>::new(s)).map(StrOr::Str)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                O::deserialize(de::value::MapAccessDeserializer::new(map)).map(StrOr::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                O::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(StrOr::Other)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Err(E::invalid_type(de::Unexpected::Bool(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Err(E::invalid_type(de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Err(E::invalid_type(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Err(E::invalid_type(de::Unexpected::Float(v), &self))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Err(E::invalid_type(de::Unexpected::Unit, &self))
            }
        }
        d.deserialize_any(V::<S, O>(PhantomData))
    }
}

/// What an object must satisfy beyond its members (`minProperties`, `if`/`then`), checked
/// once its members are.
pub(crate) trait ObjectRule {
    /// `Err` names the rule broken; the pointer is the object's.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A JSON object read as `T`. Only an object: serde would also read a struct from an array
/// of its fields in order, which the schema refuses.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Obj<T>(pub(crate) T);

impl<'de, T: Deserialize<'de> + ObjectRule> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + ObjectRule> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                let inner = T::deserialize(de::value::MapAccessDeserializer::new(map))?;
                inner.check().map_err(de::Error::custom)?;
                Ok(Obj(inner))
            }
        }
        d.deserialize_map(V::<T>(PhantomData))
    }
}

/// An `anyOf` of objects: the schema blames the value as a whole, never a member of one of
/// its forms, so `T`'s refusal is reported here. Read through a copy of the value (only
/// `meeting.held`'s `location` has one).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AnyOf<T>(T);

impl<'de, T: for<'a> Deserialize<'a>> Deserialize<'de> for AnyOf<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        T::deserialize(&value)
            .map(AnyOf)
            .map_err(|e| de::Error::custom(format!("is not valid under any of its forms ({e})")))
    }
}
