//! [`GlobalTables`]: the tables that are not tenant data.

use flakeguard_entity::stamps::Stamped;
use flakeguard_entity::tenancy::Global;
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityName, EntityTrait, IntoActiveModel, PaginatorTrait, PrimaryKeyTrait, Select,
    TransactionTrait,
};

use crate::error::{Context, Operation};
use crate::{Error, Result};

/// Access to the global tables, `User` and `IngestionJob`, which belong to no organization.
///
/// Separate from [`TenantScope`](crate::TenantScope) on purpose: a scope cannot reach these
/// tables, and this handle cannot reach tenant data; the compiler checks both.
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
    db: DatabaseConnection,
}

impl GlobalTables {
    /// The global tables on the pool `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        GlobalTables { db }
    }

    fn fail<E: EntityName + Default>(operation: Operation, err: DbErr) -> Error {
        let context = Context {
            operation,
            tenant: None,
            table: Some(E::default().table_name()),
        };
        if matches!(err, DbErr::RecordNotUpdated | DbErr::RecordNotFound(_)) {
            return Error::NotFound { context };
        }
        Error::Database {
            context,
            source: err,
        }
    }

    async fn begin<E: EntityName + Default>(&self, op: Operation) -> Result<DatabaseTransaction> {
        self.db.begin().await.map_err(|e| Self::fail::<E>(op, e))
    }

    async fn commit<E: EntityName + Default>(tx: DatabaseTransaction, op: Operation) -> Result<()> {
        tx.commit().await.map_err(|e| Self::fail::<E>(op, e))
    }

    /// Every row `query` selects.
    pub async fn all<E: Global>(&self, query: Select<E>) -> Result<Vec<E::Model>> {
        let op = Operation::Find;
        let tx = self.begin::<E>(op).await?;
        let rows = query.all(&tx).await.map_err(|e| Self::fail::<E>(op, e))?;
        Self::commit::<E>(tx, op).await?;
        Ok(rows)
    }

    /// The first row `query` selects.
    pub async fn one<E: Global>(&self, query: Select<E>) -> Result<Option<E::Model>> {
        let op = Operation::Find;
        let tx = self.begin::<E>(op).await?;
        let row = query.one(&tx).await.map_err(|e| Self::fail::<E>(op, e))?;
        Self::commit::<E>(tx, op).await?;
        Ok(row)
    }

    /// The number of rows `query` selects.
    pub async fn count<E>(&self, query: Select<E>) -> Result<u64>
    where
        E: Global,
        E::Model: Send + Sync,
    {
        let op = Operation::Count;
        let tx = self.begin::<E>(op).await?;
        let n = query.count(&tx).await.map_err(|e| Self::fail::<E>(op, e))?;
        Self::commit::<E>(tx, op).await?;
        Ok(n)
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
        A: ActiveModelTrait + ActiveModelBehavior + Stamped + Send,
        A::Entity: Global,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    {
        let op = Operation::Insert;
        let tx = self.begin::<A::Entity>(op).await?;
        let model = row
            .insert(&tx)
            .await
            .map_err(|e| Self::fail::<A::Entity>(op, e))?;
        Self::commit::<A::Entity>(tx, op).await?;
        Ok(model)
    }

    /// Updates the columns `row` sets (refreshing "updatedAt") and returns the row as stored.
    pub async fn update<A>(&self, row: A) -> Result<<A::Entity as EntityTrait>::Model>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Stamped + Send,
        A::Entity: Global,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    {
        let op = Operation::Update;
        let tx = self.begin::<A::Entity>(op).await?;
        let model = row
            .update(&tx)
            .await
            .map_err(|e| Self::fail::<A::Entity>(op, e))?;
        Self::commit::<A::Entity>(tx, op).await?;
        Ok(model)
    }

    /// Deletes the row of `E` with primary key `id`; [`Error::NotFound`] when there is none.
    pub async fn delete<E, K>(&self, id: K) -> Result<()>
    where
        E: Global,
        K: Into<<E::PrimaryKey as PrimaryKeyTrait>::ValueType>,
    {
        let op = Operation::Delete;
        let tx = self.begin::<E>(op).await?;
        let res = E::delete_by_id(id)
            .exec(&tx)
            .await
            .map_err(|e| Self::fail::<E>(op, e))?;
        Self::commit::<E>(tx, op).await?;
        match res.rows_affected {
            0 => Err(Self::fail::<E>(Operation::Delete, DbErr::RecordNotUpdated)),
            _ => Ok(()),
        }
    }
}
