//! [`Db`]: the crate's handle on a connection pool, from which scopes and the global tables'
//! handle are made.

use futures_util::future::BoxFuture;
use sea_orm::{DatabaseConnection, DbErr};

use crate::error::{Context, Operation};
use crate::tx::{Pool, Tx};
use crate::{Error, GlobalTables, OrgId, Result, TenantScope};

/// Runs `f`, one statement, in a transaction of its own on `db`, with no tenant set (the global tables'
/// handle and CrossTenant: every statement of the crate runs in a transaction, so that it works
/// behind PgBouncer), committing on success (a read, [`Operation::Find`] or
/// [`Operation::Count`], ends with a queued rollback instead); driver errors are mapped to
/// `ctx`, with the failing step (begin, the statement, commit) as its operation.
pub(crate) async fn in_transaction<T, F>(db: &Pool, ctx: &Context, f: F) -> Result<T>
where
    F: for<'c> FnOnce(&'c Tx) -> BoxFuture<'c, Result<T, DbErr>>,
{
    let tx = db
        .begin(None)
        .await
        .map_err(|e| Error::from_db(ctx.with_operation(Operation::Begin), e))?;
    // `f` is one statement: on the pipelined driver its COMMIT (a read's ROLLBACK) travels
    // with it.
    tx.end_with_next(
        !ctx.operation.reads_only(),
        Some("BEGIN READ ONLY".to_owned()),
    )
    .await;
    let out = f(&tx).await.map_err(|e| {
        let ctx = match tx.take_failed_step() {
            Some(step) => ctx.with_operation(step),
            None => ctx.clone(),
        };
        Error::from_db(ctx, e)
    })?;
    if ctx.operation.reads_only() {
        // A read wrote nothing: its ROLLBACK is queued, not waited for, as a scope's reads.
        drop(tx);
        return Ok(out);
    }
    tx.commit()
        .await
        .map_err(|e| Error::from_db(ctx.with_operation(Operation::Commit), e))?;
    Ok(out)
}

/// A connection pool to the FlakeGuard database, as [`connect`](crate::connect) opens it.
///
/// Everything an application does goes through what it makes: [`Db::scope`] for one
/// organization's data, [`Db::global`] for the tables that belong to no organization. Cheap to
/// clone (the pool is shared).
///
/// The raw SeaORM connection underneath is reachable only through
/// [`Db::unscoped_connection`], whose name says what it gives up.
///
/// ```no_run
/// # async fn f() -> flakeguard_db::Result<()> {
/// use flakeguard_db::OrgId;
/// let db = flakeguard_db::connect("postgres://flakeguard_api:secret@localhost/flakeguard").await?;
/// let acme = db.scope(OrgId::new("acme")?);
/// let users = db.global();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Db {
    pool: Pool,
}

impl Db {
    /// Wraps a pool you opened yourself (with SeaORM's `ConnectOptions`, for example the
    /// statement-cache setting PgBouncer needs).
    pub fn new(conn: DatabaseConnection) -> Self {
        Db {
            pool: Pool::new(conn),
        }
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Access to `org`'s data: every query carries its tenant predicate.
    pub fn scope(&self, org: OrgId) -> TenantScope {
        TenantScope::on(self.pool.clone(), org)
    }

    /// Access to the global tables, `User` and `IngestionJob`.
    pub fn global(&self) -> GlobalTables {
        GlobalTables::on(self.pool.clone())
    }

    /// The raw SeaORM connection. **It bypasses the Rust lock**: entities queried on it carry no
    /// tenant predicate, and writes get no "orgId" fill-in and no foreign-key ownership check,
    /// so only row-level security stands between tenants (and nothing at all on a role that
    /// bypasses it). For migrations and administration; application code uses
    /// [`Db::scope`].
    pub fn unscoped_connection(&self) -> &DatabaseConnection {
        self.pool.orm()
    }

    /// The same pool with pipelining turned off: every transaction runs on sqlx, with its
    /// BEGIN in a round trip of its own (see README, "Round trips"). For comparison, or to rule
    /// pipelining out when looking for a cause.
    pub fn without_pipelining(self) -> Self {
        Db {
            pool: self.pool.without_pipelining(),
        }
    }

    /// Whether the crate's transactions on this pool are pipelined (src/pipe.rs): the BEGIN
    /// with the tenant, the statement and its COMMIT in one round trip. Not where TLS is
    /// required or sqlx's statement cache is off (behind a PgBouncer without prepared
    /// statements); there every transaction runs on sqlx.
    pub fn is_pipelined(&self) -> bool {
        self.pool.pipelined()
    }

    /// Closes the pool, waiting for its connections to close.
    pub async fn close(self) -> Result<()> {
        self.pool.close_pipe();
        self.pool
            .orm()
            .clone()
            .close()
            .await
            .map_err(|e| Error::database(Operation::Connect, e))
    }
}
