//! [`TenantScope::insert_many_copy`]: many rows at once through `COPY`, for large batches.
//!
//! # Design
//!
//! PostgreSQL refuses `COPY ... FROM` into a table with row-level security, and every table of
//! tenant data has it, forced. So the rows take a detour that keeps both locks:
//!
//! 1. **In Rust, before a chunk is sent**, every row is prepared exactly as
//!    [`TenantScope::insert_many`] prepares it (the same function): "orgId" filled in when unset
//!    and otherwise required to name this tenant, an unset id made a CUID2, "updatedAt" set.
//!    Then the foreign keys of the chunk's rows are checked against the rows this tenant sees
//!    (the same one-query check as `insert_many`): a row pointing at another organization's row
//!    is refused with [`Error::TenantDenied`](crate::Error).
//! 2. **In PostgreSQL**, in the tenant's transaction (the operation's own, opened with the
//!    tenant in one trip as every scope transaction, or a savepoint inside
//!    [`TenantScope::transaction`]: the crate holds the connection, so `COPY` runs there too):
//!    the rows are copied into a temporary staging table,
//!    `CREATE TEMP TABLE ... (LIKE "Target" INCLUDING DEFAULTS) ON COMMIT DROP` (no row-level
//!    security, no index, no foreign key), then moved with
//!    `INSERT INTO "Target" SELECT * FROM` the staging table, as the tenant: the policy's USING
//!    and WITH CHECK check every row, and the composite tenant keys its references, as for any
//!    insert. The staging table is emptied after each chunk and goes with the transaction; a
//!    failure anywhere rolls the whole batch back.
//!
//! Rows arrive as a stream ([`TenantScope::insert_many_copy_stream`]) and go in chunks of
//! [`COPY_CHUNK_ROWS`]: memory holds one chunk, whatever the batch. Within a chunk, rows are
//! grouped by the columns they set, as in `insert_many`: each group is one `COPY` with its own
//! column list, and the staging table carries the target's defaults, so a column a row leaves
//! unset gets its default, not NULL. Values travel in `COPY`'s text format, escaped
//! ([`encode`]); a value of a type this module does not encode is [`Error::InvalidInput`].
//! The first chunk is prepared before anything is sent, so a batch that fits in one chunk and
//! is refused in Rust never opens a transaction.
//!
//! **On Citus** (the extension installed in the database, asked once per call) there is no
//! staging table: Citus moves an `INSERT ... SELECT` from a local table into a distributed one
//! with `COPY` to the shards, which the workers refuse under row-level security. The chunks go
//! as multi-row `INSERT`s instead (what `insert_many` sends), each routed to the tenant's shard,
//! with the same preparation, checks, chunks and atomicity.
//!
//! Why not always: for 10,000 `FGOccurrence` rows this path was measurably faster than
//! `insert_many` (see BENCHMARKS.md), but it creates and drops a temporary table per call,
//! which costs a few catalog writes and is not worth it for a handful of rows.
//!
//! Value encoding ([`encode`]) is written here because no crate turns SeaORM's `Value` into
//! `COPY` text; sqlx's own `COPY` support takes raw bytes.

use std::collections::BTreeMap;

use futures_util::{Stream, StreamExt as _};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ConnectionTrait as _, EntityName, EntityTrait, IdenStatic,
    Iterable, Value,
};

use super::{TenantRow, TenantScope};
use crate::error::{Context, Operation};
use crate::trace;
use crate::{Error, Result};

/// How many rows [`TenantScope::insert_many_copy_stream`] prepares, checks and sends at a time.
pub const COPY_CHUNK_ROWS: usize = 10_000;

/// The staging table, in the session's own temporary schema.
const STAGE: &str = r#"pg_temp."_flakeguard_copy_stage""#;

/// The COPY data of one group of rows: its column list and its lines.
struct Group {
    columns: String,
    data: String,
}

impl TenantScope {
    /// Inserts many rows atomically (all or none) through `COPY`, and returns how many were
    /// inserted: for large batches, where it is faster than [`TenantScope::insert_many`].
    ///
    /// Each row is prepared and checked exactly as by `insert_many`: "orgId" is filled in (or
    /// must name this tenant), an unset id becomes a CUID2, "updatedAt" is set, and a row that
    /// names another organization or points a foreign key at a row this tenant does not see is
    /// refused with [`Error::TenantDenied`] before anything is written. A column a row leaves
    /// unset gets its database default.
    ///
    /// PostgreSQL does not allow `COPY` into a table with row-level security, so the rows are
    /// copied into a temporary staging table inside the tenant's transaction and moved from
    /// there with `INSERT ... SELECT`, which row-level security checks row by row (see the
    /// module's design notes). Inside [`TenantScope::transaction`] it takes a savepoint, as
    /// `insert_many` does.
    ///
    /// Values are sent in `COPY`'s text format: booleans, integers, floats, text, enums,
    /// bytes, JSON, dates, times and timestamps. A value of another type is
    /// [`Error::InvalidInput`].
    ///
    /// ```no_run
    /// # use flakeguard_db::{TenantScope, Result};
    /// # use flakeguard_db::entity::fg_occurrence;
    /// # async fn f(scope: TenantScope, rows: Vec<fg_occurrence::ActiveModel>) -> Result<()> {
    /// let inserted = scope.insert_many_copy(rows).await?;
    /// # Ok(()) }
    /// ```
    pub async fn insert_many_copy<A, I>(&self, rows: I) -> Result<u64>
    where
        A: TenantRow,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send,
    {
        self.insert_many_copy_stream(futures_util::stream::iter(rows))
            .await
    }

    /// Like [`TenantScope::insert_many_copy`], for rows that arrive as a stream (a parser, a
    /// file, another query): they are prepared, checked and sent in chunks of
    /// [`COPY_CHUNK_ROWS`](crate::COPY_CHUNK_ROWS), so memory holds one chunk, not the
    /// whole batch. All or none, as one transaction (a savepoint inside
    /// [`TenantScope::transaction`]): a row refused in a later chunk rolls back the chunks
    /// already sent.
    ///
    /// ```no_run
    /// # use flakeguard_db::{TenantScope, Result};
    /// # use flakeguard_db::entity::fg_occurrence;
    /// # async fn f(scope: TenantScope,
    /// #            rows: impl futures_util::Stream<Item = fg_occurrence::ActiveModel> + Send)
    /// #            -> Result<()> {
    /// let inserted = scope.insert_many_copy_stream(rows).await?;
    /// # Ok(()) }
    /// ```
    pub async fn insert_many_copy_stream<A, S>(&self, rows: S) -> Result<u64>
    where
        A: TenantRow,
        S: Stream<Item = A> + Send,
    {
        let ctx = self.ctx_for::<A::Entity>(Operation::InsertMany);
        let target = quote_ident(<A::Entity as Default>::default().table_name());
        trace::operation(&ctx, trace::count, async {
            let mut chunks = std::pin::pin!(rows.chunks(COPY_CHUNK_ROWS));
            // The first chunk is prepared before anything is sent: a batch refused in Rust
            // never opens a transaction.
            let Some(first) = chunks.next().await else {
                return Ok(0);
            };
            let Some(mut chunk) = self.prepare_batch(&ctx, first)? else {
                return Ok(0);
            };
            let unit = self.atomic_unit(&ctx).await?;
            if unit.check(&ctx, on_citus(unit.conn()).await)? {
                // Citus moves an INSERT ... SELECT from a local table into the shards with
                // COPY, which the workers refuse under row-level security: there the chunks
                // go as multi-row INSERTs, each routed to the tenant's shard.
                let mut inserted = 0;
                loop {
                    let (rows, checks) = chunk;
                    self.verify_fks(&unit, &ctx, &checks).await?;
                    inserted += self.insert_prepared(&unit, &ctx, rows).await?;
                    match chunks.next().await {
                        Some(next) => match self.prepare_batch(&ctx, next)? {
                            Some(next) => chunk = next,
                            None => break,
                        },
                        None => break,
                    }
                }
                unit.finish(self, &ctx).await?;
                return Ok(inserted);
            }
            let fresh_stage = format!(
                "DROP TABLE IF EXISTS {STAGE}; \
                 CREATE TEMP TABLE {STAGE} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DROP"
            );
            let move_rows = format!("INSERT INTO {target} SELECT * FROM {STAGE}");
            // After a chunk that is not the last, the staging table is emptied for the next.
            let move_and_empty = format!("{move_rows}; TRUNCATE {STAGE}");
            unit.check(&ctx, unit.conn().execute_unprepared(&fresh_stage).await)?;
            let mut inserted = 0;
            loop {
                let (rows, checks) = chunk;
                self.verify_fks(&unit, &ctx, &checks).await?;
                let groups = encode_groups(&ctx, rows)?;
                for group in groups {
                    let sql = format!("COPY {STAGE} ({}) FROM STDIN", group.columns);
                    unit.check(&ctx, unit.conn().copy_in(&sql, group.data).await)?;
                }
                // The next chunk is read (and prepared) before this one moves, so that the last
                // move leaves the staging table to the transaction's end: memory holds at most
                // this chunk's rows, already sent, and the next one's.
                let next = match chunks.next().await {
                    Some(next) => self.prepare_batch(&ctx, next)?,
                    None => None,
                };
                let sql = if next.is_some() {
                    &move_and_empty
                } else {
                    &move_rows
                };
                let moved = unit.conn().execute_unprepared(sql).await;
                inserted += unit.check(&ctx, moved)?.rows_affected();
                let Some(next) = next else {
                    break;
                };
                chunk = next;
            }
            unit.finish(self, &ctx).await?;
            Ok(inserted)
        })
        .await
    }
}

/// Whether the database runs Citus (the extension is installed in it).
async fn on_citus(conn: &crate::tx::Tx) -> std::result::Result<bool, sea_orm::DbErr> {
    if let Some(known) = conn.known_citus() {
        return Ok(known);
    }
    let row = conn
        .rows_by_name()
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            crate::pipe::CITUS_SQL,
        ))
        .await?;
    match row {
        Some(row) => row.try_get("", "citus"),
        None => Ok(false),
    }
}

/// The rows as COPY text, one group per set of columns the rows set.
fn encode_groups<A: ActiveModelTrait>(ctx: &Context, rows: Vec<A>) -> Result<Vec<Group>> {
    let columns: Vec<_> = <A::Entity as EntityTrait>::Column::iter().collect();
    let mut groups: BTreeMap<Vec<bool>, Group> = BTreeMap::new();
    for mut row in rows {
        // Taken, not cloned: the rows are not needed once encoded.
        let values: Vec<ActiveValue<Value>> = columns.iter().map(|c| row.take(*c)).collect();
        let shape: Vec<bool> = values.iter().map(|v| !v.is_not_set()).collect();
        let group = groups.entry(shape).or_insert_with_key(|shape| Group {
            columns: columns
                .iter()
                .zip(shape)
                .filter(|(_, set)| **set)
                .map(|(c, _)| quote_ident(c.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
            data: String::new(),
        });
        let mut first = true;
        for (col, value) in columns.iter().zip(values) {
            let (ActiveValue::Set(value) | ActiveValue::Unchanged(value)) = value else {
                continue;
            };
            if !first {
                group.data.push('\t');
            }
            first = false;
            encode(&mut group.data, &value).map_err(|reason| Error::InvalidInput {
                context: ctx.clone(),
                reason: format!("\"{}\": {reason}", col.as_str()),
            })?;
        }
        group.data.push('\n');
    }
    Ok(groups.into_values().collect())
}

/// Appends `value` to `out` in `COPY`'s text format: `\N` for NULL, text escaped so that no
/// value can end its field or line early.
///
/// Timestamps are written with microseconds, the precision of PostgreSQL's types, truncated
/// as the driver truncates them for `insert_many`.
pub(crate) fn encode(out: &mut String, value: &Value) -> std::result::Result<(), String> {
    use std::fmt::Write as _;
    const NULL: &str = "\\N";
    // Writing to a String cannot fail.
    macro_rules! put {
        ($opt:expr, |$v:ident| $($fmt:tt)+) => {
            match $opt {
                Some($v) => {
                    let _ = write!(out, $($fmt)+);
                }
                None => out.push_str(NULL),
            }
        };
    }
    match value {
        Value::Bool(v) => put!(v, |v| "{}", if *v { 't' } else { 'f' }),
        Value::TinyInt(v) => put!(v, |v| "{v}"),
        Value::SmallInt(v) => put!(v, |v| "{v}"),
        Value::Int(v) => put!(v, |v| "{v}"),
        Value::BigInt(v) => put!(v, |v| "{v}"),
        Value::TinyUnsigned(v) => put!(v, |v| "{v}"),
        Value::SmallUnsigned(v) => put!(v, |v| "{v}"),
        Value::Unsigned(v) => put!(v, |v| "{v}"),
        Value::BigUnsigned(v) => put!(v, |v| "{v}"),
        Value::Float(v) => match v {
            Some(v) => float(out, f64::from(*v)),
            None => out.push_str(NULL),
        },
        Value::Double(v) => match v {
            Some(v) => float(out, *v),
            None => out.push_str(NULL),
        },
        Value::String(v) => match v {
            Some(v) => escape(out, v),
            None => out.push_str(NULL),
        },
        Value::Char(v) => match v {
            Some(v) => escape(out, v.encode_utf8(&mut [0; 4])),
            None => out.push_str(NULL),
        },
        Value::Enum(v) => match v {
            sea_orm::sea_query::OptionEnum::Some(e) => escape(out, &e.value),
            sea_orm::sea_query::OptionEnum::None(_) => out.push_str(NULL),
        },
        Value::Bytes(v) => match v {
            // bytea's hex input, `\x...`, with its backslash escaped for COPY.
            Some(bytes) => {
                out.push_str("\\\\x");
                for b in bytes {
                    let _ = write!(out, "{b:02x}");
                }
            }
            None => out.push_str(NULL),
        },
        Value::Json(v) => match v {
            Some(json) => escape(out, &json.to_string()),
            None => out.push_str(NULL),
        },
        Value::ChronoDate(v) => put!(v, |v| "{}", v.format("%Y-%m-%d")),
        Value::ChronoTime(v) => put!(v, |v| "{}", v.format("%H:%M:%S%.6f")),
        Value::ChronoDateTime(v) => put!(v, |v| "{}", v.format("%Y-%m-%d %H:%M:%S%.6f")),
        Value::ChronoDateTimeUtc(v) => {
            put!(v, |v| "{}", v.format("%Y-%m-%d %H:%M:%S%.6f+00"))
        }
        Value::ChronoDateTimeLocal(v) => {
            put!(v, |v| "{}", v.format("%Y-%m-%d %H:%M:%S%.6f%:z"))
        }
        Value::ChronoDateTimeWithTimeZone(v) => {
            put!(v, |v| "{}", v.format("%Y-%m-%d %H:%M:%S%.6f%:z"))
        }
        other => return Err(format!("{other:?} cannot be sent through COPY")),
    }
    Ok(())
}

fn float(out: &mut String, v: f64) {
    use std::fmt::Write as _;
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        // Rust's shortest representation that reads back as the same f64.
        let _ = write!(out, "{v:?}");
    }
}

/// Text in COPY's text format: backslash, and the characters that end a field or a line,
/// escaped.
fn escape(out: &mut String, text: &str) {
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

/// A quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: Value) -> String {
        let mut out = String::new();
        encode(&mut out, &value).unwrap_or_else(|e| panic!("{e}"));
        out
    }

    #[test]
    fn text_is_escaped_so_that_no_value_ends_its_field_or_line() {
        assert_eq!(
            text(Value::from("a\tb\nc\rd\\e \\N \\.")),
            "a\\tb\\nc\\rd\\\\e \\\\N \\\\."
        );
        assert_eq!(text(Value::String(None)), "\\N");
        assert_eq!(text(Value::from("")), "");
    }

    #[test]
    fn scalars_use_postgres_input_syntax() {
        assert_eq!(text(Value::from(true)), "t");
        assert_eq!(text(Value::from(-42_i32)), "-42");
        assert_eq!(text(Value::Int(None)), "\\N");
        assert_eq!(text(Value::from(0.1_f64)), "0.1");
        assert_eq!(text(Value::from(f64::NAN)), "NaN");
        assert_eq!(text(Value::from(f64::NEG_INFINITY)), "-Infinity");
        assert_eq!(text(Value::from(vec![0_u8, 0xab])), "\\\\x00ab");
    }

    #[test]
    fn timestamps_keep_microseconds_and_zone() {
        let t = sea_orm::prelude::ChronoDateTimeUtc::from_timestamp(1_700_000_000, 123_456_789)
            .unwrap_or_default();
        assert_eq!(text(Value::from(t)), "2023-11-14 22:13:20.123456+00");
    }
}
