//! [`TableRows`] itself: load, change in memory, flush.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use super::error::{RowsError, not_loaded};
use super::shape::{DESCRIBE_TABLE, FieldNames, Shape, quote_identifier};
use serde::de::DeserializeOwned;
use serde::{Deserializer, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgConnection, Row as _};

/// The rows of one read-model table that a projection batch touches: loaded in one query
/// before the batch, changed in memory by the handlers, written back with one statement after
/// it.
///
/// A handler that updated its row with its own `UPDATE` would make one round trip per event,
/// which bounds a rebuild at a few thousand events a second however fast the database is.
/// With `TableRows` a projection keeps its handlers plain Rust over a row struct, and a batch
/// of thousands of events costs two statements (three when it removes rows):
/// [`load`](Self::load)'s query in the projection's [`BeginBatch`](es_core::BeginBatch) hook,
/// and [`flush`](Self::flush)'s write (and delete) in its [`EndBatch`](es_core::EndBatch) hook,
/// both in the runner's transaction, so the rows commit with the checkpoint. The first use
/// also reads the table's columns from the catalog, once.
///
/// Rows travel as JSON objects: a row type's fields are the table's columns, by name, and
/// PostgreSQL converts each value to its column's type (`json_populate_recordset`). Columns
/// no row of a batch names keep their default on insert and their value on update; generated
/// columns (and identity columns `GENERATED ALWAYS`) are never written. A field that names no
/// column is an error, not silently dropped. A batch writes every column any of its rows
/// names, in all its rows: a field that some rows skip (`#[serde(skip_serializing_if)]`) is
/// written as NULL in those rows. A row type with `#[serde(deny_unknown_fields)]` must name
/// every column, since loaded rows carry them all.
///
/// Keys are compared by PostgreSQL as the key column's type: two keys that differ in Rust but
/// are equal there (`"007"` and `"7"` on a `bigint` key, two spellings of a UUID held as
/// `String`) are two rows to `TableRows` and one to the table, and a flush that writes both
/// fails. Give the key its column's type (`i64`, `Uuid`). A column whose type is a `NOT NULL`
/// domain must be named by the row type; `f64::NAN` is written as NULL.
/// The key column must have a unique index of its own (`PRIMARY KEY` or `UNIQUE`); rows are
/// upserted on it, and the key a row is stored under is written to it, whatever the row's
/// own field says. A row whose key [`load`](Self::load) looked for and did not find is
/// inserted, not upserted, which is cheaper; should another session store that key before
/// the batch commits, the flush fails on the unique index and the runner's retry of the batch
/// loads the stored row.
///
/// The rows are not kept between batches: another worker may take the projection over and
/// change them. [`load`](Self::load) starts each batch afresh (also when a failed batch is
/// retried), and [`flush`](Self::flush) empties it.
///
/// ```no_run
/// use es_core::{BeginBatch, EndBatch, EventEnvelope, HandlerError, Project, RecordedEvent, event};
/// use es_postgres::{PgTransaction, TableRows};
///
/// #[event]
/// pub struct ItemAdded { pub quantity: u32 }
///
/// #[derive(serde::Serialize, serde::Deserialize, Default)]
/// struct Summary { item_count: i64 }
///
/// #[derive(es_core::Projection)]
/// #[projection(name = "order_summary", events(ItemAdded), begin_batch, end_batch)]
/// struct OrderSummary { rows: TableRows<String, Summary> }
///
/// impl BeginBatch<PgTransaction> for OrderSummary {
///     async fn begin_batch(&mut self, events: &[RecordedEvent], tx: &mut PgTransaction) -> Result<(), HandlerError> {
///         let keys = events.iter().map(|event| event.stream_id.as_str().to_owned());
///         Ok(self.rows.load(tx, keys).await?)
///     }
/// }
///
/// impl Project<ItemAdded, PgTransaction> for OrderSummary {
///     async fn project(&mut self, event: EventEnvelope<ItemAdded>, _: &mut PgTransaction) -> Result<(), HandlerError> {
///         let row = self.rows.get_or_insert_with(event.stream_id.as_str(), Summary::default)?;
///         row.item_count += i64::from(event.event.quantity);
///         Ok(())
///     }
/// }
///
/// impl EndBatch<PgTransaction> for OrderSummary {
///     async fn end_batch(&mut self, tx: &mut PgTransaction) -> Result<(), HandlerError> {
///         Ok(self.rows.flush(tx).await?)
///     }
/// }
///
/// let summary = OrderSummary { rows: TableRows::new("order_summary", "order_id") };
/// ```
pub struct TableRows<K, R> {
    /// The table as written in statements: quoted, with its schema if one was given.
    table: String,
    /// The key column, unquoted.
    key_column: String,
    /// The key column as a JSON object's name, with its colon: `"order_id":`.
    key_name: String,
    /// The table's columns, read from the catalog at first use.
    shape: Option<Arc<Shape>>,
    /// The batch's rows by key: `None` for a key whose row does not exist (or was removed).
    rows: HashMap<K, Slot<R>>,
    /// Write statements by the set of columns they write and the kinds of rows they take.
    writes: HashMap<(Vec<usize>, Writes), Arc<str>>,
}

/// A row the batch knows the state of.
struct Slot<R> {
    row: Option<R>,
    /// Whether the batch may have changed it (handed out mutably, inserted or removed).
    changed: bool,
    /// Whether [`TableRows::load`] looked for its stored row and found none: a row written for
    /// the key is then inserted without `ON CONFLICT`.
    absent: bool,
}

/// The kinds of rows one flush writes, which decide its statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Writes {
    /// Only rows whose keys the batch loaded and found absent: a plain `INSERT`.
    Fresh,
    /// Only rows that may be stored: an upsert.
    Stored,
    /// Both: the plain `INSERT` of the fresh rows in a `WITH` clause of the upsert, so one
    /// statement still writes the batch.
    Both,
}

impl<K, R> fmt::Debug for TableRows<K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableRows")
            .field("table", &self.table)
            .field("key_column", &self.key_column)
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

impl<K, R> TableRows<K, R>
where
    K: Serialize + Eq + Hash + Clone + fmt::Debug + Send,
    R: Serialize + DeserializeOwned + Send,
{
    /// The rows of `table` (on the connection's search path), keyed by `key_column`. Names are
    /// taken as they are written (they are quoted): `"order_summary"`, not `"Order_Summary"`.
    #[must_use]
    pub fn new(table: &str, key_column: &str) -> Self {
        Self {
            table: quote_identifier(table),
            key_column: key_column.to_owned(),
            key_name: format!("{}:", Value::String(key_column.to_owned())),
            shape: None,
            rows: HashMap::new(),
            writes: HashMap::new(),
        }
    }

    /// The rows of `table` in `schema`, keyed by `key_column`.
    #[must_use]
    pub fn in_schema(schema: &str, table: &str, key_column: &str) -> Self {
        let mut rows = Self::new(table, key_column);
        rows.table = format!("{}.{}", quote_identifier(schema), rows.table);
        rows
    }

    /// Forgets the rows held and loads those of `keys` (repeats are loaded once): a key with no
    /// row is known to have none, so [`get`](Self::get) returns `Ok(None)` for it.
    ///
    /// # Errors
    ///
    /// When the table or its key column does not exist, the key has no unique index, a key
    /// cannot be serialised, a stored row does not deserialise into `R`, or the query fails.
    pub async fn load<I>(&mut self, tx: &mut PgConnection, keys: I) -> Result<(), RowsError>
    where
        I: IntoIterator<Item = K>,
    {
        self.rows.clear();
        let mut ordered = Vec::new();
        for key in keys {
            if let Entry::Vacant(vacant) = self.rows.entry(key) {
                ordered.push(vacant.key().clone());
                vacant.insert(Slot {
                    row: None,
                    changed: false,
                    absent: true,
                });
            }
        }
        if ordered.is_empty() {
            return Ok(());
        }
        let loaded = self.load_rows(tx, &ordered).await;
        if loaded.is_err() {
            // Nothing is known of the keys: `get` must not answer "no row" for them.
            self.rows.clear();
        }
        loaded
    }

    /// Fills the slots of `ordered` (already made, empty) with their stored rows.
    async fn load_rows(&mut self, tx: &mut PgConnection, ordered: &[K]) -> Result<(), RowsError> {
        let shape = self.shape(tx).await?;
        let keys = self.keys_json(ordered)?;
        let result = sqlx::query(sqlx::AssertSqlSafe(shape.load.as_str()))
            .bind(keys)
            .fetch_all(&mut *tx)
            .await;
        let found = result.map_err(|source| self.refused("loading rows of", source))?;
        tracing::debug!(table = %self.table, keys = ordered.len(), found = found.len(), "rows loaded");
        for row in found {
            let index = row
                .try_get::<i64, _>(0)
                .map_err(|source| self.database("loading rows of", source))?;
            let Some(key) = usize::try_from(index)
                .ok()
                .and_then(|index| ordered.get(index.wrapping_sub(1)))
            else {
                continue;
            };
            let decoded = row
                .try_get::<Json<R>, _>(1)
                .map_err(|source| RowsError::Decode {
                    table: self.table.clone(),
                    key: format!("{key:?}"),
                    source,
                })?;
            if let Some(slot) = self.rows.get_mut(key) {
                slot.row = Some(decoded.0);
                slot.absent = false;
            }
        }
        Ok(())
    }

    /// The row of `key`: `Ok(None)` when it does not exist.
    ///
    /// # Errors
    ///
    /// [`RowsError::NotLoaded`] when the batch did not load `key` (nor insert or remove it).
    pub fn get<Q>(&self, key: &Q) -> Result<Option<&R>, RowsError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + fmt::Debug + ?Sized,
    {
        match self.rows.get(key) {
            Some(slot) => Ok(slot.row.as_ref()),
            None => Err(not_loaded(&self.table, key)),
        }
    }

    /// The row of `key` to change: `Ok(None)` when it does not exist. A row handed out is
    /// written back by [`flush`](Self::flush).
    ///
    /// # Errors
    ///
    /// [`RowsError::NotLoaded`] when the batch did not load `key` (nor insert or remove it).
    pub fn get_mut<Q>(&mut self, key: &Q) -> Result<Option<&mut R>, RowsError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + fmt::Debug + ?Sized,
    {
        let Some(slot) = self.rows.get_mut(key) else {
            return Err(not_loaded(&self.table, key));
        };
        slot.changed |= slot.row.is_some();
        Ok(slot.row.as_mut())
    }

    /// The row of `key` to change, made by `make` when it does not exist.
    ///
    /// # Errors
    ///
    /// [`RowsError::NotLoaded`] when the batch did not load `key` (nor insert or remove it).
    pub fn get_or_insert_with<Q>(
        &mut self,
        key: &Q,
        make: impl FnOnce() -> R,
    ) -> Result<&mut R, RowsError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + fmt::Debug + ?Sized,
    {
        let Some(slot) = self.rows.get_mut(key) else {
            return Err(not_loaded(&self.table, key));
        };
        slot.changed = true;
        Ok(slot.row.get_or_insert_with(make))
    }

    /// Sets the row of `key`, replacing any (loaded or not: the stored one is overwritten).
    pub fn insert(&mut self, key: K, row: R) {
        self.set(key, Some(row));
    }

    /// Removes the row of `key` (loaded or not: the stored one is deleted), returning it if
    /// the batch held it.
    pub fn remove(&mut self, key: K) -> Option<R> {
        self.set(key, None)
    }

    /// Sets the slot of `key` to `row`, changed, returning the row it held. What `load` learnt
    /// of the stored row stays: a key loaded and found absent is still absent from the table.
    fn set(&mut self, key: K, row: Option<R>) -> Option<R> {
        match self.rows.entry(key) {
            Entry::Occupied(mut occupied) => {
                let slot = occupied.get_mut();
                slot.changed = true;
                std::mem::replace(&mut slot.row, row)
            }
            Entry::Vacant(vacant) => {
                vacant.insert(Slot {
                    row,
                    changed: true,
                    absent: false,
                });
                None
            }
        }
    }

    /// The number of rows the batch holds (loaded, inserted or removed).
    #[must_use]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the batch holds no rows.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Writes back every row the batch may have changed (one statement, and one delete if rows
    /// were removed) and empties the batch, also when it fails: the runner then retries the
    /// batch from [`load`](Self::load).
    ///
    /// # Errors
    ///
    /// When a row does not serialise as a JSON object, names a field that is not a column, or
    /// a statement fails.
    pub async fn flush(&mut self, tx: &mut PgConnection) -> Result<(), RowsError> {
        let rows = std::mem::take(&mut self.rows);
        if !rows.values().any(|slot| slot.changed) {
            return Ok(());
        }
        let shape = self.shape(tx).await?;
        // Rows whose keys were loaded and found absent, and the others, as two JSON arrays.
        let (mut fresh, mut stored) = (Vec::new(), Vec::new());
        let mut removed = Vec::new();
        let mut columns = vec![false; shape.columns.len()];
        if let Some(key) = columns.get_mut(shape.key) {
            *key = true;
        }
        for (key, slot) in rows.iter().filter(|(_, slot)| slot.changed) {
            let Some(row) = &slot.row else {
                removed.push(key.clone());
                continue;
            };
            let out = if slot.absent { &mut fresh } else { &mut stored };
            out.push(if out.is_empty() { b'[' } else { b',' });
            let outcome = self.write_row(out, key, row, &shape, &mut columns);
            if let Err(error @ RowsError::NoSuchColumn { .. }) = outcome {
                // The table may have gained the column since its shape was read (a
                // migration while the projection runs): the retry reads it again.
                self.forget_shape();
                return Err(error);
            }
            outcome?;
        }
        if !removed.is_empty() {
            let keys = self.keys_json(&removed)?;
            let result = sqlx::query(sqlx::AssertSqlSafe(shape.delete.as_str()))
                .bind(keys)
                .execute(&mut *tx)
                .await;
            result.map_err(|source| self.refused("deleting rows of", source))?;
        }
        let writes = match (fresh.is_empty(), stored.is_empty()) {
            (true, true) => None,
            (false, true) => Some(Writes::Fresh),
            (true, false) => Some(Writes::Stored),
            (false, false) => Some(Writes::Both),
        };
        if let Some(writes) = writes {
            let statement = self.write_statement(&shape, &columns, writes);
            // `$1` is the upsert's rows, `$2` the plain insert's (`$1` when only it runs).
            let mut query = sqlx::query(sqlx::AssertSqlSafe(&*statement));
            for rows in [stored, fresh] {
                if !rows.is_empty() {
                    query = query.bind(self.json_array(rows)?);
                }
            }
            let result = query.execute(&mut *tx).await;
            result.map_err(|source| self.refused("writing rows of", source))?;
        }
        tracing::debug!(table = %self.table, ?writes, removed = removed.len(), "rows flushed");
        Ok(())
    }

    /// Closes `rows`, a JSON array written by [`write_row`](Self::write_row) up to its last
    /// element, and makes it text.
    fn json_array(&self, mut rows: Vec<u8>) -> Result<String, RowsError> {
        rows.push(b']');
        String::from_utf8(rows).map_err(|error| RowsError::Encode {
            table: self.table.clone(),
            key: "(the batch)".to_owned(),
            source: serde::ser::Error::custom(error),
        })
    }

    /// Appends `row` to `out` as the JSON object written for `key`: the row's fields, then the
    /// key column (a JSON object's last value for a name is the one PostgreSQL keeps, so the
    /// key wins over a field of the same name). Checks that each field names a column of
    /// `shape` and marks it in `columns`.
    fn write_row(
        &self,
        out: &mut Vec<u8>,
        key: &K,
        row: &R,
        shape: &Shape,
        columns: &mut [bool],
    ) -> Result<(), RowsError> {
        let encode = |source| RowsError::Encode {
            table: self.table.clone(),
            key: format!("{key:?}"),
            source,
        };
        let start = out.len();
        serde_json::to_writer(&mut *out, row).map_err(encode)?;
        let object = out.get(start..).unwrap_or_default();
        if object.first() != Some(&b'{') || object.last() != Some(&b'}') {
            return Err(RowsError::NotAnObject {
                table: self.table.clone(),
                key: format!("{key:?}"),
            });
        }
        // Only the field names are read back (values are skipped): every row's, since a field
        // may be skipped in some rows and not in others.
        let fields = FieldNames { shape, columns };
        let unknown = serde_json::Deserializer::from_slice(object)
            .deserialize_map(fields)
            .map_err(encode)?;
        if let Some(column) = unknown {
            return Err(RowsError::NoSuchColumn {
                table: self.table.clone(),
                column,
            });
        }
        let empty = object.len() == 2;
        out.pop();
        if !empty {
            out.push(b',');
        }
        out.extend_from_slice(self.key_name.as_bytes());
        serde_json::to_writer(&mut *out, key).map_err(encode)?;
        out.push(b'}');
        Ok(())
    }

    /// The statement writing the key and the columns marked in `columns`, but those the
    /// database makes, of the rows `writes` says: rows that may be stored are upserted, rows
    /// known absent plainly inserted, which spares the speculative insertion `ON CONFLICT`
    /// makes per row (M13 in `es-bench/README.md`). Should another session
    /// insert such a row after the batch loaded, the insert fails on the key's unique index
    /// and the runner retries the batch, which then loads it.
    fn write_statement(&mut self, shape: &Shape, columns: &[bool], writes: Writes) -> Arc<str> {
        let written: Vec<usize> = columns
            .iter()
            .zip(&shape.columns)
            .enumerate()
            .filter(|(index, (named, (_, generated)))| {
                *index == shape.key || (**named && !*generated)
            })
            .map(|(index, _)| index)
            .collect();
        let cached = (written, writes);
        if let Some(statement) = self.writes.get(&cached) {
            return Arc::clone(statement);
        }
        let written = &cached.0;
        let name = |index: &usize| {
            shape
                .columns
                .get(*index)
                .map(|(name, _)| quote_identifier(name))
                .unwrap_or_default()
        };
        let list = written.iter().map(name).collect::<Vec<_>>().join(", ");
        let others: Vec<String> = written
            .iter()
            .filter(|index| **index != shape.key)
            .map(name)
            .collect();
        let key = quote_identifier(&self.key_column);
        let table = &self.table;
        let on_conflict = if others.is_empty() {
            "DO NOTHING".to_owned()
        } else {
            let excluded = others
                .iter()
                .map(|column| format!("EXCLUDED.{column}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!("DO UPDATE SET ({}) = ROW({excluded})", others.join(", "))
        };
        let overriding = shape.overriding;
        let insert = |rows: &str| {
            format!(
                "INSERT INTO {table} ({list}){overriding} SELECT {list} \
                 FROM json_populate_recordset(NULL::{table}, {rows}::json)"
            )
        };
        let statement: Arc<str> = match writes {
            Writes::Fresh => insert("$1"),
            Writes::Stored => format!("{} ON CONFLICT ({key}) {on_conflict}", insert("$1")),
            // The two sets of keys are disjoint, so the sub-statements, which do not see each
            // other's rows, cannot meet on the key.
            Writes::Both => format!(
                "WITH fresh AS ({}) {} ON CONFLICT ({key}) {on_conflict}",
                insert("$2"),
                insert("$1")
            ),
        }
        .into();
        self.writes.insert(cached, Arc::clone(&statement));
        statement
    }

    /// `keys` as a JSON array.
    fn keys_json(&self, keys: &[K]) -> Result<String, RowsError> {
        serde_json::to_string(keys).map_err(|source| RowsError::Encode {
            table: self.table.clone(),
            key: "(the batch's keys)".to_owned(),
            source,
        })
    }

    /// The table's columns, read from the catalog once.
    async fn shape(&mut self, tx: &mut PgConnection) -> Result<Arc<Shape>, RowsError> {
        if let Some(shape) = &self.shape {
            return Ok(Arc::clone(shape));
        }
        let result = sqlx::query(DESCRIBE_TABLE)
            .bind(&self.table)
            .fetch_all(&mut *tx)
            .await;
        let described = result.map_err(|source| self.refused("reading the columns of", source))?;
        if described.is_empty() {
            return Err(RowsError::NoSuchTable {
                table: self.table.clone(),
            });
        }
        let mut columns = Vec::with_capacity(described.len());
        let mut key = None;
        let mut key_type = String::new();
        let mut key_identity = false;
        let unreadable = |source| self.database("reading the columns of", source);
        for row in &described {
            let read = |index| row.try_get::<bool, _>(index).map_err(unreadable);
            let name: String = row.try_get(0).map_err(unreadable)?;
            let (generated, identity, unique) = (read(1)?, read(2)?, read(4)?);
            if name == self.key_column {
                key_type = row.try_get(3).map_err(unreadable)?;
                if generated {
                    return Err(RowsError::KeyGenerated {
                        table: self.table.clone(),
                        column: name,
                    });
                }
                if !unique {
                    return Err(RowsError::KeyNotUnique {
                        table: self.table.clone(),
                        column: name,
                    });
                }
                key = Some(columns.len());
                key_identity = identity;
            }
            columns.push((name, generated || identity));
        }
        let Some(key) = key else {
            return Err(RowsError::NoSuchColumn {
                table: self.table.clone(),
                column: self.key_column.clone(),
            });
        };
        let (table, column) = (&self.table, quote_identifier(&self.key_column));
        let positions = columns
            .iter()
            .enumerate()
            .map(|(index, (name, _))| (name.clone(), index))
            .collect();
        let shape = Arc::new(Shape {
            columns,
            positions,
            key,
            overriding: if key_identity {
                " OVERRIDING SYSTEM VALUE"
            } else {
                ""
            },
            load: format!(
                "SELECT k.position, row_to_json(t) \
                 FROM json_array_elements_text($1::json) WITH ORDINALITY AS k(key, position) \
                 JOIN {table} AS t ON t.{column} = k.key::{key_type}"
            ),
            delete: format!(
                "DELETE FROM {table} AS t USING json_array_elements_text($1::json) AS k(key) \
                 WHERE t.{column} = k.key::{key_type}"
            ),
        });
        self.shape = Some(Arc::clone(&shape));
        Ok(shape)
    }

    /// A refused statement. The table's shape is read again next time, in case it changed
    /// (a migration while the projection runs), or every retry would fail the same way.
    fn refused(&mut self, action: &'static str, source: sqlx::Error) -> RowsError {
        self.forget_shape();
        self.database(action, source)
    }

    /// Forgets the table's shape and the statements built on it; the next use reads it again.
    fn forget_shape(&mut self) {
        self.shape = None;
        self.writes.clear();
    }

    /// A database error while `action`.
    fn database(&self, action: &'static str, source: sqlx::Error) -> RowsError {
        RowsError::Database {
            table: self.table.clone(),
            action,
            source,
        }
    }
}
