//! Reads: [`TenantScope::find`] and [`ScopedSelect`], lookups by id, counts, raw queries.

use flakeguard_entity::tenancy::TenantOwned;
use sea_orm::{
    Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, IntoSimpleExpr,
    JoinType, Order, PaginatorTrait, PrimaryKeyTrait, QueryFilter, QueryOrder, QueryResult,
    QuerySelect, QueryTrait, Related, Select, Statement,
};

use sea_orm::sea_query::{Asterisk, Expr, ExprTrait, Query, SelectStatement};

use super::TenantScope;
use super::guard::table_of;
use crate::error::Operation;
use crate::trace;
use crate::{Error, Result};

impl TenantScope {
    /// The statement of `query`, after the Rust lock's check of what it would send
    /// ([`crate::lock`]), refusing first the raw SQL text the caller's expressions were found to
    /// hold (`raw`): [`Error::InvalidInput`] naming what is refused, before anything is sent.
    pub(crate) fn verified(
        &self,
        ctx: &crate::error::Context,
        query: &impl QueryTrait,
        raw: Option<&str>,
    ) -> Result<Statement> {
        self.verified_with(ctx, raw, || query.build(DbBackend::Postgres))
    }

    /// [`TenantScope::verified`] of the statement `build` renders (built only when `raw` is
    /// `None`).
    pub(crate) fn verified_with(
        &self,
        ctx: &crate::error::Context,
        raw: Option<&str>,
        build: impl FnOnce() -> Statement,
    ) -> Result<Statement> {
        if let Some(reason) = raw {
            return Err(super::shape::refusal(ctx, reason));
        }
        let stmt = build();
        crate::lock::verify(&stmt, crate::lock::Mode::Tenant(self.org.as_str()))
            .map_err(|reason| super::shape::refusal(ctx, &reason))?;
        Ok(stmt)
    }

    /// A query over this tenant's rows of `E`, to refine with filters, ordering, pagination and
    /// joins, then run.
    pub fn find<E: TenantOwned>(&self) -> ScopedSelect<'_, E> {
        ScopedSelect {
            scope: self,
            select: E::find().filter(E::tenant_condition(self.org.as_str())),
            refused: None,
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
        self.statement(&ctx, &[], &[], trace::some, |tx| {
            Box::pin(select.one(tx.rows_by_name()))
        })
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

    /// `EXISTS (SELECT 1 FROM "R" WHERE <R's tenant predicate> AND filter)`: a subquery over
    /// another table of this tenant, for [`ScopedSelect::filter`],
    /// [`TenantScope::update_many`] and [`TenantScope::delete_many`]. `filter` may name the
    /// outer table's columns (a correlated subquery). Raw SQL text in `filter` is refused as it
    /// is anywhere else. A subquery the caller builds itself over tenant data is refused, since
    /// it carries no tenant predicate.
    ///
    /// ```no_run
    /// # use flakeguard_db::{TenantScope, Result};
    /// # async fn f(scope: TenantScope) -> Result<()> {
    /// use flakeguard_db::entity::{fg_occurrence, fg_test_case};
    /// use flakeguard_db::sea_orm::ColumnTrait;
    /// use flakeguard_db::sea_orm::sea_query::{Expr, ExprTrait};
    /// // Test cases that failed at least once.
    /// let failing = scope
    ///     .find::<fg_test_case::Entity>()
    ///     .filter(scope.exists::<fg_occurrence::Entity>(
    ///         fg_occurrence::Column::Status.eq("failed").and(
    ///             Expr::col((fg_occurrence::Entity, fg_occurrence::Column::TestId))
    ///                 .equals((fg_test_case::Entity, fg_test_case::Column::Id)),
    ///         ),
    ///     ))
    ///     .all()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn exists<R: TenantOwned>(&self, filter: impl Into<Condition>) -> Condition {
        let filter = filter.into();
        if let Some(reason) = crate::lock::raw_text(&Expr::from(filter.clone())) {
            return crate::lock::refused_condition(format!("{reason}, in TenantScope::exists"));
        }
        let sub = Query::select()
            .expr(Expr::val(1))
            .from(R::default())
            .cond_where(R::tenant_condition(self.org.as_str()))
            .cond_where(filter)
            .to_owned();
        Condition::all().add(Expr::exists(sub))
    }

    /// `expr IN (SELECT "R"."column" FROM "R" WHERE <R's tenant predicate> AND filter)`: a
    /// subquery over another table of this tenant, as [`TenantScope::exists`].
    pub fn in_subquery<R: TenantOwned>(
        &self,
        expr: impl IntoSimpleExpr,
        column: R::Column,
        filter: impl Into<Condition>,
    ) -> Condition {
        let filter = filter.into();
        if let Some(reason) = crate::lock::raw_text(&Expr::from(filter.clone())) {
            return crate::lock::refused_condition(format!(
                "{reason}, in TenantScope::in_subquery"
            ));
        }
        let sub = Query::select()
            .column((R::default(), column))
            .from(R::default())
            .cond_where(R::tenant_condition(self.org.as_str()))
            .cond_where(filter)
            .to_owned();
        Condition::all().add(expr.into_simple_expr().in_subquery(sub))
    }

    /// This tenant's own `Organization` row (`None` if it has not been created).
    pub async fn organization(&self) -> Result<Option<flakeguard_entity::organization::Model>> {
        self.find_by_id::<flakeguard_entity::organization::Entity, _>(self.org.as_str().to_owned())
            .await
    }

    /// Runs a raw query inside this scope's transaction, with the tenant set.
    ///
    /// Raw SQL carries no tenant predicate from this crate: only row-level security in the
    /// database restricts it, and that reads the tenant from a session setting raw SQL can
    /// change (docs/DESIGN.md, "Why is raw SQL allowed"). Prefer the typed methods; never build
    /// raw SQL from a request's input.
    pub async fn query_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>> {
        let ctx = self.ctx(Operation::Raw, None);
        self.statement(&ctx, &[], &[], trace::len, |tx| tx.query_all_raw(stmt))
            .await
    }
}

/// The statement SeaORM's `PaginatorTrait::count` sends for `select`: `SELECT COUNT(*) AS
/// "num_items" FROM (<select without its ORDER BY>) AS "sub_query"`. Built by the crate so that
/// it is rendered once, and the Rust lock checks the very text that is sent.
pub(crate) fn count_query<E: EntityTrait>(select: &Select<E>) -> SelectStatement {
    Query::select()
        .expr_as(Expr::col(Asterisk).count(), "num_items")
        .from_subquery(
            select.as_query().clone().clear_order_by().to_owned(),
            "sub_query",
        )
        .to_owned()
}

/// Runs a statement of [`count_query`] on `conn`; its count.
pub(crate) async fn count_of<C: ConnectionTrait>(conn: &C, stmt: Statement) -> Result<u64, DbErr> {
    let Some(row) = conn.query_one_raw(stmt).await? else {
        return Ok(0);
    };
    let n: i64 = row.try_get("", "num_items")?;
    u64::try_from(n).map_err(|_| DbErr::Type(format!("a count of {n} rows")))
}

/// A query over one tenant's rows of `E`, from [`TenantScope::find`].
///
/// The tenant predicate is in place from the start; every method only narrows or orders the
/// result, and joins add the joined table's own tenant predicate.
#[must_use = "a query does nothing until it is run with all, one, count or page"]
pub struct ScopedSelect<'s, E: EntityTrait> {
    pub(super) scope: &'s TenantScope,
    pub(super) select: Select<E>,
    /// The first raw SQL text the caller gave (see [`crate::lock::raw_text`]).
    pub(super) refused: Option<String>,
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
        let filter = filter.into();
        self.refuse_raw(&Expr::from(filter.clone()));
        self.select = self.select.filter(filter);
        self
    }

    /// Remembers the first raw SQL text among the caller's expressions; the query then fails
    /// with [`Error::InvalidInput`] when it is run, before anything is sent.
    pub(super) fn refuse_raw(&mut self, e: &Expr) {
        if self.refused.is_none() {
            self.refused = crate::lock::raw_text(e);
        }
    }

    /// Orders by `col` ascending (any expression, including a joined table's column).
    pub fn order_by_asc(mut self, col: impl IntoSimpleExpr) -> Self {
        let col = col.into_simple_expr();
        self.refuse_raw(&col);
        self.select = self.select.order_by(col, Order::Asc);
        self
    }

    /// Orders by `col` descending.
    pub fn order_by_desc(mut self, col: impl IntoSimpleExpr) -> Self {
        let col = col.into_simple_expr();
        self.refuse_raw(&col);
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

    /// The statement this query sends, after the Rust lock's check of it ([`Error::InvalidInput`]
    /// when the check refuses it): for logging, `EXPLAIN`, or running it elsewhere.
    pub fn statement(&self) -> Result<Statement> {
        let ctx = self.scope.ctx_for::<E>(Operation::Find);
        self.scope
            .verified(&ctx, &self.select, self.refused.as_deref())
    }

    /// Runs the query; every row.
    pub async fn all(self) -> Result<Vec<E::Model>> {
        let ctx = self.scope.ctx_for::<E>(Operation::Find);
        let stmt = self
            .scope
            .verified(&ctx, &self.select, self.refused.as_deref())?;
        self.scope
            .statement(&ctx, &[], &[], trace::len, |tx| {
                Box::pin(E::Model::find_by_statement(stmt).all(tx.rows_by_name()))
            })
            .await
    }

    /// Runs the query; the first row, if any.
    pub async fn one(self) -> Result<Option<E::Model>> {
        let ctx = self.scope.ctx_for::<E>(Operation::Find);
        let refused = self.refused;
        let stmt = self
            .scope
            .verified(&ctx, &self.select.limit(1), refused.as_deref())?;
        self.scope
            .statement(&ctx, &[], &[], trace::some, |tx| {
                Box::pin(E::Model::find_by_statement(stmt).one(tx.rows_by_name()))
            })
            .await
    }

    /// Counts the rows.
    pub async fn count(self) -> Result<u64> {
        let ctx = self.scope.ctx_for::<E>(Operation::Count);
        let stmt = self
            .scope
            .verified_with(&ctx, self.refused.as_deref(), || {
                DbBackend::Postgres.build(&count_query(&self.select))
            })?;
        self.scope
            .statement(&ctx, &[], &[], trace::count, |tx| {
                Box::pin(count_of(tx.rows_by_name(), stmt))
            })
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
        scope.verified(&ctx, &select, self.refused.as_deref())?;
        let fetch_items = |items: &(u64, Vec<E::Model>)| items.1.len() as u64;
        let (total, items) = trace::operation(&ctx, fetch_items, async {
            let unit = scope.unit(&ctx).await?;
            let pages = select.paginate(unit.conn(), per_page);
            let total = unit.check(&ctx, pages.num_items().await)?;
            let items = unit.check(&ctx, pages.fetch_page(page).await)?;
            unit.finish(scope, &ctx).await?;
            Ok((total, items))
        })
        .await?;
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
        let (scope, refused) = (self.scope, self.refused.clone());
        let select = self.left_join::<R>().select.select_also(R::default());
        scope.verified(&ctx, &select, refused.as_deref())?;
        scope
            .statement(&ctx, &[], &[], trace::len, |tx| {
                Box::pin(select.all(tx.rows_by_name()))
            })
            .await
    }
}
