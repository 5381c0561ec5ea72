//! Query shapes beyond filters and inner joins: projections and aggregates into a
//! `FromQueryResult` struct or a tuple, left joins, `exists`, `distinct`, streaming with
//! bounded memory, keyset (cursor) pages and eager loading of related rows.
//!
//! # Design
//!
//! Every shape is SeaORM's own, under SeaORM's name (`select_only`, `column_as`, `group_by`,
//! `having`, `into_model`, `into_tuple`, `cursor_by`, `load_many`, ...), so that a SeaORM user
//! finds it where they expect it; what differs is that the scope runs it, in its transaction,
//! and that the Rust lock ([`crate::lock`]) checks every statement first.
//!
//! A statement reaches the lock in one of two ways:
//!
//! - the shapes that build one statement from the scope's `Select` (projections, left joins,
//!   `exists`, streams) are rendered, verified and sent as rendered, like every scope read;
//! - SeaORM's helpers that build their statements inside (the keyset [`Cursor`], the loader of
//!   related rows) run on a [`Checked`] connection, which verifies each statement before the
//!   transaction sees it. The lock so judges what is sent, not what the scope expects SeaORM
//!   to send, and a helper that one day sends a statement without the tenant predicate is
//!   refused instead of trusted.
//!
//! Every table a statement names carries its tenant predicate: the scope's own table from
//! [`TenantScope::find`], a joined table in its join's `ON` (a left join keeps the rows without
//! a match), a link table of a many-to-many relation in its join too.

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context as TaskContext, Poll};

use flakeguard_entity::tenancy::TenantOwned;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use sea_orm::sea_query::{Expr, IntoValueTuple};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, Cursor, DbBackend, DbErr, EntityTrait, ExecResult,
    FromQueryResult, IntoIdentity, IntoSimpleExpr, JoinType, LoaderTrait, ModelTrait, QueryFilter,
    QueryResult, QuerySelect, Related, SelectGetableTuple, SelectModel, SelectorTrait, Statement,
    TryGetableMany,
};

use super::TenantScope;
use super::guard::table_of;
use super::read::ScopedSelect;
use crate::error::{Context, Operation};
use crate::trace;
use crate::tx::Tx;
use crate::{Error, Result};

impl<'s, E> ScopedSelect<'s, E>
where
    E: TenantOwned,
    E::Model: Send + Sync,
{
    /// Clears the selected columns, to choose them with [`column`](Self::column),
    /// [`column_as`](Self::column_as) and [`expr_as`](Self::expr_as) (SeaORM's
    /// `QuerySelect::select_only`).
    pub fn select_only(mut self) -> Self {
        self.select = self.select.select_only();
        self
    }

    /// Selects the column `col`, of this table or of a joined one.
    pub fn column<C: ColumnTrait>(mut self, col: C) -> Self {
        self.select = self.select.column(col);
        self
    }

    /// Selects each of `cols`.
    pub fn columns<C: ColumnTrait>(mut self, cols: impl IntoIterator<Item = C>) -> Self {
        self.select = self.select.columns(cols);
        self
    }

    /// Selects `expr` (a column, or an expression such as `Column::Id.count()`) under the name
    /// `alias`, the field of the `FromQueryResult` struct that reads it.
    pub fn column_as(mut self, expr: impl IntoSimpleExpr, alias: impl IntoIdentity) -> Self {
        let expr = expr.into_simple_expr();
        self.refuse_raw(&expr);
        self.select = self.select.column_as(expr, alias);
        self
    }

    /// Selects `expr` under the name `alias` (SeaORM's `QuerySelect::expr_as`).
    pub fn expr_as(mut self, expr: impl Into<Expr>, alias: impl IntoIdentity) -> Self {
        let expr = expr.into();
        self.refuse_raw(&expr);
        self.select = self.select.expr_as(expr, alias);
        self
    }

    /// Groups the rows by `col` (any expression), for aggregates.
    pub fn group_by(mut self, col: impl IntoSimpleExpr) -> Self {
        let col = col.into_simple_expr();
        self.refuse_raw(&col);
        self.select = self.select.group_by(col);
        self
    }

    /// Keeps only the groups that satisfy `filter` (SQL's `HAVING`).
    pub fn having(mut self, filter: impl Into<Condition>) -> Self {
        let filter = filter.into();
        self.refuse_raw(&Expr::from(filter.clone()));
        self.select = self.select.having(filter);
        self
    }

    /// Returns each distinct row once (`SELECT DISTINCT`).
    pub fn distinct(mut self) -> Self {
        self.select = self.select.distinct();
        self
    }

    /// Left-joins the related tenant table `R` (through the link table for a many-to-many),
    /// with `R`'s tenant predicate in the join's `ON`: rows of this table without a match of
    /// this tenant still come back, with NULL in `R`'s columns.
    pub fn left_join<R>(mut self) -> Self
    where
        R: TenantOwned,
        E: Related<R>,
    {
        let org = self.scope.org.clone();
        if let Some(via) = <E as Related<R>>::via() {
            let link = table_of(&via.to_tbl).and_then(|t| flakeguard_entity::table(&t));
            let org = org.clone();
            let via = match link {
                Some(link) => via.on_condition(move |_, _| {
                    (link.row_filter)(org.as_str()).unwrap_or_else(Condition::all)
                }),
                None => via,
            };
            self.select = self.select.join(JoinType::LeftJoin, via);
        }
        let to =
            <E as Related<R>>::to().on_condition(move |_, _| R::tenant_condition(org.as_str()));
        self.select = self.select.join(JoinType::LeftJoin, to);
        self
    }

    /// Reads each row into `M`, a `FromQueryResult` struct whose fields name the selected
    /// columns and aliases (SeaORM's `Select::into_model`).
    ///
    /// ```no_run
    /// # use flakeguard_db::{TenantScope, Result};
    /// # async fn f(scope: TenantScope, repo: String) -> Result<()> {
    /// use flakeguard_db::entity::fg_occurrence;
    /// use flakeguard_db::sea_orm::{ColumnTrait, FromQueryResult};
    ///
    /// #[derive(Debug, FromQueryResult)]
    /// struct Runs {
    ///     test_id: String,
    ///     runs: i64,
    /// }
    ///
    /// let per_test: Vec<Runs> = scope
    ///     .find::<fg_occurrence::Entity>()
    ///     .select_only()
    ///     // A field reads the column of its own name: "testId" as "test_id".
    ///     .column_as(fg_occurrence::Column::TestId, "test_id")
    ///     .column_as(fg_occurrence::Column::Id.count(), "runs")
    ///     .group_by(fg_occurrence::Column::TestId)
    ///     .into_model::<Runs>()
    ///     .all()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn into_model<M>(self) -> ScopedSelector<'s, E, SelectModel<M>>
    where
        M: FromQueryResult + Send + Sync,
    {
        ScopedSelector::new(self)
    }

    /// Reads each row into the tuple `T`, column by column in the order selected (SeaORM's
    /// `Select::into_tuple`).
    pub fn into_tuple<T>(self) -> ScopedSelector<'s, E, SelectGetableTuple<T>>
    where
        T: TryGetableMany + Send + Sync,
    {
        ScopedSelector::new(self)
    }

    /// Whether any row matches: `SELECT 1 ... LIMIT 1`.
    pub async fn exists(self) -> Result<bool> {
        let ctx = self.scope.ctx_for::<E>(Operation::Find);
        let select = self.select.select_only().expr(Expr::val(1)).limit(1);
        let stmt = self
            .scope
            .verified(&ctx, &select, self.refused.as_deref())?;
        self.scope
            .statement(&ctx, &[], &[], trace::count, |tx| {
                Box::pin(async move { Ok(u64::from(tx.query_one_raw(stmt).await?.is_some())) })
            })
            .await
            .map(|n| n > 0)
    }

    /// The rows one by one as the server sends them, with memory bounded by the driver's
    /// buffer, not by the result: for exports and other results too large to hold.
    ///
    /// On the pool the stream has a transaction of its own, which ends when the stream does
    /// (or is dropped); inside [`TenantScope::transaction`] it holds the transaction for as
    /// long as it lives: the transaction's other statements (and a second stream) fail with
    /// [`Error::InvalidInput`] until it is drained or dropped.
    pub fn stream(self) -> BoxStream<'s, Result<E::Model>> {
        // The entity's own model reads its columns by name.
        self.into_model::<E::Model>().read_by_name().stream()
    }

    /// Keyset (cursor) pagination ordered by `cols` (SeaORM's `Select::cursor_by`): pages
    /// start [`after`](ScopedCursor::after) or end [`before`](ScopedCursor::before) a row's
    /// values of `cols`, so that a page stays stable while rows are inserted. `cols` must
    /// identify a row (end with the primary key) for the order to be stable.
    pub fn cursor_by<C: IntoIdentity>(self, cols: C) -> ScopedCursor<'s, SelectModel<E::Model>> {
        let ctx = self.scope.ctx_for::<E>(Operation::Find);
        ScopedCursor {
            scope: self.scope,
            ctx,
            refused: self.refused,
            cursor: self.select.cursor_by(cols),
        }
    }

    /// The rows of this query that belong to each of `parents`, one list per parent in their
    /// order, in one query (two for a many-to-many; SeaORM's `LoaderTrait::load_many`): eager
    /// loading without N+1. A parent's rows of another organization are never loaded.
    ///
    /// ```no_run
    /// # use flakeguard_db::{TenantScope, Result};
    /// # async fn f(scope: TenantScope) -> Result<()> {
    /// use flakeguard_db::entity::{fg_failure_cluster, fg_test_case};
    /// let clusters = scope.find::<fg_failure_cluster::Entity>().all().await?;
    /// // Each cluster's test cases, through the link table, in one query.
    /// let cases = scope.find::<fg_test_case::Entity>().load_many(&clusters).await?;
    /// assert_eq!(cases.len(), clusters.len());
    /// # Ok(()) }
    /// ```
    pub async fn load_many<M>(self, parents: &[M]) -> Result<Vec<Vec<E::Model>>>
    where
        M: ModelTrait + Sync,
        M::Entity: Related<E>,
    {
        let (ctx, select) = self.for_loader::<M::Entity>()?;
        self.scope
            .checked(&ctx, trace::len, async |db| {
                parents.load_many(select, db).await
            })
            .await
    }

    /// The row of this query that each of `parents` refers to or owns, if any, in one query
    /// (SeaORM's `LoaderTrait::load_one`).
    pub async fn load_one<M>(self, parents: &[M]) -> Result<Vec<Option<E::Model>>>
    where
        M: ModelTrait + Sync,
        M::Entity: Related<E>,
    {
        let (ctx, select) = self.for_loader::<M::Entity>()?;
        self.scope
            .checked(&ctx, trace::len, async |db| {
                parents.load_one(select, db).await
            })
            .await
    }

    /// The context and `Select` of a load for parents of `P` ([`Self::linked`]), or the refusal
    /// of the raw SQL text the caller gave.
    fn for_loader<P: Related<E>>(&self) -> Result<(Context, sea_orm::Select<E>)> {
        let ctx = self.scope.ctx_for::<E>(Operation::Find);
        match &self.refused {
            Some(reason) => Err(refusal(&ctx, reason)),
            None => Ok((ctx, self.linked::<P>())),
        }
    }

    /// This query's `Select`, with the tenant predicate of the link table that SeaORM's loader
    /// joins when `P` reaches `E` through one (a many-to-many).
    fn linked<P: Related<E>>(&self) -> sea_orm::Select<E> {
        let org = self.scope.org.as_str();
        let link = <P as Related<E>>::via()
            .and_then(|via| table_of(&via.to_tbl))
            .and_then(|t| flakeguard_entity::table(&t))
            .and_then(|t| (t.row_filter)(org));
        match link {
            Some(filter) => self.select.clone().filter(filter),
            None => self.select.clone(),
        }
    }
}

/// The Rust lock's refusal `reason`, as the error of the operation of `ctx`: nothing was sent.
pub(super) fn refusal(ctx: &Context, reason: &str) -> Error {
    Error::InvalidInput {
        context: ctx.clone(),
        reason: crate::lock::refusal(reason),
    }
}

/// A scoped query whose rows are read into `S::Item` (a `FromQueryResult` struct or a tuple),
/// from [`ScopedSelect::into_model`] and [`ScopedSelect::into_tuple`].
#[must_use = "a query does nothing until it is run with all, one or stream"]
pub struct ScopedSelector<'s, E: EntityTrait, S> {
    query: ScopedSelect<'s, E>,
    /// `S` reads by name only (the entity's own model): rows need no position keys.
    by_name: bool,
    _rows: PhantomData<fn() -> S>,
}

impl<'s, E, S> ScopedSelector<'s, E, S>
where
    E: TenantOwned,
    E::Model: Send + Sync,
    S: SelectorTrait,
    S::Item: Send + Sync,
{
    fn new(query: ScopedSelect<'s, E>) -> Self {
        ScopedSelector {
            query,
            by_name: false,
            _rows: PhantomData,
        }
    }

    /// Rows for a reader that reads every column by name (a `#[derive(FromQueryResult)]`
    /// struct of the crate's own): on the pipelined driver they are decoded without position
    /// keys, one copy of each value fewer. Not for a reader that may read by position (a
    /// tuple, a caller's own `FromQueryResult`), which would find the columns in name order.
    pub(crate) fn read_by_name(mut self) -> Self {
        self.by_name = true;
        self
    }

    /// Runs the query; every row.
    pub async fn all(self) -> Result<Vec<S::Item>> {
        let (q, by_name) = (self.query, self.by_name);
        let ctx = q.scope.ctx_for::<E>(Operation::Find);
        let stmt = q.scope.verified(&ctx, &q.select, q.refused.as_deref())?;
        q.scope
            .statement(&ctx, &[], &[], trace::len, |tx| {
                Box::pin(async move {
                    let tx = if by_name { tx.rows_by_name() } else { tx };
                    let rows = tx.query_all_raw(stmt).await?;
                    rows.into_iter().map(S::from_raw_query_result).collect()
                })
            })
            .await
    }

    /// Runs the query; the first row, if any.
    pub async fn one(self) -> Result<Option<S::Item>> {
        let (q, by_name) = (self.query, self.by_name);
        let ctx = q.scope.ctx_for::<E>(Operation::Find);
        let stmt = q
            .scope
            .verified(&ctx, &q.select.limit(1), q.refused.as_deref())?;
        q.scope
            .statement(&ctx, &[], &[], trace::some, |tx| {
                Box::pin(async move {
                    let tx = if by_name { tx.rows_by_name() } else { tx };
                    tx.query_one_raw(stmt)
                        .await?
                        .map(S::from_raw_query_result)
                        .transpose()
                })
            })
            .await
    }

    /// The rows one by one, as [`ScopedSelect::stream`].
    pub fn stream(self) -> BoxStream<'s, Result<S::Item>>
    where
        S: 's,
    {
        let q = self.query;
        let ctx = q.scope.ctx_for::<E>(Operation::Find);
        let stmt = q.scope.verified(&ctx, &q.select, q.refused.as_deref());
        q.scope.stream_rows::<S>(ctx, stmt, self.by_name)
    }
}

/// Keyset pagination over a scoped query, from [`ScopedSelect::cursor_by`]: SeaORM's
/// [`Cursor`], run by the scope on a connection that checks each statement.
#[must_use = "a cursor does nothing until it is run with all"]
pub struct ScopedCursor<'s, S: SelectorTrait> {
    scope: &'s TenantScope,
    ctx: Context,
    refused: Option<String>,
    cursor: Cursor<S>,
}

impl<'s, S> ScopedCursor<'s, S>
where
    S: SelectorTrait + Send + Sync,
    S::Item: Send + Sync,
{
    /// The rows after the row whose ordering columns hold `values`.
    pub fn after(mut self, values: impl IntoValueTuple) -> Self {
        self.cursor.after(values);
        self
    }

    /// The rows before the row whose ordering columns hold `values`.
    pub fn before(mut self, values: impl IntoValueTuple) -> Self {
        self.cursor.before(values);
        self
    }

    /// The first `n` rows (of those after or before the cursor).
    pub fn first(mut self, n: u64) -> Self {
        self.cursor.first(n);
        self
    }

    /// The last `n` rows (of those after or before the cursor), still in ascending order.
    pub fn last(mut self, n: u64) -> Self {
        self.cursor.last(n);
        self
    }

    /// Orders ascending (the default).
    pub fn asc(mut self) -> Self {
        self.cursor.asc();
        self
    }

    /// Orders descending.
    pub fn desc(mut self) -> Self {
        self.cursor.desc();
        self
    }

    /// Reads each row into `M` instead.
    pub fn into_model<M>(self) -> ScopedCursor<'s, SelectModel<M>>
    where
        M: FromQueryResult + Send + Sync,
    {
        ScopedCursor {
            scope: self.scope,
            ctx: self.ctx,
            refused: self.refused,
            cursor: self.cursor.into_model(),
        }
    }

    /// Runs the query; the rows of the page.
    pub async fn all(self) -> Result<Vec<S::Item>> {
        if let Some(reason) = &self.refused {
            return Err(refusal(&self.ctx, reason));
        }
        let mut cursor = self.cursor;
        self.scope
            .checked(&self.ctx, trace::len, async |db| cursor.all(db).await)
            .await
    }
}

impl TenantScope {
    /// Runs `f`, an operation that lets SeaORM build its statements, on a [`Checked`]
    /// connection over the operation's transaction: a statement the Rust lock refuses is not
    /// sent, and the operation fails with [`Error::InvalidInput`].
    async fn checked<T>(
        &self,
        ctx: &Context,
        rows: fn(&T) -> u64,
        f: impl AsyncFnOnce(&Checked<'_>) -> Result<T, DbErr>,
    ) -> Result<T> {
        trace::operation(ctx, rows, async {
            let unit = self.unit(ctx).await?;
            let db = Checked {
                tx: unit.conn(),
                org: self.org.as_str(),
                refused: Mutex::new(None),
            };
            let out = f(&db).await;
            if let Some(reason) = db.refused.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(refusal(ctx, &reason));
            }
            let out = unit.check(ctx, out)?;
            unit.finish(self, ctx).await?;
            Ok(out)
        })
        .await
    }

    /// The rows of `stmt` (verified already, or the refusal), decoded by `S`, as a stream in a
    /// unit of work of its own (see [`ScopedSelect::stream`]), traced as one operation.
    fn stream_rows<'s, S>(
        &'s self,
        ctx: Context,
        stmt: Result<Statement>,
        by_name: bool,
    ) -> BoxStream<'s, Result<S::Item>>
    where
        S: SelectorTrait + 's,
        S::Item: Send,
    {
        let span = trace::operation_span(&ctx);
        let rows = async_stream::try_stream! {
            let stmt = stmt?;
            let (unit, _mark) = self.stream_unit(&ctx).await?;
            {
                if by_name {
                    unit.conn().rows_by_name();
                }
                let mut rows = unit.conn().stream_raw(&stmt);
                while let Some(row) = rows.next().await {
                    let row = unit.check(&ctx, row)?;
                    yield unit.check(&ctx, S::from_raw_query_result(row))?;
                }
            }
            unit.finish(self, &ctx).await?;
        };
        Box::pin(Traced {
            rows: Box::pin(rows),
            span,
            count: 0,
            ended: false,
        })
    }
}

/// A stream traced as one `flakeguard.operation`: its span is entered while the stream is
/// polled, and records the rows and the outcome when the stream ends. (`tracing`'s
/// `Instrument` covers futures only.)
struct Traced<'s, T> {
    rows: BoxStream<'s, Result<T>>,
    span: tracing::Span,
    count: u64,
    ended: bool,
}

impl<T> Stream for Traced<'_, T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        let polled = this.span.in_scope(|| this.rows.poll_next_unpin(cx));
        match &polled {
            Poll::Ready(Some(Ok(_))) => this.count += 1,
            Poll::Ready(Some(Err(e))) => {
                this.ended = true;
                this.span.record("outcome", e.kind_name());
            }
            Poll::Ready(None) => {
                this.ended = true;
                this.span.record("rows", this.count);
                this.span.record("outcome", "ok");
            }
            Poll::Pending => {}
        }
        polled
    }
}

/// A connection that checks every statement with the Rust lock before it goes to `tx`: for
/// SeaORM's helpers that build their statements inside (see the module's design notes).
pub(crate) struct Checked<'a> {
    tx: &'a Tx,
    org: &'a str,
    /// The first refusal: the operation then fails with it, whatever SeaORM made of the error.
    refused: Mutex<Option<String>>,
}

impl Checked<'_> {
    fn check(&self, stmt: &Statement) -> Result<(), DbErr> {
        crate::lock::verify(stmt, crate::lock::Mode::Tenant(self.org)).map_err(|reason| {
            let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
            refused.get_or_insert(reason.clone());
            DbErr::Custom(reason)
        })
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Checked<'_> {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.check(&stmt)?;
        self.tx.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        // Text without values cannot be bound to the tenant; nothing of the scope sends it.
        self.check(&Statement::from_string(DbBackend::Postgres, sql))?;
        self.tx.execute_unprepared(sql).await
    }

    // SeaORM's cursor and loader read the crate's entity models: by name.
    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.check(&stmt)?;
        self.tx.rows_by_name().query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.check(&stmt)?;
        self.tx.rows_by_name().query_all_raw(stmt).await
    }
}
