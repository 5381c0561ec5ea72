//! [`TenantScope::insert_many_copy`]: many rows at once through `COPY`, for large batches.
//!
//! # Design
//!
//! PostgreSQL refuses `COPY ... FROM` into a table with row-level security, and every table of
//! tenant data has it, forced. So the rows take a detour that keeps both locks:
//!
//! 1. **In Rust, before anything is written**, every row is prepared exactly as
//!    [`TenantScope::insert_many`] prepares it (the same function): "orgId" filled in when unset
//!    and otherwise required to name this tenant, an unset id made a CUID2, "updatedAt" set.
//!    Then the foreign keys of all rows are checked against the rows this tenant sees (the same
//!    one-query check as `insert_many`, in a read transaction of the tenant): a row pointing at
//!    another organization's row is refused with [`Error::TenantDenied`](crate::Error) and
//!    nothing is sent.
//! 2. **In PostgreSQL**, one transaction of the tenant, on a connection of the scope's pool,
//!    whose first statement is [`SET_TENANT_SQL`](crate::SET_TENANT_SQL) as in every scope
//!    transaction: the rows are copied into a temporary staging table,
//!    `CREATE TEMP TABLE ... (LIKE "Target" INCLUDING DEFAULTS) ON COMMIT DROP` (no row-level
//!    security, no index, no foreign key), then moved with
//!    `INSERT INTO "Target" SELECT * FROM` the staging table, as the tenant: the policy's USING
//!    and WITH CHECK check every row, its "orgId" and its foreign keys, as for any insert. The
//!    staging table goes with the transaction, committed or rolled back; a failure anywhere
//!    rolls the whole batch back.
//!
//! Rows are grouped by the columns they set, as in `insert_many`: each group is one `COPY` with
//! its own column list, and the staging table carries the target's defaults, so a column a row
//! leaves unset gets its default, not NULL. Values travel in `COPY`'s text format, escaped
//! ([`encode`]); a value of a type this module does not encode is [`Error::InvalidInput`]
//! (before anything is sent).
//!
//! Why not always: for 10,000 `FGOccurrence` rows this path was measurably faster than
//! `insert_many` (see BENCHMARKS.md), but it creates and drops a temporary table per call,
//! which costs a few catalog writes and is not worth it for a handful of rows. And inside
//! [`TenantScope::transaction`] the transaction belongs to SeaORM, which gives no access to its
//! connection for `COPY`: there this method does what `insert_many` does, with the same result.
//!
//! Value encoding ([`encode`]) is written here because no crate turns SeaORM's `Value` into
//! `COPY` text; sqlx's own `COPY` support takes raw bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use sea_orm::sqlx::{self, AssertSqlSafe};
use sea_orm::{
    ActiveModelTrait, ActiveValue, DatabaseConnection, DatabaseConnectionType, DbErr, EntityName,
    EntityTrait, IdenStatic, Iterable, RuntimeErr, Value,
};

use super::{SET_TENANT_SQL, TenantRow, TenantScope};
use crate::error::{Context, Operation};
use crate::trace;
use crate::{Error, Result};

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
    /// module's design notes). Inside [`TenantScope::transaction`] this does what
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
    {
        let Some(db) = self.pool().filter(|db| {
            matches!(
                db.inner,
                DatabaseConnectionType::SqlxPostgresPoolConnection(_)
            )
        }) else {
            return self.insert_many(rows).await;
        };
        let ctx = self.ctx_for::<A::Entity>(Operation::InsertMany);
        let Some((rows, checks)) = self.prepare_batch(&ctx, rows)? else {
            return Ok(0);
        };
        let groups = encode_groups(&ctx, rows)?;
        if !checks.is_empty() {
            // A read of the tenant: nothing to commit.
            let read = Context {
                operation: Operation::Find,
                ..ctx.clone()
            };
            let unit = self.unit(&read).await?;
            self.verify_fks(&unit, &ctx, &checks).await?;
            unit.finish(self, &read).await?;
        }
        let target = quote_ident(<A::Entity as Default>::default().table_name());
        trace::operation(
            &ctx,
            trace::count,
            self.copy_through_staging(db, &ctx, &target, groups),
        )
        .await
    }

    /// Step 2 of the design: one transaction of the tenant that copies `groups` into the
    /// staging table and moves them to `target`.
    async fn copy_through_staging(
        &self,
        db: &DatabaseConnection,
        ctx: &Context,
        target: &str,
        groups: Vec<Group>,
    ) -> Result<u64> {
        let fail_as = |operation: Operation| {
            move |e: sqlx::Error| {
                Error::from_db(
                    ctx.with_operation(operation),
                    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e))),
                )
            }
        };
        let fail = fail_as(ctx.operation);
        let pool = db.get_postgres_connection_pool();
        // Dropped unfinished (an error, or the future dropped), the transaction rolls back.
        let mut tx = pool.begin().await.map_err(fail_as(Operation::Begin))?;
        sqlx::query(SET_TENANT_SQL)
            .bind(self.org_id().as_str())
            .execute(&mut *tx)
            .await
            .map_err(fail_as(Operation::Begin))?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TEMP TABLE {STAGE} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DROP"
        )))
        .execute(&mut *tx)
        .await
        .map_err(&fail)?;
        for group in groups {
            let mut copy = tx
                .copy_in_raw(&format!("COPY {STAGE} ({}) FROM STDIN", group.columns))
                .await
                .map_err(&fail)?;
            copy.send(group.data.as_bytes()).await.map_err(&fail)?;
            copy.finish().await.map_err(&fail)?;
        }
        let inserted = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {target} SELECT * FROM {STAGE}"
        )))
        .execute(&mut *tx)
        .await
        .map_err(&fail)?
        .rows_affected();
        tx.commit().await.map_err(fail_as(Operation::Commit))?;
        Ok(inserted)
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
