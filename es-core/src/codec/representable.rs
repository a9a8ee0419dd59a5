//! Serialising with a check that JSON can hold every value: serde_json writes a NaN or an
//! infinite float as `null`, which then never decodes back into the `f64` it came from (and
//! silently becomes `None` in an `Option<f64>`). A payload written that way makes its stream
//! unloadable, so it must be refused before it is stored.
//!
//! [`Checked`] wraps a value so that serialising it through any serializer passes every nested
//! value through [`CheckedSerializer`], which forwards everything to the real serializer and
//! fails on a non-finite float. The check costs a branch per float and nothing per other value:
//! no second pass, no allocation. When it fails, the compound serializers on the way out record
//! the field names and indices in the [`Trail`], so the error names where the value sits.

use std::cell::RefCell;
use std::fmt::{self, Display};

use serde::ser::{
    self, Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant,
    SerializeTuple, SerializeTupleStruct, SerializeTupleVariant, Serializer,
};

/// Where a value that JSON cannot hold was found, filled in as the error travels outwards.
#[derive(Debug, Default)]
pub(crate) struct Trail {
    found: RefCell<Option<Found>>,
}

#[derive(Debug)]
struct Found {
    /// The non-finite value, as Rust prints it (`NaN`, `inf`, `-inf`).
    value: String,
    /// Field names and indices from the innermost outwards.
    segments: Vec<Segment>,
}

#[derive(Debug)]
enum Segment {
    Field(&'static str),
    Index(usize),
    Key,
}

/// The value JSON cannot hold and its place, once serialisation failed on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unrepresentable {
    /// The path to it: `amount`, `lines[2].price`, `rates[..]` (a map entry); empty for the value
    /// itself.
    pub(crate) field: String,
    /// How Rust prints it.
    pub(crate) value: String,
}

impl Trail {
    /// What was found, with its path read from the outermost field inwards.
    pub(crate) fn take(&self) -> Option<Unrepresentable> {
        let found = self.found.borrow_mut().take()?;
        let mut field = String::new();
        for segment in found.segments.iter().rev() {
            match segment {
                Segment::Field(name) => {
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(name);
                }
                Segment::Index(index) => field.push_str(&format!("[{index}]")),
                Segment::Key => field.push_str("[..]"),
            }
        }
        Some(Unrepresentable {
            field,
            value: found.value,
        })
    }

    fn record_float(&self, value: impl Display) {
        *self.found.borrow_mut() = Some(Found {
            value: value.to_string(),
            segments: Vec::new(),
        });
    }

    /// On the way out of a failed nested value: notes the segment it sat at, if the failure
    /// was ours.
    fn note(&self, segment: Segment) {
        if let Some(found) = self.found.borrow_mut().as_mut() {
            found.segments.push(segment);
        }
    }
}

/// `value`, serialised so that a non-finite float anywhere in it fails (see the module docs).
pub(crate) struct Checked<'a, T: ?Sized> {
    pub(crate) value: &'a T,
    pub(crate) trail: &'a Trail,
}

impl<T: Serialize + ?Sized> Serialize for Checked<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(CheckedSerializer {
            inner: serializer,
            trail: self.trail,
        })
    }
}

/// Forwards to `inner`, failing on a non-finite float and wrapping nested values in [`Checked`].
struct CheckedSerializer<'a, S> {
    inner: S,
    trail: &'a Trail,
}

/// A compound serializer of `inner`'s that wraps its elements in [`Checked`].
struct Compound<'a, C> {
    inner: C,
    trail: &'a Trail,
    index: usize,
}

impl<'a, C> Compound<'a, C> {
    const fn new(inner: C, trail: &'a Trail) -> Self {
        Self {
            inner,
            trail,
            index: 0,
        }
    }

    fn checked<'v, T: ?Sized>(&self, value: &'v T) -> Checked<'v, T>
    where
        'a: 'v,
    {
        Checked {
            value,
            trail: self.trail,
        }
    }

    /// `result`, with `segment` noted on the trail if it failed.
    fn at<R, E>(&self, segment: Segment, result: Result<R, E>) -> Result<R, E> {
        if result.is_err() {
            self.trail.note(segment);
        }
        result
    }

    /// The next element's index, for sequences and tuples.
    fn next_index(&mut self) -> usize {
        let index = self.index;
        self.index += 1;
        index
    }
}

fn non_finite<E: ser::Error>(trail: &Trail, value: impl Display + Copy) -> E {
    trail.record_float(value);
    E::custom(format_args!(
        "{value} is not a number JSON can hold (it would be stored as null and never decode back)"
    ))
}

impl<'a, S: Serializer> Serializer for CheckedSerializer<'a, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<'a, S::SerializeSeq>;
    type SerializeTuple = Compound<'a, S::SerializeTuple>;
    type SerializeTupleStruct = Compound<'a, S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<'a, S::SerializeTupleVariant>;
    type SerializeMap = Compound<'a, S::SerializeMap>;
    type SerializeStruct = Compound<'a, S::SerializeStruct>;
    type SerializeStructVariant = Compound<'a, S::SerializeStructVariant>;

    fn serialize_f32(self, value: f32) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            self.inner.serialize_f32(value)
        } else {
            Err(non_finite(self.trail, value))
        }
    }

    fn serialize_f64(self, value: f64) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            self.inner.serialize_f64(value)
        } else {
            Err(non_finite(self.trail, value))
        }
    }

    fn serialize_bool(self, value: bool) -> Result<S::Ok, S::Error> {
        self.inner.serialize_bool(value)
    }

    fn serialize_i8(self, value: i8) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i8(value)
    }

    fn serialize_i16(self, value: i16) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i16(value)
    }

    fn serialize_i32(self, value: i32) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i32(value)
    }

    fn serialize_i64(self, value: i64) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i64(value)
    }

    fn serialize_i128(self, value: i128) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i128(value)
    }

    fn serialize_u8(self, value: u8) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u8(value)
    }

    fn serialize_u16(self, value: u16) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u16(value)
    }

    fn serialize_u32(self, value: u32) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u32(value)
    }

    fn serialize_u64(self, value: u64) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u64(value)
    }

    fn serialize_u128(self, value: u128) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u128(value)
    }

    fn serialize_char(self, value: char) -> Result<S::Ok, S::Error> {
        self.inner.serialize_char(value)
    }

    fn serialize_str(self, value: &str) -> Result<S::Ok, S::Error> {
        self.inner.serialize_str(value)
    }

    fn serialize_bytes(self, value: &[u8]) -> Result<S::Ok, S::Error> {
        self.inner.serialize_bytes(value)
    }

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_none()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.serialize_some(&Checked {
            value,
            trail: self.trail,
        })
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit()
    }

    fn serialize_unit_struct(self, name: &'static str) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_struct(name)
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.inner
            .serialize_unit_variant(name, variant_index, variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_newtype_struct(
            name,
            &Checked {
                value,
                trail: self.trail,
            },
        )
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let result = self.inner.serialize_newtype_variant(
            name,
            variant_index,
            variant,
            &Checked {
                value,
                trail: self.trail,
            },
        );
        if result.is_err() {
            self.trail.note(Segment::Field(variant));
        }
        result
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        Ok(Compound::new(self.inner.serialize_seq(len)?, self.trail))
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        Ok(Compound::new(self.inner.serialize_tuple(len)?, self.trail))
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        Ok(Compound::new(
            self.inner.serialize_tuple_struct(name, len)?,
            self.trail,
        ))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        Ok(Compound::new(
            self.inner
                .serialize_tuple_variant(name, variant_index, variant, len)?,
            self.trail,
        ))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        Ok(Compound::new(self.inner.serialize_map(len)?, self.trail))
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        Ok(Compound::new(
            self.inner.serialize_struct(name, len)?,
            self.trail,
        ))
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        Ok(Compound::new(
            self.inner
                .serialize_struct_variant(name, variant_index, variant, len)?,
            self.trail,
        ))
    }

    fn collect_str<T: Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.collect_str(value)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// The compound serializers whose elements are numbered: each element is checked, and noted
/// by its index on the trail when it fails.
macro_rules! indexed_compound {
    ($($trait:ident :: $method:ident),* $(,)?) => {$(
        impl<C: $trait> $trait for Compound<'_, C> {
            type Ok = C::Ok;
            type Error = C::Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
                let index = self.next_index();
                let result = self.inner.$method(&self.checked(value));
                self.at(Segment::Index(index), result)
            }

            fn end(self) -> Result<C::Ok, C::Error> {
                self.inner.end()
            }
        }
    )*};
}

indexed_compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

/// The compound serializers whose fields are named: each field is checked, and noted by its
/// name on the trail when it fails.
macro_rules! named_compound {
    ($($trait:ident),* $(,)?) => {$(
        impl<C: $trait> $trait for Compound<'_, C> {
            type Ok = C::Ok;
            type Error = C::Error;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), C::Error> {
                let result = self.inner.serialize_field(key, &self.checked(value));
                self.at(Segment::Field(key), result)
            }

            fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
                self.inner.skip_field(key)
            }

            fn end(self) -> Result<C::Ok, C::Error> {
                self.inner.end()
            }
        }
    )*};
}

named_compound!(SerializeStruct, SerializeStructVariant);

impl<C: SerializeMap> SerializeMap for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        let result = self.inner.serialize_key(&self.checked(key));
        self.at(Segment::Key, result)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let result = self.inner.serialize_value(&self.checked(value));
        self.at(Segment::Key, result)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl fmt::Display for Unrepresentable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.value)
        } else {
            write!(f, "{} at `{}`", self.value, self.field)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;

    fn check<T: Serialize>(value: &T) -> Result<String, Unrepresentable> {
        let trail = Trail::default();
        serde_json::to_string(&Checked {
            value,
            trail: &trail,
        })
        .map_err(|_| trail.take().expect("the failure is recorded"))
    }

    #[derive(Serialize)]
    struct Line {
        sku: String,
        price: f64,
    }

    #[derive(Serialize)]
    struct Order {
        lines: Vec<Line>,
        discount: Option<f32>,
        rates: BTreeMap<String, f64>,
        pair: (u8, f64),
    }

    #[derive(Serialize)]
    enum Amount {
        Exact(f64),
        Range { low: f64, high: f64 },
    }

    fn order() -> Order {
        Order {
            lines: vec![
                Line {
                    sku: "a".into(),
                    price: 1.5,
                },
                Line {
                    sku: "b".into(),
                    price: -0.0,
                },
            ],
            discount: Some(0.25),
            rates: BTreeMap::from([("eur".into(), 1.1)]),
            pair: (1, 2.0),
        }
    }

    #[test]
    fn finite_values_serialise_as_serde_json_writes_them() {
        let value = order();
        assert_eq!(
            check(&value).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
        let amount = Amount::Range {
            low: 1.0,
            high: 2.0,
        };
        assert_eq!(
            check(&amount).unwrap(),
            serde_json::to_string(&amount).unwrap()
        );
    }

    #[test]
    fn a_non_finite_float_is_refused_with_its_path() {
        let mut value = order();
        value.lines[1].price = f64::NAN;
        let found = check(&value).unwrap_err();
        assert_eq!(found.field, "lines[1].price");
        assert_eq!(found.value, "NaN");

        let mut value = order();
        value.discount = Some(f32::INFINITY);
        assert_eq!(check(&value).unwrap_err().field, "discount");

        let mut value = order();
        value.rates.insert("usd".into(), f64::NEG_INFINITY);
        let found = check(&value).unwrap_err();
        assert_eq!(
            (found.field.as_str(), found.value.as_str()),
            ("rates[..]", "-inf")
        );

        let mut value = order();
        value.pair.1 = f64::NAN;
        assert_eq!(check(&value).unwrap_err().field, "pair[1]");
    }

    #[test]
    fn variants_and_bare_values_name_their_place() {
        assert_eq!(check(&Amount::Exact(f64::NAN)).unwrap_err().field, "Exact");
        let range = Amount::Range {
            low: 1.0,
            high: f64::INFINITY,
        };
        assert_eq!(check(&range).unwrap_err().field, "high");
        let bare = check(&f64::NAN).unwrap_err();
        assert_eq!(bare.field, "");
        assert_eq!(bare.to_string(), "NaN");
    }
}
