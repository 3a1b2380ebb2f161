//! A JSON value read without building a `serde_json::Value`: [`Node`] borrows its strings
//! from the text it was read from (unless they hold escapes) and keeps an object's members in
//! one sorted `Vec`, so reading an event costs a few allocations instead of one per string,
//! key and map node. It serialises exactly as the `Value` of the same text would (members by
//! key, the last of a repeated key kept, numbers as serde_json reads them): a record's bytes
//! and hash depend on that, and a test holds the two equal. A `Deserialize` type reads a
//! `&Node` as it reads a `&Value`, and [`JsonView`] is what the rules read of either. Nothing
//! here validates.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Number, Value};

/// The member name serde_json reserves: with its `raw_value` feature, an object whose first
/// member has this name is read as the raw JSON text of that member's string. A record holding
/// it elsewhere would not read back as the object it was, so no event may hold it (both paths
/// refuse it at its pointer).
pub const RESERVED_MEMBER: &str = "$serde_json::private::RawValue";

/// A JSON value borrowed from its text.
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as serde_json reads it (an integer when it fits, else a float).
    Number(Number),
    /// A string: borrowed when the text holds it without escapes.
    Str(Cow<'a, str>),
    /// An array.
    Array(Vec<Node<'a>>),
    /// An object's members, sorted by key, each key once (the last given).
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl<'a> Node<'a> {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            Node::Object(members) => members
                .binary_search_by(|(k, _)| k.as_ref().cmp(key))
                .ok()
                .map(|i| &members[i].1),
            _ => None,
        }
    }

    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Whether any string or key in it is longer than `max` bytes.
    pub fn has_string_over(&self, max: usize) -> bool {
        match self {
            Node::Str(s) => s.len() > max,
            Node::Array(items) => items.iter().any(|v| v.has_string_over(max)),
            Node::Object(members) => members
                .iter()
                .any(|(k, v)| k.len() > max || v.has_string_over(max)),
            Node::Null | Node::Bool(_) | Node::Number(_) => false,
        }
    }

    /// The JSON pointer (from `base`) of the first member named `key`, at any depth.
    pub fn pointer_of_key(&self, key: &str, base: &str) -> Option<String> {
        match self {
            Node::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| v.pointer_of_key(key, &format!("{base}/{i}"))),
            Node::Object(members) => members.iter().find_map(|(k, v)| {
                let here = format!("{base}/{}", k.replace('~', "~0").replace('/', "~1"));
                if k == key {
                    Some(here)
                } else {
                    v.pointer_of_key(key, &here)
                }
            }),
            Node::Null | Node::Bool(_) | Node::Number(_) | Node::Str(_) => None,
        }
    }

    /// Whether any object in it has a member named `key`. (A walk without pointers: this runs
    /// on every body.)
    pub fn has_key(&self, key: &str) -> bool {
        match self {
            Node::Array(items) => items.iter().any(|v| v.has_key(key)),
            Node::Object(members) => members.iter().any(|(k, v)| k == key || v.has_key(key)),
            Node::Null | Node::Bool(_) | Node::Number(_) | Node::Str(_) => false,
        }
    }

    /// The same value as a `serde_json::Value`.
    pub fn to_value(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::Str(s) => Value::String(s.to_string()),
            Node::Array(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Node::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// A string that borrows from the text when it can.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_string())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

/// Reads any value, as serde_json's own `Value` visitor does.
struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(n.into()))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Node<'de>, E> {
        // As `Value` reads it: a number JSON cannot write is `null`.
        Ok(Number::from_f64(n).map_or(Node::Null, Node::Number))
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(s.to_string())))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(s)))
    }
    fn visit_none<E: de::Error>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut members: Vec<(Cow<'de, str>, Node<'de>)> = Vec::new();
        while let Some(Text(key)) = map.next_key()? {
            members.push((key, map.next_value()?));
        }
        // A `Value`'s map is ordered by key and keeps the last of a repeated one: a stable sort
        // keeps repeats in the order given, and each run of them keeps its last.
        members.sort_by(|a, b| a.0.cmp(&b.0));
        members.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        Ok(Node::Object(members))
    }
}

impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null => s.serialize_unit(),
            Node::Bool(b) => s.serialize_bool(*b),
            Node::Number(n) => n.serialize(s),
            Node::Str(text) => s.serialize_str(text),
            Node::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Object(members) => {
                let mut map = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
        }
    }
}

/// A [`Node`] read by a `Deserialize` type, as serde_json reads a `&Value`: the typed validator
/// checks an event from its tree, without reading the text again. Where this reading differs
/// from the `&Value` one it must only ever refuse more (a refusal goes to the `Value` path).
impl<'de, 'a: 'de> Deserializer<'de> for &'de Node<'a> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Node::Null => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::Number(n) => n.deserialize_any(visitor),
            Node::Str(s) => visitor.visit_borrowed_str(s),
            Node::Array(items) => {
                let mut seq = de::value::SeqDeserializer::new(items.iter());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Node::Object(members) => {
                let mut map =
                    de::value::MapDeserializer::new(members.iter().map(|(k, v)| (k.as_ref(), v)));
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Node::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Node::Str(s) => visitor.visit_borrowed_str(s),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Node::Array(_) => self.deserialize_any(visitor),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Node::Object(_) => self.deserialize_any(visitor),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Node::Null => visitor.visit_unit(),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Node::Bool(b) => visitor.visit_bool(*b),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    /// Only a unit variant named by a string: anything else is left to the `Value` path.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self {
            Node::Str(s) => visitor.visit_enum(de::value::BorrowedStrDeserializer::new(s)),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit_struct
        tuple tuple_struct struct
    }
}

impl<'de, 'a: 'de> de::IntoDeserializer<'de, serde_json::Error> for &'de Node<'a> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl Node<'_> {
    /// What a type error says was found.
    fn unexpected(&self) -> de::Unexpected<'_> {
        match self {
            Node::Null => de::Unexpected::Unit,
            Node::Bool(b) => de::Unexpected::Bool(*b),
            Node::Number(_) => de::Unexpected::Other("number"),
            Node::Str(s) => de::Unexpected::Str(s),
            Node::Array(_) => de::Unexpected::Seq,
            Node::Object(_) => de::Unexpected::Map,
        }
    }
}

/// What the rules read of a JSON value, a `Value` or a [`Node`] alike.
pub trait JsonView: Sized {
    /// The member `key` of an object.
    fn member(&self, key: &str) -> Option<&Self>;
    /// The string, if it is one.
    fn string(&self) -> Option<&str>;
    /// The items, if it is an array.
    fn items(&self) -> Option<&[Self]>;
    /// Whether it is an object.
    fn is_object(&self) -> bool;
    /// The same value as a `serde_json::Value`.
    fn value(&self) -> Value;
}

impl JsonView for Value {
    fn member(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }
    fn string(&self) -> Option<&str> {
        self.as_str()
    }
    fn items(&self) -> Option<&[Value]> {
        self.as_array().map(Vec::as_slice)
    }
    fn is_object(&self) -> bool {
        Value::is_object(self)
    }
    fn value(&self) -> Value {
        self.clone()
    }
}

impl<'a> JsonView for Node<'a> {
    fn member(&self, key: &str) -> Option<&Node<'a>> {
        self.get(key)
    }
    fn string(&self) -> Option<&str> {
        self.as_str()
    }
    fn items(&self) -> Option<&[Node<'a>]> {
        match self {
            Node::Array(items) => Some(items),
            _ => None,
        }
    }
    fn is_object(&self) -> bool {
        matches!(self, Node::Object(_))
    }
    fn value(&self) -> Value {
        self.to_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Any JSON text: nested values, repeated and unordered keys, escapes, every kind of number.
    fn any_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            Just("-0".to_string()),
            Just("18446744073709551616".to_string()),
            "[a-zé\"\\\\/\\n\u{1F600}]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just(r#""\u00e9\/\ud83d\ude00\t""#.to_string()),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5)
                    .prop_map(|items| format!("[ {} ]", items.join(" , "))),
                prop::collection::vec(("[a-c]{1,2}", inner), 0..6).prop_map(|members| {
                    let body: Vec<String> = members
                        .iter()
                        .map(|(k, v)| format!("\"{k}\" : {v}"))
                        .collect();
                    format!("{{ {} }}", body.join(",\n"))
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn a_node_serialises_exactly_as_the_value_of_the_same_text(text in any_text()) {
            let value: Value = serde_json::from_str(&text).unwrap();
            let node: Node<'_> = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(serde_json::to_string(&node).unwrap(), value.to_string());
            prop_assert_eq!(node.to_value(), value);
        }
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value_and_members_are_found_by_key() {
        let text = r#"{"b": 1, "a": {"z": 2, "y": 3}, "b": "last", "c\u0021": "x"}"#;
        let node: Node<'_> = serde_json::from_str(text).unwrap();
        assert_eq!(node.get("b"), Some(&Node::Str(Cow::Borrowed("last"))));
        assert_eq!(node.get("c!").and_then(Node::as_str), Some("x"));
        assert_eq!(node.get("nope"), None);
        assert_eq!(
            serde_json::to_string(&node).unwrap(),
            r#"{"a":{"y":3,"z":2},"b":"last","c!":"x"}"#
        );
    }

    #[test]
    fn serde_json_still_reads_the_reserved_member_as_raw_text_and_a_node_finds_it() {
        // If serde_json stops reserving the name, this says so: the refusal can then go.
        let value: Value =
            serde_json::from_str(&format!(r#"{{"{RESERVED_MEMBER}": "[1]"}}"#)).unwrap();
        assert_eq!(value, serde_json::json!([1]));
        let text = format!(r#"{{"a": [{{"b/c": 1, "{RESERVED_MEMBER}": 2}}]}}"#);
        let node: Node<'_> = serde_json::from_str(&text).unwrap();
        assert!(node.has_key(RESERVED_MEMBER));
        let expected = format!("/x/a/0/{RESERVED_MEMBER}");
        assert_eq!(node.pointer_of_key(RESERVED_MEMBER, "/x"), Some(expected));
        assert!(!node.has_key("z"));
        assert_eq!(node.pointer_of_key("b/c", ""), Some("/a/0/b~1c".into()));
    }

    #[test]
    fn strings_without_escapes_are_borrowed_from_the_text() {
        let node: Node<'_> =
            serde_json::from_str(r#"{"plain": "abc", "escaped": "a\nb"}"#).unwrap();
        assert!(matches!(
            node.get("plain"),
            Some(Node::Str(Cow::Borrowed(_)))
        ));
        assert!(matches!(
            node.get("escaped"),
            Some(Node::Str(Cow::Owned(_)))
        ));
    }

    #[test]
    fn a_string_or_key_over_the_limit_is_found_at_any_depth() {
        let node: Node<'_> = serde_json::from_str(r#"{"a": [{"bcd": "ef"}]}"#).unwrap();
        assert!(!node.has_string_over(3));
        assert!(node.has_string_over(2));
        let node: Node<'_> = serde_json::from_str(r#"[["abcdef"]]"#).unwrap();
        assert!(node.has_string_over(5));
    }
}
