//! Writes: insert, update, delete and upsert, one row or many, and raw statements.

use std::collections::{BTreeMap, BTreeSet};

use flakeguard_entity::TableInfo;
use flakeguard_entity::tenancy::TenantOwned;
use sea_orm::sea_query::{Alias, Expr, ExprTrait as _, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, ExecResult,
    ForeignKeyAction, IdenStatic, Iterable, PrimaryKeyToColumn, PrimaryKeyTrait, QueryFilter,
    QueryTrait as _, Statement, sea_query::IntoValueTuple as _,
};

use super::guard::{single, table_of};
use super::unit::Unit;
use super::{TenantRow, TenantScope};
use crate::error::{Context, Operation};
use crate::trace;
use crate::{Error, Result};

/// PostgreSQL's limit on bind parameters in one statement.
const MAX_BIND_PARAMS: usize = 65_535;

type Model<A> = <<A as ActiveModelTrait>::Entity as EntityTrait>::Model;

/// An insert whose ownership checks passed and which still wrote nothing (a referenced row
/// went away between the two statements): refused all the same.
fn refused_insert(e: Error, ctx: &crate::error::Context) -> Error {
    match e {
        Error::Database {
            source: DbErr::RecordNotInserted,
            ..
        } => Error::TenantDenied {
            context: ctx.clone(),
            reason: "a referenced row is not this organization's".to_owned(),
        },
        e => e,
    }
}

impl TenantScope {
    /// Inserts one row and returns it as stored.
    ///
    /// An unset id becomes a CUID2, "updatedAt" is set, "orgId" is filled in when unset (for
    /// `Organization`, the id is the tenant id). Refused with [`Error::TenantDenied`], before
    /// anything is sent, when the row names another organization or a foreign key points at a
    /// row this tenant does not see.
    pub async fn insert<A>(&self, mut row: A) -> Result<Model<A>>
    where
        A: TenantRow,
    {
        let ctx = self.ctx_for::<A::Entity>(Operation::Insert);
        self.prepare_insert(&ctx, &mut row)?;
        let checks = self.fk_checks(&ctx, std::slice::from_ref(&row), true)?;
        let insert = if checks.is_empty() {
            <A::Entity as EntityTrait>::insert(row)
        } else {
            // INSERT ... SELECT <values> WHERE <references are this tenant's>: the ownership
            // check travels with the write.
            let values = self.owned_values(&row, &checks);
            let mut insert = <A::Entity as EntityTrait>::insert(row);
            insert
                .query()
                .select_from(values)
                .map_err(|e| Error::from_db(ctx.clone(), DbErr::Custom(e.to_string())))?;
            insert
        };
        self.statement(&ctx, &[], &checks, trace::one, |tx| {
            Box::pin(insert.exec_with_returning(tx.rows_by_name()))
        })
        .await
        .map_err(|e| refused_insert(e, &ctx))
    }

    /// Inserts many rows atomically (all or none) and returns how many were inserted.
    ///
    /// Each row is prepared as by [`TenantScope::insert`]. Rows are grouped by the columns they
    /// set, so a column left unset gets its database default, and sent in statements within
    /// PostgreSQL's limit of bind parameters.
    pub async fn insert_many<A, I>(&self, rows: I) -> Result<u64>
    where
        A: TenantRow,
        I: IntoIterator<Item = A>,
    {
        let ctx = self.ctx_for::<A::Entity>(Operation::InsertMany);
        let Some((rows, checks)) = self.prepare_batch(&ctx, rows)? else {
            return Ok(0);
        };
        trace::operation(&ctx, trace::count, async {
            let unit = self.atomic_unit(&ctx).await?;
            self.verify_fks(&unit, &ctx, &checks).await?;
            let inserted = self.insert_prepared(&unit, &ctx, rows).await?;
            unit.finish(self, &ctx).await?;
            Ok(inserted)
        })
        .await
    }

    /// Sends rows prepared by [`TenantScope::prepare_batch`] (their foreign keys checked) on
    /// `unit` as multi-row `INSERT`s, grouped by the columns they set and within PostgreSQL's
    /// limit of bind parameters; the rows inserted.
    pub(crate) async fn insert_prepared<A>(
        &self,
        unit: &Unit<'_>,
        ctx: &Context,
        rows: Vec<A>,
    ) -> Result<u64>
    where
        A: TenantRow,
    {
        // Group rows by the set of columns they carry: InsertMany sends NULL, not DEFAULT, for a
        // column one row leaves unset while another sets it.
        let mut groups: BTreeMap<Vec<bool>, Vec<A>> = BTreeMap::new();
        for row in rows {
            let shape = <A::Entity as EntityTrait>::Column::iter()
                .map(|c| !row.is_not_set(c))
                .collect();
            groups.entry(shape).or_default().push(row);
        }
        let mut inserted = 0;
        for (shape, rows) in groups {
            let width = shape.iter().filter(|set| **set).count().max(1);
            let per_statement = (MAX_BIND_PARAMS / width).max(1);
            let mut rows = rows.into_iter().peekable();
            while rows.peek().is_some() {
                let chunk: Vec<A> = rows.by_ref().take(per_statement).collect();
                inserted += unit.check(
                    ctx,
                    <A::Entity as EntityTrait>::insert_many(chunk)
                        .exec_without_returning(unit.conn())
                        .await,
                )?;
            }
        }
        Ok(inserted)
    }

    /// Updates the columns that `row` sets, on this tenant's row with `row`'s primary key, and
    /// returns the row as stored. "updatedAt" is refreshed.
    ///
    /// [`Error::NotFound`] when this tenant has no such row; [`Error::TenantDenied`] when the
    /// update would move the row to another organization or point a foreign key at a row this
    /// tenant does not see.
    pub async fn update<A>(&self, mut row: A) -> Result<Model<A>>
    where
        A: TenantRow,
    {
        let ctx = self.ctx_for::<A::Entity>(Operation::Update);
        for pk in <<A::Entity as EntityTrait>::PrimaryKey as Iterable>::iter() {
            let col = pk.into_column();
            if row.is_not_set(col) {
                return Err(Error::InvalidInput {
                    context: ctx,
                    reason: format!(
                        "update needs the row's primary key: \"{}\" is not set",
                        col.as_str()
                    ),
                });
            }
        }
        self.check_update(&ctx, &row)?;
        row.stamp_for_update();
        let checks = self.fk_checks(&ctx, std::slice::from_ref(&row), false)?;
        let cond = <A::Entity as TenantOwned>::tenant_condition(self.org.as_str());
        let update = <A::Entity as EntityTrait>::update(row)
            .validate()
            .map_err(|e| Error::from_db(ctx.clone(), e))?
            .filter(cond)
            .filter(self.owned(&checks));
        self.statement(&ctx, &[], &checks, trace::one, |tx| {
            Box::pin(update.exec(tx.rows_by_name()))
        })
        .await
    }

    /// Sets the columns that `values` sets on every row of this tenant that satisfies `filter`,
    /// refreshing "updatedAt"; returns how many rows changed.
    pub async fn update_many<A>(&self, mut values: A, filter: impl Into<Condition>) -> Result<u64>
    where
        A: TenantRow,
    {
        let ctx = self.ctx_for::<A::Entity>(Operation::UpdateMany);
        let filter: Condition = filter.into();
        self.check_update(&ctx, &values)?;
        for pk in <<A::Entity as EntityTrait>::PrimaryKey as Iterable>::iter() {
            let col = pk.into_column();
            if values.get(col).is_set() {
                return Err(Error::InvalidInput {
                    context: ctx,
                    reason: format!(
                        "update many cannot change the key column \"{}\"",
                        col.as_str()
                    ),
                });
            }
        }
        values.stamp_for_update();
        let checks = self.fk_checks(&ctx, std::slice::from_ref(&values), false)?;
        let update = <A::Entity as EntityTrait>::update_many()
            .set(values)
            .filter(<A::Entity as TenantOwned>::tenant_condition(
                self.org.as_str(),
            ))
            .filter(filter.clone())
            .filter(self.owned(&checks));
        self.execute_checked(&ctx, &checks, &update, filter).await
    }

    /// Deletes this tenant's row of `E` with primary key `id`; [`Error::NotFound`] when there is
    /// none (including another organization's row, which is left alone).
    ///
    /// Rows that reference it through a foreign key that the schema declares `ON DELETE SET
    /// NULL` get that reference nulled first, in the same transaction (see
    /// [`TenantScope::delete_many`]).
    pub async fn delete<E, K>(&self, id: K) -> Result<()>
    where
        E: TenantOwned,
        E::Model: Send + Sync,
        K: Into<<E::PrimaryKey as PrimaryKeyTrait>::ValueType>,
    {
        let ctx = self.ctx_for::<E>(Operation::Delete);
        if !set_null_references(E::default().table_name()).is_empty() {
            let mut by_id = Condition::all();
            let key = <E::PrimaryKey as Iterable>::iter().map(PrimaryKeyToColumn::into_column);
            for (col, value) in key.zip(id.into().into_value_tuple()) {
                by_id = by_id.add(Expr::col((E::default(), col)).eq(value));
            }
            return match self.delete_filtered::<E>(&ctx, by_id).await? {
                0 => Err(Error::NotFound { context: ctx }),
                _ => Ok(()),
            };
        }
        let delete = E::delete_by_id(id).filter(E::tenant_condition(self.org.as_str()));
        self.statement(&ctx, &[], &[], trace::count, |tx| {
            Box::pin(async move {
                match delete.exec(tx).await?.rows_affected {
                    // Not this tenant's row, or none at all: the two are not told apart.
                    0 => Err(DbErr::RecordNotUpdated),
                    n => Ok(n),
                }
            })
        })
        .await
        .map(|_| ())
    }

    /// Deletes every row of this tenant's `E` that satisfies `filter`; returns how many.
    ///
    /// Where the schema declares a reference to `E` `ON DELETE SET NULL` (an occurrence's
    /// `FGJob`, a check run's `WorkflowRun`, ...), the referencing rows get it nulled first, in
    /// the same transaction, by an `UPDATE` of this tenant's rows: on a single server the
    /// foreign key would do it too, but on Citus those keys are `NO ACTION` (Citus refuses
    /// `SET NULL` on a key that includes the distribution column), and without it the delete
    /// would be refused (README, "Scaling out").
    pub async fn delete_many<E>(&self, filter: impl Into<Condition>) -> Result<u64>
    where
        E: TenantOwned,
        E::Model: Send + Sync,
    {
        let ctx = self.ctx_for::<E>(Operation::DeleteMany);
        let filter: Condition = filter.into();
        if !set_null_references(E::default().table_name()).is_empty() {
            return self.delete_filtered::<E>(&ctx, filter).await;
        }
        let delete = E::delete_many()
            .filter(E::tenant_condition(self.org.as_str()))
            .filter(filter.clone());
        self.execute_checked(&ctx, &[], &delete, filter).await
    }

    /// The delete of `filter`'s rows of `E` with its references nulled first (see
    /// [`TenantScope::delete_many`]): one transaction (a savepoint inside one), every statement
    /// checked by the Rust lock before anything is sent.
    async fn delete_filtered<E>(&self, ctx: &Context, filter: Condition) -> Result<u64>
    where
        E: TenantOwned,
        E::Model: Send + Sync,
    {
        let org = self.org.as_str();
        let raw = crate::lock::raw_text(&Expr::from(filter.clone()));
        let mut statements = Vec::new();
        for (child, column, key) in set_null_references(E::default().table_name()) {
            let Some(child_filter) = (child.row_filter)(org) else {
                continue;
            };
            let parents = Query::select()
                .column((E::default(), Alias::new(key)))
                .from(E::default())
                .cond_where(E::tenant_condition(org))
                .cond_where(filter.clone())
                .to_owned();
            let update = Query::update()
                .table(Alias::new(child.name))
                .value(Alias::new(column.as_str()), Option::<String>::None)
                .cond_where(child_filter)
                .and_where(
                    Expr::col((Alias::new(child.name), Alias::new(column.as_str())))
                        .in_subquery(parents),
                )
                .to_owned();
            statements.push(
                self.verified_with(ctx, raw.as_deref(), || DbBackend::Postgres.build(&update))?,
            );
        }
        let delete = E::delete_many()
            .filter(E::tenant_condition(org))
            .filter(filter);
        let delete = self.verified(ctx, &delete, raw.as_deref())?;
        trace::operation(ctx, trace::count, async {
            let unit = self.atomic_unit(ctx).await?;
            for stmt in statements {
                unit.check(ctx, unit.conn().execute_raw(stmt).await)?;
            }
            let deleted = unit
                .check(ctx, unit.conn().execute_raw(delete).await)?
                .rows_affected();
            unit.finish(self, ctx).await?;
            Ok(deleted)
        })
        .await
    }

    /// Runs `query`, an UPDATE or DELETE carrying the caller's `filter` (and the ownership
    /// checks `checks`, [`TenantScope::owned`]), after the Rust lock's check of its text; the
    /// rows it changed. When it changed none and `checks` are not empty, a failed check is
    /// reported as such ([`Error::TenantDenied`]).
    async fn execute_checked(
        &self,
        ctx: &crate::error::Context,
        checks: &[super::guard::FkCheck],
        query: &impl sea_orm::QueryTrait,
        filter: Condition,
    ) -> Result<u64> {
        let raw = crate::lock::raw_text(&sea_orm::sea_query::Expr::from(filter));
        let stmt = self.verified(ctx, query, raw.as_deref())?;
        let folded = !checks.is_empty();
        let changed = self
            .statement(ctx, &[], checks, trace::count, |tx| {
                Box::pin(async move {
                    match tx.execute_raw(stmt).await?.rows_affected() {
                        0 if folded => Err(DbErr::RecordNotUpdated),
                        n => Ok(n),
                    }
                })
            })
            .await;
        match changed {
            // No row matched, and every reference is this tenant's: nothing to change.
            Err(Error::NotFound { .. }) if folded => Ok(0),
            other => other,
        }
    }

    /// Inserts `row`, or, when it conflicts with an existing row on the unique constraint over
    /// `conflict` columns, updates that row with every other column `row` sets. Returns the row
    /// as stored.
    ///
    /// Only this tenant's row is ever updated: a conflict with another organization's row (on a
    /// constraint that does not include "orgId") is refused with [`Error::TenantDenied`].
    ///
    /// On Citus every unique constraint of a distributed table leads with "orgId" (README,
    /// "Scaling out"). A `conflict` without "orgId" that matches no constraint is tried again
    /// with "orgId" first, so the same call works on one server and on a cluster (inside
    /// [`TenantScope::transaction`] the first attempt then takes a savepoint).
    pub async fn upsert<A, C>(&self, mut row: A, conflict: C) -> Result<Model<A>>
    where
        A: TenantRow,
        C: IntoIterator<Item = <A::Entity as EntityTrait>::Column>,
    {
        let ctx = self.ctx_for::<A::Entity>(Operation::Upsert);
        self.prepare_insert(&ctx, &mut row)?;
        let conflict: Vec<_> = conflict.into_iter().collect();
        if conflict.is_empty() {
            return Err(Error::InvalidInput {
                context: ctx,
                reason: "upsert needs the columns of a unique constraint".to_owned(),
            });
        }
        let checks = self.fk_checks(&ctx, std::slice::from_ref(&row), true)?;
        let conflict_names: Vec<&'static str> = conflict.iter().map(|c| c.as_str()).collect();
        // On Citus every unique constraint of a distributed table leads with "orgId" (the
        // constraint keeps its name): a conflict target without it matches nothing there, and
        // the same target with "orgId" first matches the constraint it names on one server.
        let with_org: Option<Vec<_>> = super::guard::tenant_column::<A::Entity>()
            .filter(|org| org.as_str() == "orgId" && !conflict_names.contains(&"orgId"))
            .map(|org| {
                std::iter::once(org)
                    .chain(conflict.iter().copied())
                    .collect()
            });
        let first = match &with_org {
            // Inside a transaction the first attempt takes a savepoint, so that its failure
            // leaves the transaction open for the second.
            Some(_) if self.in_transaction() => {
                let (attempt, ctx2, checks2) = (row.clone(), ctx.clone(), checks.clone());
                let conflict2 = conflict.clone();
                self.transaction(move |tx| {
                    Box::pin(async move { tx.upsert_on(&ctx2, attempt, conflict2, &checks2).await })
                })
                .await
            }
            _ => self.upsert_on(&ctx, row.clone(), conflict, &checks).await,
        };
        let stored = match (first, with_org) {
            (Err(e), Some(with_org)) if e.sql_state() == Some("42P10") => {
                self.upsert_on(&ctx, row, with_org, &checks).await
            }
            (first, _) => first,
        }
        .map_err(|e| match e.sql_state() {
            // 42P10: no unique constraint matches the ON CONFLICT columns.
            Some("42P10") => Error::InvalidInput {
                context: ctx.clone(),
                reason: format!(
                    "upsert on ({}): no unique constraint of \"{}\" covers exactly these \
                     columns; upsert needs one",
                    conflict_names
                        .iter()
                        .map(|c| format!("\"{c}\""))
                        .collect::<Vec<_>>()
                        .join(", "),
                    ctx.table.unwrap_or("?"),
                ),
            },
            _ => e,
        })?;
        stored.ok_or_else(|| Error::TenantDenied {
            context: ctx,
            reason: "the row conflicts with a row of another organization".to_owned(),
        })
    }

    /// One attempt of [`TenantScope::upsert`] of the prepared `row` on the unique constraint
    /// over `conflict`; `None` when the conflicting row is another organization's.
    async fn upsert_on<A>(
        &self,
        ctx: &Context,
        row: A,
        conflict: Vec<<A::Entity as EntityTrait>::Column>,
        checks: &[super::guard::FkCheck],
    ) -> Result<Option<Model<A>>>
    where
        A: TenantRow,
    {
        let keep: BTreeSet<&str> = conflict
            .iter()
            .map(|c| c.as_str())
            .chain(
                <<A::Entity as EntityTrait>::PrimaryKey as Iterable>::iter()
                    .map(|pk| pk.into_column().as_str()),
            )
            .chain(["orgId", "createdAt"])
            .collect();
        let update_cols: Vec<_> = <A::Entity as EntityTrait>::Column::iter()
            .filter(|c| row.get(*c).is_set() && !keep.contains(c.as_str()))
            .collect();
        let mut on_conflict = OnConflict::columns(conflict);
        if update_cols.is_empty() {
            // Nothing to change: set the first key column to the value it already holds, so
            // that the stored row stays as it is (its id included: the row's own id is never
            // replaced by the one just generated for the insert) and RETURNING still yields it.
            let key = <<A::Entity as EntityTrait>::PrimaryKey as Iterable>::iter()
                .map(PrimaryKeyToColumn::into_column)
                .next()
                .ok_or_else(|| Error::InvalidInput {
                    context: ctx.clone(),
                    reason: "entity has no primary key".to_owned(),
                })?;
            on_conflict.value(key, Expr::col((A::Entity::default(), key)));
        } else {
            on_conflict.update_columns(update_cols);
        }
        on_conflict.action_and_where(Expr::from(<A::Entity as TenantOwned>::tenant_condition(
            self.org.as_str(),
        )));
        let insert = <A::Entity as EntityTrait>::insert(row).on_conflict(on_conflict);
        self.statement(ctx, checks, &[], trace::some, |tx| {
            Box::pin(async move {
                match insert.exec_with_returning(tx.rows_by_name()).await {
                    Ok(model) => Ok(Some(model)),
                    // The conflicting row failed the tenant condition: nothing was written.
                    Err(DbErr::RecordNotFound(_) | DbErr::RecordNotInserted) => Ok(None),
                    Err(e) => Err(e),
                }
            })
        })
        .await
    }

    /// Executes a raw statement inside this scope's transaction, with the tenant set. As with
    /// [`TenantScope::query_raw`], only row-level security restricts it.
    pub async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult> {
        let ctx = self.ctx(Operation::Raw, None);
        self.statement(
            &ctx,
            &[],
            &[],
            |r: &ExecResult| r.rows_affected(),
            |tx| tx.execute_raw(stmt),
        )
        .await
    }
}

/// The references to rows of `table` that the schema declares `ON DELETE SET NULL`, from the
/// entities' relations: each as the referencing tenant table, its column, and the referenced
/// column of `table`. Worked out once for every table (a delete looks its table up).
fn set_null_references(table: &str) -> &'static [(&'static TableInfo, String, String)] {
    type References = Vec<(&'static TableInfo, String, String)>;
    static BY_TABLE: std::sync::LazyLock<BTreeMap<String, References>> =
        std::sync::LazyLock::new(|| {
            let mut out: BTreeMap<String, References> = BTreeMap::new();
            for child in flakeguard_entity::TABLES
                .iter()
                .filter(|t| t.class.is_tenant_data())
            {
                for rel in (child.relations)() {
                    if rel.is_owner || !matches!(rel.on_delete, Some(ForeignKeyAction::SetNull)) {
                        continue;
                    }
                    if let (Some(parent), Some(column), Some(key)) = (
                        table_of(&rel.to_tbl),
                        single(&rel.from_col),
                        single(&rel.to_col),
                    ) {
                        out.entry(parent).or_default().push((child, column, key));
                    }
                }
            }
            out
        });
    BY_TABLE.get(table).map_or(&[], Vec::as_slice)
}
