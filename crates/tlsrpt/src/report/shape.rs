//! The JSON of a report as the lenient reader takes it in: each field read straight into what
//! the reader wants of it (a scalar, or the container a [`Shape`] reads), never a whole
//! `serde_json::Value` tree. Members the reader does not know are parsed and dropped as they
//! come, so an unknown field or an array of junk costs no memory; strings of wrong-typed values
//! are not kept, only their JSON type.
//!
//! Every value goes through serde_json's `deserialize_any`, as a `Value` would: the same
//! documents parse, and a broken one fails with the same error at the same place (numbers out
//! of range, invalid escapes and UTF-8, the nesting limit).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};

/// A JSON value as one field reads it: scalars as they are, arrays and objects as the field's
/// [`Shape`] reads them.
pub(super) enum Val<A, O> {
    Null,
    Bool,
    Number(Num),
    Str(String),
    Array(A),
    Object(O),
}

/// A value whose arrays and objects are only recognised (a field that wants a scalar).
pub(super) type Scalar = Val<(), ()>;

/// A JSON number: a `u64`, or the text `serde_json::Number` gives any other number.
pub(super) enum Num {
    U64(u64),
    Other(String),
}

impl<A, O> Val<A, O> {
    /// The value's JSON type, as warnings and errors name it.
    pub(super) fn json_type(&self) -> &'static str {
        match self {
            Val::Null => "null",
            Val::Bool => "a boolean",
            Val::Number(_) => "a number",
            Val::Str(_) => "a string",
            Val::Array(_) => "an array",
            Val::Object(_) => "an object",
        }
    }
}

/// How a field reads an array or an object it holds.
pub(super) trait Shape<'de>: Sized {
    type Array;
    type Object;
    fn array<S: SeqAccess<'de>>(self, seq: S) -> Result<Self::Array, S::Error>;
    fn object<M: MapAccess<'de>>(self, map: M) -> Result<Self::Object, M::Error>;
}

/// Reads a value with the shape `S`.
pub(super) struct ValSeed<S>(pub(super) S);

/// The shape of a field that wants a scalar: arrays and objects are parsed and dropped.
pub(super) struct Scalars;

impl<'de> Shape<'de> for Scalars {
    type Array = ();
    type Object = ();
    fn array<S: SeqAccess<'de>>(self, seq: S) -> Result<(), S::Error> {
        skip_seq(seq)
    }
    fn object<M: MapAccess<'de>>(self, map: M) -> Result<(), M::Error> {
        skip_map(map)
    }
}

impl<'de, S: Shape<'de>> DeserializeSeed<'de> for ValSeed<S> {
    type Value = Val<S::Array, S::Object>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, S: Shape<'de>> Visitor<'de> for ValSeed<S> {
    type Value = Val<S::Array, S::Object>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }
    fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
        Ok(Val::Null)
    }
    fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
        Ok(Val::Null)
    }
    fn visit_bool<E: Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Val::Bool)
    }
    fn visit_u64<E: Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Val::Number(Num::U64(value)))
    }
    fn visit_i64<E: Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Val::Number(match u64::try_from(value) {
            Ok(value) => Num::U64(value),
            Err(_) => Num::Other(serde_json::Number::from(value).to_string()),
        }))
    }
    fn visit_f64<E: Error>(self, value: f64) -> Result<Self::Value, E> {
        // serde_json parses only finite numbers; a `Value` keeps a non-finite one as null.
        Ok(match serde_json::Number::from_f64(value) {
            Some(number) => Val::Number(Num::Other(number.to_string())),
            None => Val::Null,
        })
    }
    fn visit_str<E: Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Val::Str(value.to_owned()))
    }
    fn visit_string<E: Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(Val::Str(value))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.array(seq).map(Val::Array)
    }
    fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
        self.0.object(map).map(Val::Object)
    }
}

/// Parses the rest of an array and drops it.
pub(super) fn skip_seq<'de, S: SeqAccess<'de>>(mut seq: S) -> Result<(), S::Error> {
    while seq.next_element_seed(Skip)?.is_some() {}
    Ok(())
}

/// Parses the rest of an object and drops it.
pub(super) fn skip_map<'de, M: MapAccess<'de>>(mut map: M) -> Result<(), M::Error> {
    while map.next_key_seed(Skip)?.is_some() {
        map.next_value_seed(Skip)?;
    }
    Ok(())
}

/// Parses a value in full (as `Value` would, unlike `serde::de::IgnoredAny`, which skips numbers and
/// strings unchecked) and keeps nothing of it.
pub(super) struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }
    fn visit_unit<E: Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        skip_seq(seq)
    }
    fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<(), M::Error> {
        skip_map(map)
    }
}

/// Reads an object member's name as its index in `names`, or `None` for a name the reader
/// does not know; nothing is allocated unless the name has escapes.
pub(super) struct Key(pub(super) &'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Option<usize>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a member name")
    }
    fn visit_str<E: Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|known| *known == name))
    }
}

/// Reads the members of an object whose names are `names`: `member(index, map)` reads the
/// value of a known member (last one wins, as in a `Value`), the others are parsed and dropped.
pub(super) fn members<'de, M: MapAccess<'de>>(
    mut map: M,
    names: &'static [&'static str],
    mut member: impl FnMut(usize, &mut M) -> Result<(), M::Error>,
) -> Result<(), M::Error> {
    while let Some(known) = map.next_key_seed(Key(names))? {
        match known {
            Some(index) => member(index, &mut map)?,
            None => map.next_value_seed(Skip)?,
        }
    }
    Ok(())
}

/// Reads one member's value as a scalar.
pub(super) fn scalar<'de, M: MapAccess<'de>>(map: &mut M) -> Result<Option<Scalar>, M::Error> {
    map.next_value_seed(ValSeed(Scalars)).map(Some)
}
