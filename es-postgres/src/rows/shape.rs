//! A table's shape as the catalog describes it, and how a row's fields map to its columns.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A table's columns, as the catalog describes them.
pub(super) struct Shape {
    /// Every column, in table order: its name and whether the database makes its value
    /// (generated, or an identity `GENERATED ALWAYS`), so it is never written (but the key).
    pub(super) columns: Vec<(String, bool)>,
    /// Each column's position in `columns`, by name: every field of every written row is
    /// looked up here.
    pub(super) positions: HashMap<String, usize>,
    /// The position of the key column in `columns`.
    pub(super) key: usize,
    /// What the upsert says when the key is an identity column `GENERATED ALWAYS`, whose
    /// values are written only on request.
    pub(super) overriding: &'static str,
    /// `SELECT` of the stored rows of a JSON array of keys, with each key's position. The
    /// statements take JSON as `json`, not `jsonb`: PostgreSQL's custom plans fold the cast of
    /// the parameter while planning, and building a `jsonb` of a batch is costly there (M12 in
    /// `es-bench/README.md`).
    pub(super) load: String,
    /// `DELETE` of the rows of a JSON array of keys.
    pub(super) delete: String,
}

/// `name` as a quoted SQL identifier.
pub(super) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Each column of a table (`$1`, its quoted name): name, whether it is generated, whether it is
/// an identity `GENERATED ALWAYS`, its type (without length or precision: a cast to
/// `varchar(5)` would cut a longer key down to another row's), and whether a unique index
/// `ON CONFLICT` can use covers it alone (immediate, valid, not partial).
pub(super) const DESCRIBE_TABLE: &str = "SELECT a.attname::text, a.attgenerated <> '', \
     a.attidentity = 'a', pg_catalog.format_type(a.atttypid, NULL), EXISTS (\
         SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = a.attrelid \
         AND i.indisunique AND i.indimmediate AND i.indisvalid AND i.indnkeyatts = 1 \
         AND i.indkey[0] = a.attnum AND i.indpred IS NULL) \
     FROM pg_catalog.pg_attribute a \
     WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
     ORDER BY a.attnum";

/// Reads a serialised row's field names, skipping their values: marks the columns they name in
/// `columns` and returns the first that names none.
pub(super) struct FieldNames<'a> {
    pub(super) shape: &'a Shape,
    pub(super) columns: &'a mut [bool],
}

impl<'de> Visitor<'de> for FieldNames<'_> {
    type Value = Option<String>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a row as a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut unknown = None;
        while let Some(FieldName(name)) = map.next_key()? {
            map.next_value::<IgnoredAny>()?;
            let named = self.shape.positions.get(&*name);
            match named.and_then(|&index| self.columns.get_mut(index)) {
                Some(marked) => *marked = true,
                None => {
                    unknown.get_or_insert_with(|| name.into_owned());
                }
            }
        }
        Ok(unknown)
    }
}

/// A field name, borrowed from the serialised row unless it holds escapes.
struct FieldName<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(FieldNameVisitor)
    }
}

struct FieldNameVisitor;

impl<'de> Visitor<'de> for FieldNameVisitor {
    type Value = FieldName<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a field name")
    }

    fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Self::Value, E> {
        Ok(FieldName(Cow::Borrowed(name)))
    }

    fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
        Ok(FieldName(Cow::Owned(name.to_owned())))
    }

    fn visit_string<E>(self, name: String) -> Result<Self::Value, E> {
        Ok(FieldName(Cow::Owned(name)))
    }
}
