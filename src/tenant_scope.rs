//! [`TenantScope`]: the only way application code reaches tenant data.
//!
//! # Design
//!
//! Every unit of work a scope runs is a transaction whose first statement is
//! `SELECT set_config('app.current_tenant_id', $1, true)`. The setting is local to the
//! transaction, so a connection goes back to the pool carrying no tenant, whatever happened
//! (commit, failed statement, or a future dropped half-way, after which the driver rolls back
//! before the connection is reused). Row-level security in the database reads that setting.
//!
//! Independently of the database, every statement the scope builds carries the tenant predicate
//! of its table ([`TenantOwned::tenant_condition`]), and every write is checked before it is
//! sent: "orgId" is filled in or must name this tenant, and every foreign key of the row that
//! points at tenant data must point at a row this tenant sees. So either lock holds alone.
//!
//! One type serves both a pool and an open transaction: inside
//! [`TenantScope::transaction`] the closure receives a scope bound to the transaction, with the
//! same methods, so code can be written once and called either way.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use flakeguard_entity::stamps::Stamped;
use flakeguard_entity::tenancy::{TenantClass, TenantOwned};
use futures_util::future::BoxFuture;
use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ActiveValue, ColumnTrait, Condition, ConnectionTrait,
    DatabaseConnection, DatabaseTransaction, DbErr, EntityName, EntityTrait, ExecResult,
    IdenStatic, IntoActiveModel, IntoSimpleExpr, Iterable, JoinType, Order, PaginatorTrait,
    PrimaryKeyTrait, QueryFilter, QueryOrder, QueryResult, QuerySelect, Related, RelationTrait,
    Select, Statement, TransactionTrait, Value,
};

use crate::error::{Context, Operation, pg_error};
use crate::{Error, OrgId, Result};

/// The statement that binds a transaction to a tenant; always the first of a scope's
/// transactions.
pub const SET_TENANT_SQL: &str = "SELECT set_config('app.current_tenant_id', $1, true)";

/// PostgreSQL's limit on bind parameters in one statement.
const MAX_BIND_PARAMS: usize = 65_535;

#[derive(Clone)]
enum Conn {
    Pool(DatabaseConnection),
    Tx(Arc<DatabaseTransaction>),
}

/// Access to one organization's data.
///
/// Made from a connection pool and a validated [`OrgId`]; cheap to clone. Every query it builds
/// carries the tenant predicate, inserts get "orgId" filled in, and a write that names another
/// organization, or points a foreign key at another organization's row, is refused with
/// [`Error::TenantDenied`] before anything is sent.
///
/// Reaches tenant, tenant-optional and child tables, and the tenant's own `Organization` row.
/// Global tables (`User`, `IngestionJob`) are not reachable through a scope: use
/// [`GlobalTables`](crate::GlobalTables).
///
/// ```compile_fail
/// # async fn f(scope: flakeguard_db::TenantScope) {
/// // `User` is global: it is not tenant data, and a scope refuses it at compile time.
/// let users = scope.find::<flakeguard_db::entity::user::Entity>().all().await;
/// # }
/// ```
#[derive(Clone)]
pub struct TenantScope {
    conn: Conn,
    org: OrgId,
}

impl std::fmt::Debug for TenantScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantScope")
            .field("org", &self.org)
            .field("in_transaction", &matches!(self.conn, Conn::Tx(_)))
            .finish()
    }
}

/// The transaction one operation of a scope runs in.
pub(crate) enum Unit<'a> {
    /// The scope's open transaction, finished by whoever opened it.
    Shared(&'a DatabaseTransaction),
    /// A transaction (or savepoint) of this operation's own.
    Own(DatabaseTransaction),
    /// A read-only transaction of this operation's own: it has nothing to commit, so it ends
    /// with a rollback that is queued, not waited for (see [`TenantScope::unit`]).
    Read(DatabaseTransaction),
}

impl Unit<'_> {
    pub(crate) fn conn(&self) -> &DatabaseTransaction {
        match self {
            Unit::Shared(tx) => tx,
            Unit::Own(tx) | Unit::Read(tx) => tx,
        }
    }

    /// Commits a transaction of the operation's own; nothing for a shared one; for a read, the
    /// rollback is queued on the connection (dropping the transaction).
    pub(crate) async fn finish(self, scope: &TenantScope, ctx: &Context) -> Result<()> {
        match self {
            Unit::Shared(_) => Ok(()),
            Unit::Read(tx) => {
                drop(tx);
                Ok(())
            }
            Unit::Own(tx) => tx.commit().await.map_err(|e| {
                let mut c = ctx.clone();
                c.operation = Operation::Commit;
                scope.fail(c, e)
            }),
        }
    }
}

/// A foreign key of a row about to be written, with the values it will hold.
pub(crate) struct FkCheck {
    column: String,
    table: &'static str,
    key: String,
    values: BTreeSet<String>,
}

impl TenantScope {
    /// A scope for `org` on the pool `db`.
    ///
    /// `db` should log in as a role subject to row-level security (a member of
    /// `flakeguard_app`), so that the database enforces the same boundary.
    pub fn new(db: DatabaseConnection, org: OrgId) -> Self {
        TenantScope {
            conn: Conn::Pool(db),
            org,
        }
    }

    /// The tenant this scope acts for.
    pub fn org_id(&self) -> &OrgId {
        &self.org
    }

    /// The pool this scope runs on; `None` when it is bound to an open transaction.
    pub(crate) fn pool(&self) -> Option<&DatabaseConnection> {
        match &self.conn {
            Conn::Pool(db) => Some(db),
            Conn::Tx(_) => None,
        }
    }

    /// Whether this scope is bound to an open transaction (inside [`TenantScope::transaction`]).
    pub fn in_transaction(&self) -> bool {
        matches!(self.conn, Conn::Tx(_))
    }

    fn ctx(&self, operation: Operation, table: Option<&'static str>) -> Context {
        Context {
            operation,
            tenant: Some(self.org.clone()),
            table,
        }
    }

    pub(crate) fn ctx_for<E: EntityName + Default>(&self, operation: Operation) -> Context {
        self.ctx(operation, Some(E::default().table_name()))
    }

    /// Maps a driver error of an operation on `table` to the crate's error.
    pub(crate) fn fail(&self, ctx: Context, err: DbErr) -> Error {
        if matches!(err, DbErr::RecordNotUpdated | DbErr::RecordNotFound(_)) {
            return Error::NotFound { context: ctx };
        }
        if let Some(pg) = pg_error(&err) {
            if pg.code() == "23503"
                && pg.constraint().is_some_and(|c| c.ends_with("_orgId_fkey"))
                && pg.message().contains("insert or update")
            {
                return Error::UnknownOrganization { context: ctx };
            }
            if let Some(kind) = crate::Rejection::from_sql_state(pg.code()) {
                return Error::Rejected {
                    context: ctx,
                    kind,
                    source: err,
                };
            }
        }
        Error::Database {
            context: ctx,
            source: err,
        }
    }

    /// This scope's transaction for one operation: the open one, or a new one bound to the
    /// tenant, committed by [`Unit::finish`] and rolled back if dropped unfinished.
    ///
    /// A read ([`Operation::Find`], [`Operation::Count`]) on the pool does not wait for a
    /// COMMIT: its transaction wrote nothing, so it ends with a ROLLBACK that the driver queues
    /// on the connection and sends, and waits for, when the connection goes back to the pool
    /// (sqlx tests a returned connection with a ping, which flushes it) or at the latest before
    /// the connection's next statement. The tenant setting is transaction-local either way, so
    /// nothing of it outlives the read. That takes one round trip off the read's critical path
    /// (the ROLLBACK travels with the pool's release ping; see BENCHMARKS.md).
    pub(crate) async fn unit(&self, ctx: &Context) -> Result<Unit<'_>> {
        Ok(match &self.conn {
            Conn::Tx(tx) => Unit::Shared(tx),
            Conn::Pool(db) if matches!(ctx.operation, Operation::Find | Operation::Count) => {
                Unit::Read(self.begin(db, ctx).await?)
            }
            Conn::Pool(db) => Unit::Own(self.begin(db, ctx).await?),
        })
    }

    /// Like [`TenantScope::unit`], for a write of several statements: inside an open
    /// transaction it takes a savepoint, so that a failure leaves nothing behind either way.
    /// Runs one statement, `f`, as a unit of work of this scope: in its transaction (see
    /// [`TenantScope::unit`]), after the foreign-key checks, with driver errors mapped to `ctx`.
    async fn statement<T, F>(&self, ctx: &Context, checks: &[FkCheck], f: F) -> Result<T>
    where
        F: for<'c> FnOnce(&'c DatabaseTransaction) -> BoxFuture<'c, Result<T, DbErr>>,
    {
        let unit = self.unit(ctx).await?;
        self.verify_fks(unit.conn(), ctx, checks).await?;
        let out = f(unit.conn())
            .await
            .map_err(|e| self.fail(ctx.clone(), e))?;
        unit.finish(self, ctx).await?;
        Ok(out)
    }

    async fn atomic_unit(&self, ctx: &Context) -> Result<Unit<'_>> {
        Ok(match &self.conn {
            Conn::Tx(tx) => Unit::Own(tx.begin().await.map_err(|e| self.fail(ctx.clone(), e))?),
            Conn::Pool(db) => Unit::Own(self.begin(db, ctx).await?),
        })
    }

    async fn begin(&self, db: &DatabaseConnection, ctx: &Context) -> Result<DatabaseTransaction> {
        let begin_ctx = || {
            let mut c = ctx.clone();
            c.operation = Operation::Begin;
            c
        };
        let tx = db.begin().await.map_err(|e| self.fail(begin_ctx(), e))?;
        tx.execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            SET_TENANT_SQL,
            [Value::from(self.org.as_str())],
        ))
        .await
        .map_err(|e| self.fail(begin_ctx(), e))?;
        Ok(tx)
    }

    /// Runs `f` atomically for this tenant: one transaction (a savepoint when already inside
    /// one), committed when `f` returns `Ok`, rolled back when it returns `Err` or is dropped.
    ///
    /// `f` gets a scope bound to the transaction, with every method of this one.
    ///
    /// ```no_run
    /// # use flakeguard_db::{TenantScope, Result};
    /// # use flakeguard_db::entity::{fg_workflow_run, fg_occurrence};
    /// # async fn f(scope: TenantScope, run: fg_workflow_run::ActiveModel,
    /// #            occurrences: Vec<fg_occurrence::ActiveModel>) -> Result<()> {
    /// let stored = scope
    ///     .transaction(|tx| {
    ///         Box::pin(async move {
    ///             let run = tx.insert(run).await?;
    ///             tx.insert_many(occurrences).await?;
    ///             Ok::<_, flakeguard_db::Error>(run)
    ///         })
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send,
        E: From<Error> + Send,
        F: for<'a> FnOnce(&'a TenantScope) -> BoxFuture<'a, Result<T, E>> + Send,
    {
        let ctx = self.ctx(Operation::Commit, None);
        let tx = match &self.conn {
            Conn::Tx(tx) => tx.begin().await.map_err(|e| self.fail(ctx.clone(), e))?,
            Conn::Pool(db) => self.begin(db, &ctx).await?,
        };
        let tx = Arc::new(tx);
        let inner = TenantScope {
            conn: Conn::Tx(Arc::clone(&tx)),
            org: self.org.clone(),
        };
        let result = f(&inner).await;
        drop(inner);
        let Ok(tx) = Arc::try_unwrap(tx) else {
            // A clone of the inner scope outlived the closure; the last one drops and rolls back.
            return Err(Error::TransactionInUse { context: ctx }.into());
        };
        match result {
            Ok(v) => {
                tx.commit().await.map_err(|e| self.fail(ctx, e))?;
                Ok(v)
            }
            Err(e) => {
                // The error from `f` is the one worth reporting; a failed rollback leaves the
                // connection to the pool, which discards it.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    // ---------------------------------------------------------------- reads

    /// A query over this tenant's rows of `E`, to refine with filters, ordering, pagination and
    /// joins, then run.
    pub fn find<E: TenantOwned>(&self) -> ScopedSelect<'_, E> {
        ScopedSelect {
            scope: self,
            select: E::find().filter(E::tenant_condition(self.org.as_str())),
        }
    }

    /// This tenant's row of `E` with primary key `id`; `None` when there is none, including when
    /// the row belongs to another organization.
    pub async fn find_by_id<E, K>(&self, id: K) -> Result<Option<E::Model>>
    where
        E: TenantOwned,
        E::Model: Send + Sync,
        K: Into<<E::PrimaryKey as PrimaryKeyTrait>::ValueType>,
    {
        let select = E::find_by_id(id).filter(E::tenant_condition(self.org.as_str()));
        let ctx = self.ctx_for::<E>(Operation::Find);
        self.statement(&ctx, &[], |tx| Box::pin(select.one(tx)))
            .await
    }

    /// The number of this tenant's rows of `E` that satisfy `filter`.
    pub async fn count<E>(&self, filter: impl Into<Condition>) -> Result<u64>
    where
        E: TenantOwned,
        E::Model: Send + Sync,
    {
        self.find::<E>().filter(filter).count().await
    }

    /// This tenant's own `Organization` row (`None` if it has not been created).
    pub async fn organization(&self) -> Result<Option<flakeguard_entity::organization::Model>> {
        self.find_by_id::<flakeguard_entity::organization::Entity, _>(self.org.as_str().to_owned())
            .await
    }

    // --------------------------------------------------------------- writes

    /// Inserts one row and returns it as stored.
    ///
    /// An unset id becomes a CUID2, "updatedAt" is set, "orgId" is filled in when unset (for
    /// `Organization`, the id is the tenant id). Refused with [`Error::TenantDenied`], before
    /// anything is sent, when the row names another organization or a foreign key points at a
    /// row this tenant does not see.
    pub async fn insert<A>(&self, mut row: A) -> Result<<A::Entity as EntityTrait>::Model>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Stamped + Send + Sync + 'static,
        A::Entity: TenantOwned,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A> + Send + Sync,
    {
        let ctx = self.ctx_for::<A::Entity>(Operation::Insert);
        self.prepare_insert(&ctx, &mut row)?;
        let checks = self.fk_checks(&ctx, std::slice::from_ref(&row), true)?;
        let insert = <A::Entity as EntityTrait>::insert(row);
        self.statement(&ctx, &checks, |tx| Box::pin(insert.exec_with_returning(tx)))
            .await
    }

    /// Inserts many rows atomically (all or none) and returns how many were inserted.
    ///
    /// Each row is prepared as by [`TenantScope::insert`]. Rows are grouped by the columns they
    /// set, so a column left unset gets its database default, and sent in statements within
    /// PostgreSQL's limit of bind parameters.
    pub async fn insert_many<A, I>(&self, rows: I) -> Result<u64>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Stamped + Send + Sync + 'static,
        A::Entity: TenantOwned,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A> + Send + Sync,
        I: IntoIterator<Item = A>,
    {
        let ctx = self.ctx_for::<A::Entity>(Operation::InsertMany);
        let mut rows: Vec<A> = rows.into_iter().collect();
        if rows.is_empty() {
            return Ok(0);
        }
        for row in &mut rows {
            self.prepare_insert(&ctx, row)?;
        }
        let checks = self.fk_checks(&ctx, &rows, true)?;
        // Group rows by the set of columns they carry: InsertMany sends NULL, not DEFAULT, for a
        // column one row leaves unset while another sets it.
        let mut groups: BTreeMap<Vec<bool>, Vec<A>> = BTreeMap::new();
        for row in rows {
            let shape = <A::Entity as EntityTrait>::Column::iter()
                .map(|c| !row.get(c).is_not_set())
                .collect();
            groups.entry(shape).or_default().push(row);
        }
        let unit = self.atomic_unit(&ctx).await?;
        self.verify_fks(unit.conn(), &ctx, &checks).await?;
        let mut inserted = 0;
        for (shape, rows) in groups {
            let width = shape.iter().filter(|set| **set).count().max(1);
            let per_statement = (MAX_BIND_PARAMS / width).max(1);
            let mut rows = rows.into_iter().peekable();
            while rows.peek().is_some() {
                let chunk: Vec<A> = rows.by_ref().take(per_statement).collect();
                inserted += <A::Entity as EntityTrait>::insert_many(chunk)
                    .exec_without_returning(unit.conn())
                    .await
                    .map_err(|e| self.fail(ctx.clone(), e))?;
            }
        }
        unit.finish(self, &ctx).await?;
        Ok(inserted)
    }

    /// Updates the columns that `row` sets, on this tenant's row with `row`'s primary key, and
    /// returns the row as stored. "updatedAt" is refreshed.
    ///
    /// [`Error::NotFound`] when this tenant has no such row; [`Error::TenantDenied`] when the
    /// update would move the row to another organization or point a foreign key at a row this
    /// tenant does not see.
    pub async fn update<A>(&self, mut row: A) -> Result<<A::Entity as EntityTrait>::Model>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Stamped + Send + Sync + 'static,
        A::Entity: TenantOwned,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A> + Send + Sync,
    {
        let ctx = self.ctx_for::<A::Entity>(Operation::Update);
        self.check_update(&ctx, &row)?;
        row.stamp_for_update();
        let checks = self.fk_checks(&ctx, std::slice::from_ref(&row), false)?;
        let cond = <A::Entity as TenantOwned>::tenant_condition(self.org.as_str());
        let update = <A::Entity as EntityTrait>::update(row)
            .validate()
            .map_err(|e| self.fail(ctx.clone(), e))?
            .filter(cond);
        self.statement(&ctx, &checks, |tx| Box::pin(update.exec(tx)))
            .await
    }

    /// Sets the columns that `values` sets on every row of this tenant that satisfies `filter`,
    /// refreshing "updatedAt"; returns how many rows changed.
    pub async fn update_many<A>(&self, mut values: A, filter: impl Into<Condition>) -> Result<u64>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Stamped + Send + Sync + 'static,
        A::Entity: TenantOwned,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A> + Send + Sync,
    {
        let ctx = self.ctx_for::<A::Entity>(Operation::UpdateMany);
        self.check_update(&ctx, &values)?;
        for pk in <<A::Entity as EntityTrait>::PrimaryKey as Iterable>::iter() {
            let col = sea_orm::PrimaryKeyToColumn::into_column(pk);
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
            .filter(filter.into());
        let changed = self
            .statement(&ctx, &checks, |tx| Box::pin(update.exec(tx)))
            .await?;
        Ok(changed.rows_affected)
    }

    /// Deletes this tenant's row of `E` with primary key `id`; [`Error::NotFound`] when there is
    /// none (including another organization's row, which is left alone).
    pub async fn delete<E, K>(&self, id: K) -> Result<()>
    where
        E: TenantOwned,
        E::Model: Send + Sync,
        K: Into<<E::PrimaryKey as PrimaryKeyTrait>::ValueType>,
    {
        let ctx = self.ctx_for::<E>(Operation::Delete);
        let delete = E::delete_by_id(id).filter(E::tenant_condition(self.org.as_str()));
        let deleted = self
            .statement(&ctx, &[], |tx| Box::pin(delete.exec(tx)))
            .await?;
        match deleted.rows_affected {
            0 => Err(Error::NotFound { context: ctx }),
            _ => Ok(()),
        }
    }

    /// Deletes every row of this tenant's `E` that satisfies `filter`; returns how many.
    pub async fn delete_many<E>(&self, filter: impl Into<Condition>) -> Result<u64>
    where
        E: TenantOwned,
        E::Model: Send + Sync,
    {
        let ctx = self.ctx_for::<E>(Operation::DeleteMany);
        let delete = E::delete_many()
            .filter(E::tenant_condition(self.org.as_str()))
            .filter(filter.into());
        let deleted = self
            .statement(&ctx, &[], |tx| Box::pin(delete.exec(tx)))
            .await?;
        Ok(deleted.rows_affected)
    }

    /// Inserts `row`, or, when it conflicts with an existing row on the unique constraint over
    /// `conflict` columns, updates that row with every other column `row` sets. Returns the row
    /// as stored.
    ///
    /// Only this tenant's row is ever updated: a conflict with another organization's row (on a
    /// constraint that does not include "orgId") is refused with [`Error::TenantDenied`].
    pub async fn upsert<A, C>(
        &self,
        mut row: A,
        conflict: C,
    ) -> Result<<A::Entity as EntityTrait>::Model>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Stamped + Send + Sync + 'static,
        A::Entity: TenantOwned,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A> + Send + Sync,
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
        let keep: BTreeSet<&str> = conflict
            .iter()
            .map(|c| c.as_str())
            .chain(
                <<A::Entity as EntityTrait>::PrimaryKey as Iterable>::iter()
                    .map(|pk| sea_orm::PrimaryKeyToColumn::into_column(pk).as_str()),
            )
            .chain(["orgId", "createdAt"])
            .collect();
        let update_cols: Vec<_> = <A::Entity as EntityTrait>::Column::iter()
            .filter(|c| row.get(*c).is_set() && !keep.contains(c.as_str()))
            .collect();
        let checks = self.fk_checks(&ctx, std::slice::from_ref(&row), true)?;
        let mut on_conflict = OnConflict::columns(conflict);
        if update_cols.is_empty() {
            // Nothing to change: touch a key column so that RETURNING still yields the row.
            on_conflict.update_columns([
                <<A::Entity as EntityTrait>::PrimaryKey as Iterable>::iter()
                    .map(sea_orm::PrimaryKeyToColumn::into_column)
                    .next()
                    .ok_or_else(|| Error::InvalidInput {
                        context: ctx.clone(),
                        reason: "entity has no primary key".to_owned(),
                    })?,
            ]);
        } else {
            on_conflict.update_columns(update_cols);
        }
        on_conflict.action_and_where(Expr::from(<A::Entity as TenantOwned>::tenant_condition(
            self.org.as_str(),
        )));
        let insert = <A::Entity as EntityTrait>::insert(row).on_conflict(on_conflict);
        let stored = self
            .statement(&ctx, &checks, |tx| {
                Box::pin(async move {
                    match insert.exec_with_returning(tx).await {
                        Ok(model) => Ok(Some(model)),
                        // The conflicting row failed the tenant condition: nothing was written.
                        Err(DbErr::RecordNotFound(_) | DbErr::RecordNotInserted) => Ok(None),
                        Err(e) => Err(e),
                    }
                })
            })
            .await?;
        stored.ok_or_else(|| Error::TenantDenied {
            context: ctx,
            reason: "the row conflicts with a row of another organization".to_owned(),
        })
    }

    /// Builds a row of `A` from JSON text, such as a request body: an object whose keys are the
    /// model's field names (`"repo_id"`); absent keys stay unset. Malformed JSON, a value of the
    /// wrong type or an unknown enum label is [`Error::InvalidInput`] naming what is wrong.
    /// Nothing is sent to the database; insert or update the row afterwards.
    pub fn row_from_json<A>(&self, json: &str) -> Result<A>
    where
        A: ActiveModelTrait + sea_orm::TryIntoModel<<A::Entity as EntityTrait>::Model>,
        A::Entity: TenantOwned,
        <A::Entity as EntityTrait>::Model:
            IntoActiveModel<A> + serde::de::DeserializeOwned + serde::Serialize,
    {
        let ctx = self.ctx_for::<A::Entity>(Operation::Parse);
        let invalid = |reason: String| Error::InvalidInput {
            context: ctx.clone(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| invalid(format!("malformed JSON: {e}")))?;
        let serde_json::Value::Object(object) = value else {
            return Err(invalid("expected a JSON object".to_owned()));
        };
        // SeaORM fills absent keys with placeholder values before deserializing, and its
        // placeholder for a NOT NULL timestamp does not parse; give those absent keys a valid
        // one, and mark them unset again afterwards.
        let with_placeholders = |mut object: serde_json::Map<String, serde_json::Value>| {
            let mut absent = Vec::new();
            for col in <A::Entity as EntityTrait>::Column::iter() {
                let def = col.def();
                if !object.contains_key(col.json_key())
                    && !def.is_null()
                    && matches!(
                        def.get_column_type(),
                        sea_orm::ColumnType::TimestampWithTimeZone
                    )
                {
                    object.insert(col.json_key().to_owned(), "1970-01-01T00:00:00Z".into());
                    absent.push(col);
                }
            }
            (serde_json::Value::Object(object), absent)
        };
        let reason = |e: DbErr| match e {
            DbErr::Json(reason) | DbErr::Type(reason) | DbErr::Custom(reason) => reason,
            other => other.to_string(),
        };
        let (value, absent) = with_placeholders(object.clone());
        match A::from_json(value) {
            Ok(mut row) => {
                for col in absent {
                    row.not_set(col);
                }
                Ok(row)
            }
            Err(e) => {
                // Name the field, which the deserializer's message does not: try each key alone.
                for (key, v) in object {
                    let alone = serde_json::Map::from_iter([(key.clone(), v)]);
                    if let Err(e) = A::from_json(with_placeholders(alone).0) {
                        return Err(invalid(format!("field \"{key}\": {}", reason(e))));
                    }
                }
                Err(invalid(reason(e)))
            }
        }
    }

    // ------------------------------------------------------------------ raw

    /// Runs a raw query inside this scope's transaction, with the tenant set.
    ///
    /// Raw SQL carries no tenant predicate from this crate: only row-level security in the
    /// database restricts it. Prefer the typed methods.
    pub async fn query_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>> {
        let ctx = self.ctx(Operation::Raw, None);
        self.statement(&ctx, &[], |tx| tx.query_all_raw(stmt)).await
    }

    /// Executes a raw statement inside this scope's transaction, with the tenant set. As with
    /// [`TenantScope::query_raw`], only row-level security restricts it.
    pub async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult> {
        let ctx = self.ctx(Operation::Raw, None);
        self.statement(&ctx, &[], |tx| tx.execute_raw(stmt)).await
    }

    // ------------------------------------------------------------ the checks

    /// Fills in what an insert needs and refuses a row that names another organization.
    pub(crate) fn prepare_insert<A>(&self, ctx: &Context, row: &mut A) -> Result<()>
    where
        A: ActiveModelTrait + Stamped,
        A::Entity: TenantOwned,
    {
        if let Some(col) = tenant_column::<A::Entity>() {
            match row.get(col) {
                ActiveValue::NotSet => row.set(col, Value::from(self.org.as_str())),
                v => self.check_names_self(ctx, col, v)?,
            }
        }
        row.stamp_for_insert().map_err(|e| Error::InvalidInput {
            context: ctx.clone(),
            reason: match e {
                DbErr::Custom(reason) => reason,
                other => other.to_string(),
            },
        })
    }

    /// Refuses an update that moves a row to another organization.
    fn check_update<A>(&self, ctx: &Context, row: &A) -> Result<()>
    where
        A: ActiveModelTrait,
        A::Entity: TenantOwned,
    {
        if let Some(col) = tenant_column::<A::Entity>() {
            let value = row.get(col);
            if value.is_set() {
                self.check_names_self(ctx, col, value)?;
            }
        }
        Ok(())
    }

    fn check_names_self<C: ColumnTrait>(
        &self,
        ctx: &Context,
        col: C,
        value: ActiveValue<Value>,
    ) -> Result<()> {
        let named = match value {
            ActiveValue::Set(v) | ActiveValue::Unchanged(v) => v,
            ActiveValue::NotSet => return Ok(()),
        };
        if named == Value::from(self.org.as_str()) {
            return Ok(());
        }
        Err(Error::TenantDenied {
            context: ctx.clone(),
            reason: format!("\"{}\" does not name this organization", col.as_str()),
        })
    }

    /// The foreign keys of `rows` that point at tenant data, with the values the write gives
    /// them. For an insert every present value counts; for an update only changed ones.
    pub(crate) fn fk_checks<A>(
        &self,
        ctx: &Context,
        rows: &[A],
        insert: bool,
    ) -> Result<Vec<FkCheck>>
    where
        A: ActiveModelTrait,
        A::Entity: TenantOwned,
    {
        type E<A> = <A as ActiveModelTrait>::Entity;
        let own = E::<A>::default().table_name();
        let mut checks = Vec::new();
        for rel in <<E<A> as EntityTrait>::Relation as Iterable>::iter() {
            let def = rel.def();
            if def.is_owner || table_of(&def.from_tbl).as_deref() != Some(own) {
                continue;
            }
            let Some(target) = table_of(&def.to_tbl).and_then(|t| flakeguard_entity::table(&t))
            else {
                continue;
            };
            // "orgId" is checked against the scope itself; global targets are not tenant data.
            if matches!(target.class, TenantClass::TenantRoot | TenantClass::Global) {
                continue;
            }
            let (Some(from), Some(key)) = (single(&def.from_col), single(&def.to_col)) else {
                continue;
            };
            let Some(col) = <E<A> as EntityTrait>::Column::iter().find(|c| c.as_str() == from)
            else {
                continue;
            };
            let mut values = BTreeSet::new();
            for row in rows {
                let v = match row.get(col) {
                    ActiveValue::Set(v) => v,
                    ActiveValue::Unchanged(v) if insert => v,
                    _ => continue,
                };
                match v {
                    Value::String(Some(s)) => {
                        values.insert(s.to_string());
                    }
                    Value::String(None) => {}
                    other => {
                        return Err(Error::InvalidInput {
                            context: ctx.clone(),
                            reason: format!("\"{from}\" holds {other:?}, not a text id"),
                        });
                    }
                }
            }
            if !values.is_empty() {
                checks.push(FkCheck {
                    column: from,
                    table: target.name,
                    key,
                    values,
                });
            }
        }
        Ok(checks)
    }

    /// One round trip that counts, for each foreign key, the referenced rows this tenant sees;
    /// refuses the write when any referenced row is missing from that count.
    pub(crate) async fn verify_fks(
        &self,
        tx: &DatabaseTransaction,
        ctx: &Context,
        checks: &[FkCheck],
    ) -> Result<()> {
        if checks.is_empty() {
            return Ok(());
        }
        let mut query = Query::select();
        for (i, check) in checks.iter().enumerate() {
            let Some(filter) = flakeguard_entity::table(check.table)
                .and_then(|t| (t.row_filter)(self.org.as_str()))
            else {
                continue;
            };
            let sub = Query::select()
                .expr(Expr::col(Asterisk).count())
                .from(Alias::new(check.table))
                .and_where(
                    Expr::col((Alias::new(check.table), Alias::new(check.key.as_str())))
                        .is_in(check.values.iter().cloned()),
                )
                .cond_where(filter)
                .to_owned();
            query.expr_as(
                Expr::SubQuery(None, Box::new(sub.into())),
                Alias::new(format!("c{i}")),
            );
        }
        let row = tx
            .query_one(&query)
            .await
            .map_err(|e| self.fail(ctx.clone(), e))?
            .ok_or_else(|| {
                self.fail(
                    ctx.clone(),
                    DbErr::RecordNotFound("foreign key check".to_owned()),
                )
            })?;
        for (i, check) in checks.iter().enumerate() {
            let seen: i64 = row
                .try_get("", &format!("c{i}"))
                .map_err(|e| self.fail(ctx.clone(), e))?;
            if usize::try_from(seen).ok() != Some(check.values.len()) {
                return Err(Error::TenantDenied {
                    context: ctx.clone(),
                    reason: format!(
                        "\"{}\" references a \"{}\" row that this organization does not have",
                        check.column, check.table
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The column holding the tenant id: "orgId", or "id" for `Organization`.
fn tenant_column<E: TenantOwned>() -> Option<E::Column> {
    let name = match E::CLASS {
        TenantClass::Tenant | TenantClass::TenantOptional => "orgId",
        TenantClass::TenantRoot => "id",
        TenantClass::Child { .. } | TenantClass::Global => return None,
    };
    E::Column::iter().find(|c| c.as_str() == name)
}

fn table_of(t: &sea_orm::sea_query::TableRef) -> Option<String> {
    match t {
        sea_orm::sea_query::TableRef::Table(name, _) => Some(name.1.to_string()),
        _ => None,
    }
}

fn single(identity: &sea_orm::Identity) -> Option<String> {
    match identity {
        sea_orm::Identity::Unary(iden) => Some(iden.to_string()),
        _ => None,
    }
}

/// A query over one tenant's rows of `E`, from [`TenantScope::find`].
///
/// The tenant predicate is in place from the start; every method only narrows or orders the
/// result, and joins add the joined table's own tenant predicate.
#[must_use = "a query does nothing until it is run with all, one, count or page"]
pub struct ScopedSelect<'s, E: EntityTrait> {
    scope: &'s TenantScope,
    select: Select<E>,
}

/// One page of results, from [`ScopedSelect::page`].
#[derive(Debug, Clone, PartialEq)]
pub struct Page<M> {
    /// The rows of this page.
    pub items: Vec<M>,
    /// The page number, from 0.
    pub page: u64,
    /// Rows per page.
    pub per_page: u64,
    /// Rows in all pages.
    pub total: u64,
}

impl<M> Page<M> {
    /// The number of pages (0 when there are no rows).
    pub fn page_count(&self) -> u64 {
        self.total.div_ceil(Ord::max(self.per_page, 1))
    }

    /// Whether a page follows this one.
    pub fn has_next(&self) -> bool {
        self.page + 1 < self.page_count()
    }
}

impl<'s, E> ScopedSelect<'s, E>
where
    E: TenantOwned,
    E::Model: Send + Sync,
{
    /// Keeps only the rows that also satisfy `filter` (a column expression or a `Condition`).
    pub fn filter(mut self, filter: impl Into<Condition>) -> Self {
        self.select = self.select.filter(filter.into());
        self
    }

    /// Orders by `col` ascending (any expression, including a joined table's column).
    pub fn order_by_asc(mut self, col: impl IntoSimpleExpr) -> Self {
        self.select = self.select.order_by(col, Order::Asc);
        self
    }

    /// Orders by `col` descending.
    pub fn order_by_desc(mut self, col: impl IntoSimpleExpr) -> Self {
        self.select = self.select.order_by(col, Order::Desc);
        self
    }

    /// Returns at most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.select = self.select.limit(n);
        self
    }

    /// Skips the first `n` rows.
    pub fn offset(mut self, n: u64) -> Self {
        self.select = self.select.offset(n);
        self
    }

    /// Inner-joins the related tenant table `R` (through the link table for a many-to-many),
    /// with `R`'s own tenant predicate, so that filters and ordering may use `R`'s columns.
    pub fn inner_join<R>(mut self) -> Self
    where
        R: TenantOwned,
        E: Related<R>,
    {
        let org = self.scope.org.as_str();
        if let Some(via) = <E as Related<R>>::via() {
            let link = table_of(&via.to_tbl);
            self.select = self.select.join(JoinType::InnerJoin, via);
            if let Some(filter) = link
                .and_then(|t| flakeguard_entity::table(&t))
                .and_then(|t| (t.row_filter)(org))
            {
                self.select = self.select.filter(filter);
            }
        }
        self.select = self
            .select
            .join(JoinType::InnerJoin, <E as Related<R>>::to())
            .filter(R::tenant_condition(org));
        self
    }

    /// Runs the query; every row.
    pub async fn all(self) -> Result<Vec<E::Model>> {
        let ctx = self.scope.ctx_for::<E>(Operation::Find);
        let select = self.select;
        self.scope
            .statement(&ctx, &[], |tx| Box::pin(select.all(tx)))
            .await
    }

    /// Runs the query; the first row, if any.
    pub async fn one(self) -> Result<Option<E::Model>> {
        let ctx = self.scope.ctx_for::<E>(Operation::Find);
        let select = self.select;
        self.scope
            .statement(&ctx, &[], |tx| Box::pin(select.one(tx)))
            .await
    }

    /// Counts the rows.
    pub async fn count(self) -> Result<u64> {
        let ctx = self.scope.ctx_for::<E>(Operation::Count);
        let select = self.select;
        self.scope
            .statement(&ctx, &[], |tx| Box::pin(select.count(tx)))
            .await
    }

    /// Page `page` (from 0) of `per_page` rows, with the total, in one transaction.
    pub async fn page(self, page: u64, per_page: u64) -> Result<Page<E::Model>> {
        let ctx = self.scope.ctx_for::<E>(Operation::Find);
        if per_page == 0 {
            return Err(Error::InvalidInput {
                context: ctx,
                reason: "a page holds at least one row".to_owned(),
            });
        }
        let (scope, select) = (self.scope, self.select);
        let unit = scope.unit(&ctx).await?;
        let pages = select.paginate(unit.conn(), per_page);
        let total = pages
            .num_items()
            .await
            .map_err(|e| scope.fail(ctx.clone(), e))?;
        let items = pages
            .fetch_page(page)
            .await
            .map_err(|e| scope.fail(ctx.clone(), e))?;
        unit.finish(scope, &ctx).await?;
        Ok(Page {
            items,
            page,
            per_page,
            total,
        })
    }

    /// Also fetches the related row of `R` of each row (left join), seen only when it belongs to
    /// this tenant.
    pub async fn all_with<R>(self) -> Result<Vec<(E::Model, Option<R::Model>)>>
    where
        R: TenantOwned,
        R::Model: Send + Sync,
        E: Related<R>,
    {
        let ctx = self.scope.ctx_for::<E>(Operation::Find);
        let org = self.scope.org.clone();
        let mut select = self.select;
        if let Some(via) = <E as Related<R>>::via() {
            let link = table_of(&via.to_tbl).and_then(|t| flakeguard_entity::table(&t));
            let org = org.clone();
            let via = match link {
                Some(link) => via.on_condition(move |_, _| {
                    (link.row_filter)(org.as_str()).unwrap_or_else(Condition::all)
                }),
                None => via,
            };
            select = select.join(JoinType::LeftJoin, via);
        }
        let to =
            <E as Related<R>>::to().on_condition(move |_, _| R::tenant_condition(org.as_str()));
        let select = select
            .join(JoinType::LeftJoin, to)
            .select_also(R::default());
        self.scope
            .statement(&ctx, &[], |tx| Box::pin(select.all(tx)))
            .await
    }
}
