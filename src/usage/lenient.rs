//! Serde field types that read a value of an unexpected JSON type as absent or invalid
//! instead of failing. Invalid JSON syntax still fails the parse.
//!
//! Upstream bodies are parsed into small structs of these fields instead of a DOM. A value of
//! the wrong type becomes "absent" or "invalid" for that field alone, so one odd field does not
//! hide the usage object beside it. Values that are skipped go through
//! [`serde::de::IgnoredAny`], which allocates nothing.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A string field, borrowed from the input when it has no escapes. Any other JSON type reads
/// as absent.
#[derive(Debug, Default)]
pub(crate) struct Text<'a>(pub(crate) Option<Cow<'a, str>>);

/// A token count: a non-negative integer, absent (missing or `null`), or invalid.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) enum Count {
    #[default]
    Absent,
    Value(u64),
    /// The value had another type or range, described by the string.
    Invalid(String),
}

/// A field expected to contain a JSON object.
#[derive(Debug, Default)]
pub(crate) enum Section<T> {
    #[default]
    Absent,
    Null,
    Present(T),
    /// Another JSON type was found, named by the string.
    Invalid(&'static str),
}

/// A field expected to contain a JSON array. Any other JSON type reads as `None`.
#[derive(Debug)]
pub(crate) struct List<T>(pub(crate) Option<Vec<T>>);

impl<'a> Text<'a> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Returns the string unless it is absent or empty.
    pub(crate) fn non_empty(&self) -> Option<&str> {
        self.as_str().filter(|text| !text.is_empty())
    }
}

impl<T> Section<T> {
    pub(crate) fn present(&self) -> Option<&T> {
        match self {
            Section::Present(value) => Some(value),
            _ => None,
        }
    }
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List(None)
    }
}

impl<T> List<T> {
    pub(crate) fn items(&self) -> &[T] {
        self.0.as_deref().unwrap_or_default()
    }
}

/// Drains a map or sequence the visitor received but does not need.
fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Borrowed(value))))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(value.to_owned()))))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(value))))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        skip_map(map).map(|()| Text(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq).map(|()| Text(None))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct CountVisitor;

/// Maximum characters of an invalid string count quoted in an error message.
const QUOTED_STRING_CHARS: usize = 32;

impl<'de> Visitor<'de> for CountVisitor {
    type Value = Count;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a token count")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Count, E> {
        Ok(Count::Value(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Count, E> {
        Ok(match u64::try_from(value) {
            Ok(value) => Count::Value(value),
            Err(_) => Count::Invalid(value.to_string()),
        })
    }

    /// serde_json reads every number with a fraction or exponent, and every integer beyond
    /// the u64 range, as f64. None of those is a token count, even `12.0`.
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Count, E> {
        Ok(Count::Invalid(format!("the number {value}")))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Count, E> {
        let excerpt: String = value.chars().take(QUOTED_STRING_CHARS).collect();
        Ok(Count::Invalid(format!("the string {excerpt:?}")))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Count, E> {
        Ok(Count::Invalid(format!("the boolean {value}")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
        Ok(Count::Absent)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Count, A::Error> {
        skip_map(map).map(|()| Count::Invalid("an object".to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Count, A::Error> {
        skip_seq(seq).map(|()| Count::Invalid("an array".to_owned()))
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CountVisitor)
    }
}

struct SectionVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for SectionVisitor<T> {
    type Value = Section<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object or null")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Section::Present)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Section::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq).map(|()| Section::Invalid("an array"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Section::Invalid("a string"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Section::Invalid("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Section::Invalid("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Section::Invalid("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Section::Invalid("a number"))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Section<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SectionVisitor(PhantomData))
    }
}

struct ListVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
    type Value = List<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Vec::<T>::deserialize(SeqAccessDeserializer::new(seq)).map(|items| List(Some(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        skip_map(map).map(|()| List(None))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(List(None))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(List(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(List(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(List(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(List(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(List(None))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ListVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default)]
    struct Probe<'a> {
        #[serde(borrow)]
        text: Text<'a>,
        count: Count,
        section: Section<Inner>,
        list: List<u64>,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        value: Count,
    }

    fn probe(json: &str) -> Probe<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn counts_accept_only_non_negative_integers() {
        let cases = [
            (r#"{"count":0}"#, Count::Value(0)),
            (r#"{"count":18446744073709551615}"#, Count::Value(u64::MAX)),
            (r#"{"count":null}"#, Count::Absent),
            (r#"{}"#, Count::Absent),
            (r#"{"count":-3}"#, Count::Invalid("-3".to_owned())),
            (
                r#"{"count":1.5}"#,
                Count::Invalid("the number 1.5".to_owned()),
            ),
            (
                r#"{"count":12.0}"#,
                Count::Invalid("the number 12".to_owned()),
            ),
            (
                r#"{"count":18446744073709551616}"#,
                Count::Invalid("the number 18446744073709552000".to_owned()),
            ),
            (
                r#"{"count":"12"}"#,
                Count::Invalid(r#"the string "12""#.to_owned()),
            ),
            (
                r#"{"count":true}"#,
                Count::Invalid("the boolean true".to_owned()),
            ),
            (
                r#"{"count":{"a":1}}"#,
                Count::Invalid("an object".to_owned()),
            ),
            (r#"{"count":[1]}"#, Count::Invalid("an array".to_owned())),
        ];
        for (json, expected) in cases {
            assert_eq!(probe(json).count, expected, "input {json}");
        }
    }

    #[test]
    fn text_borrows_plain_strings() {
        let parsed = probe(r#"{"text":"gpt-4o"}"#);
        assert!(matches!(parsed.text.0, Some(Cow::Borrowed("gpt-4o"))));

        let escaped = probe(r#"{"text":"a\"b"}"#);
        assert_eq!(escaped.text.as_str(), Some("a\"b"));
    }

    #[test]
    fn text_of_other_types_is_absent() {
        for json in [
            r#"{"text":null}"#,
            r#"{"text":3}"#,
            r#"{"text":-3}"#,
            r#"{"text":1.5}"#,
            r#"{"text":false}"#,
            r#"{"text":{"nested":"x"}}"#,
            r#"{"text":["x"]}"#,
        ] {
            assert_eq!(probe(json).text.as_str(), None, "input {json}");
        }
        assert_eq!(probe(r#"{"text":""}"#).text.non_empty(), None);
    }

    #[test]
    fn section_separates_null_absent_and_invalid() {
        assert!(matches!(probe("{}").section, Section::Absent));
        assert!(matches!(
            probe(r#"{"section":null}"#).section,
            Section::Null
        ));
        assert!(matches!(
            probe(r#"{"section":[1]}"#).section,
            Section::Invalid("an array")
        ));
        assert!(matches!(
            probe(r#"{"section":"x"}"#).section,
            Section::Invalid("a string")
        ));
        let present = probe(r#"{"section":{"value":4,"other":[1,{"x":2}]}}"#);
        assert_eq!(
            present.section.present().map(|inner| &inner.value),
            Some(&Count::Value(4))
        );
    }

    #[test]
    fn list_of_other_types_is_none() {
        assert_eq!(probe(r#"{"list":[1,2]}"#).list.items(), &[1, 2]);
        assert_eq!(probe(r#"{"list":[]}"#).list.0, Some(Vec::new()));
        assert_eq!(probe(r#"{"list":{"a":1}}"#).list.0, None);
        assert_eq!(probe(r#"{"list":null}"#).list.0, None);
        assert_eq!(probe(r#"{"list":"x"}"#).list.0, None);
    }
}
