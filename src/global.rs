//! [`GlobalTables`]: the tables that are not tenant data.

use flakeguard_entity::stamps::Stamped;
use flakeguard_entity::tenancy::Global;
use futures_util::future::BoxFuture;
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, DatabaseConnection, DbBackend, DbErr, EntityName,
    EntityTrait, FromQueryResult, IntoActiveModel, PrimaryKeyTrait, QuerySelect, QueryTrait,
    Select, Statement,
};

use crate::error::{Context, Operation};
use crate::trace;
use crate::tx::{Pool, Tx};
use crate::{Error, Result};

/// Access to the global tables, `User` and `IngestionJob`, which belong to no organization.
///
/// Separate from [`TenantScope`](crate::TenantScope) on purpose: a scope cannot reach these
/// tables, and this handle cannot reach tenant data. The compiler checks the tables a query
/// starts from; every statement is also checked before it is sent, so that a join, subquery
/// or projection that names tenant data is refused with [`Error::InvalidInput`].
///
/// ```compile_fail
/// # async fn f(global: flakeguard_db::GlobalTables) {
/// use flakeguard_db::entity::fg_occurrence;
/// use flakeguard_db::sea_orm::EntityTrait;
/// // FGOccurrence is tenant data: only a TenantScope reaches it.
/// let rows = global.all(fg_occurrence::Entity::find()).await;
/// # }
/// ```
///
/// ```no_run
/// # async fn f(global: flakeguard_db::GlobalTables) -> flakeguard_db::Result<()> {
/// use flakeguard_db::entity::user;
/// use flakeguard_db::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
/// let ada = global
///     .one(user::Entity::find().filter(user::Column::Email.eq("ada@example.com")))
///     .await?;
/// # Ok(()) }
/// ```
///
/// Like a scope's, every statement runs in a transaction of its own (no tenant is set), so that
/// the handle works behind PgBouncer in transaction mode too.
#[derive(Debug, Clone)]
pub struct GlobalTables {
    db: Pool,
}

impl GlobalTables {
    /// The global tables on the pool `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self::on(Pool::new(db))
    }

    pub(crate) fn on(db: Pool) -> Self {
        GlobalTables { db }
    }

    /// Runs `f` as one operation on table `E`: in a transaction of its own (no tenant is set),
    /// in a `flakeguard.operation` span, with driver errors mapped as everywhere in the crate.
    async fn run<E, T, F>(&self, operation: Operation, rows: fn(&T) -> u64, f: F) -> Result<T>
    where
        E: EntityName + Default,
        F: for<'c> FnOnce(&'c Tx) -> BoxFuture<'c, Result<T, DbErr>>,
    {
        let ctx = Context {
            operation,
            tenant: None,
            table: Some(E::default().table_name()),
        };
        trace::operation(&ctx, rows, crate::db::in_transaction(&self.db, &ctx, f)).await
    }

    /// The statement of `query`, after checking that it names no table of tenant data
    /// anywhere (a join, a subquery, a projection) and calls only allowed functions
    /// ([`ALLOWED_FUNCTIONS`](crate::ALLOWED_FUNCTIONS)); [`Error::InvalidInput`] otherwise,
    /// before anything is sent.
    fn verified<E: EntityName + Default>(
        operation: Operation,
        stmt: Statement,
    ) -> Result<Statement> {
        crate::lock::verify(&stmt, crate::lock::Mode::Global).map_err(|reason| {
            Error::InvalidInput {
                context: Context {
                    operation,
                    tenant: None,
                    table: Some(E::default().table_name()),
                },
                reason: format!(
                    "{}; GlobalTables reaches the global tables only: tenant data goes \
                     through a TenantScope",
                    crate::lock::refusal(&reason)
                ),
            }
        })?;
        Ok(stmt)
    }

    /// Every row `query` selects. A query that names a table of tenant data anywhere is
    /// refused with [`Error::InvalidInput`].
    pub async fn all<E: Global>(&self, query: Select<E>) -> Result<Vec<E::Model>> {
        let stmt = Self::verified::<E>(Operation::Find, query.build(DbBackend::Postgres))?;
        self.run::<E, _, _>(Operation::Find, trace::len, |tx| {
            Box::pin(E::Model::find_by_statement(stmt).all(tx.rows_by_name()))
        })
        .await
    }

    /// The first row `query` selects.
    pub async fn one<E: Global>(&self, query: Select<E>) -> Result<Option<E::Model>> {
        let stmt = Self::verified::<E>(Operation::Find, query.limit(1).build(DbBackend::Postgres))?;
        self.run::<E, _, _>(Operation::Find, trace::some, |tx| {
            Box::pin(E::Model::find_by_statement(stmt).one(tx.rows_by_name()))
        })
        .await
    }

    /// The number of rows `query` selects.
    pub async fn count<E>(&self, query: Select<E>) -> Result<u64>
    where
        E: Global,
        E::Model: Send + Sync,
    {
        let stmt = Self::verified::<E>(
            Operation::Count,
            DbBackend::Postgres.build(&crate::tenant_scope::count_query(&query)),
        )?;
        self.run::<E, _, _>(Operation::Count, trace::count, |tx| {
            Box::pin(crate::tenant_scope::count_of(tx.rows_by_name(), stmt))
        })
        .await
    }

    /// The row of `E` with primary key `id`.
    pub async fn find_by_id<E, K>(&self, id: K) -> Result<Option<E::Model>>
    where
        E: Global,
        K: Into<<E::PrimaryKey as PrimaryKeyTrait>::ValueType>,
    {
        self.one(E::find_by_id(id)).await
    }

    /// Inserts a row (an unset id becomes a CUID2, "updatedAt" is set) and returns it as stored.
    pub async fn insert<A>(&self, row: A) -> Result<<A::Entity as EntityTrait>::Model>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Stamped + Send + 'static,
        A::Entity: Global,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    {
        self.run::<A::Entity, _, _>(Operation::Insert, trace::one, |tx| {
            Box::pin(row.insert(tx.rows_by_name()))
        })
        .await
    }

    /// Updates the columns `row` sets (refreshing "updatedAt") and returns the row as stored.
    pub async fn update<A>(&self, row: A) -> Result<<A::Entity as EntityTrait>::Model>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Stamped + Send + 'static,
        A::Entity: Global,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    {
        self.run::<A::Entity, _, _>(Operation::Update, trace::one, |tx| {
            Box::pin(row.update(tx.rows_by_name()))
        })
        .await
    }

    /// Deletes the row of `E` with primary key `id`; [`Error::NotFound`] when there is none.
    pub async fn delete<E, K>(&self, id: K) -> Result<()>
    where
        E: Global,
        K: Into<<E::PrimaryKey as PrimaryKeyTrait>::ValueType>,
    {
        let delete = E::delete_by_id(id);
        self.run::<E, _, _>(Operation::Delete, trace::count, |tx| {
            Box::pin(async move {
                match delete.exec(tx).await?.rows_affected {
                    0 => Err(DbErr::RecordNotUpdated),
                    n => Ok(n),
                }
            })
        })
        .await
        .map(|_| ())
    }
}
