//! [`TenantScope`]: the only way application code reaches tenant data.
//!
//! # Design
//!
//! Every unit of work a scope runs is a transaction opened by
//! `BEGIN; SET LOCAL app.current_tenant_id = '<tenant>'`
//! ([`tenant_begin_sql`](crate::tenant_begin_sql); src/tx.rs), sent with the transaction's first
//! statement on the pipelined driver (src/pipe.rs), as a round trip of its own on sqlx. The
//! setting is local to the
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
//!
//! The files of this module, one idea each:
//!
//! - `mod.rs`: the scope type and [`TenantScope::transaction`];
//! - `unit.rs`: the unit of work, i.e. how one operation gets its transaction;
//! - `read.rs`: reads and [`ScopedSelect`];
//! - `shape.rs`: projections, aggregates, left joins, streams, keyset pages, eager loading;
//! - `write.rs`: writes;
//! - `guard.rs`: the write guard ("orgId" fill-in, foreign-key ownership checks);
//! - `copy.rs`: the COPY path for large batches.
//!
//! ## What an `Ok` from a transaction means
//!
//! PostgreSQL aborts a transaction at its first failed statement and turns the later COMMIT
//! into a ROLLBACK. A closure that ignores a failed statement and returns `Ok` would therefore
//! lose everything, silently. So a transaction remembers the first statement of it that failed;
//! when the closure then returns `Ok`, the transaction is rolled back and
//! [`Error::TransactionAborted`] names that statement. An `Ok` from
//! [`TenantScope::transaction`] means that everything the closure did without an error is
//! stored. A statement that may fail, and whose failure the closure wants to survive, runs in a
//! nested `transaction` (a savepoint). Savepoints around every statement were the alternative;
//! they cost two round trips per operation, for every caller (docs/DESIGN.md).

mod copy;
mod guard;
mod read;
mod shape;
mod unit;
mod write;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use flakeguard_entity::stamps::Stamped;
use flakeguard_entity::tenancy::TenantOwned;
use futures_util::future::BoxFuture;
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, DatabaseConnection, EntityName, IntoActiveModel,
};
use tracing::Instrument;

pub use copy::COPY_CHUNK_ROWS;
pub use read::{Page, ScopedSelect};
pub(crate) use read::{count_of, count_query};
pub use shape::{ScopedCursor, ScopedSelector};

use crate::error::{Context, Operation};
use crate::tx::{Pool, Tx};
use crate::{Error, OrgId, Result};

/// A row a scope can write: an active model of tenant data, with the ids and timestamps the
/// crate fills in ([`Stamped`]). Every active model of a tenant table is one; the trait only
/// names the bound once, so that signatures read short.
pub trait TenantRow:
    ActiveModelTrait<Entity: TenantOwned<Model: IntoActiveModel<Self> + Send + Sync>>
    + ActiveModelBehavior
    + Stamped
    + Send
    + Sync
    + 'static
{
}

impl<A> TenantRow for A where
    A: ActiveModelTrait<Entity: TenantOwned<Model: IntoActiveModel<A> + Send + Sync>>
        + ActiveModelBehavior
        + Stamped
        + Send
        + Sync
        + 'static
{
}

#[derive(Clone)]
enum Conn {
    Pool(Pool),
    Tx(Arc<TxShared>),
}

/// The open transaction of [`TenantScope::transaction`], shared by the scope it hands to the
/// closure and every clone of that scope.
pub(crate) struct TxShared {
    /// The transaction; taken out (`None`) when it ends, so that a clone that outlives it holds
    /// no connection and every use of it fails with [`Error::TransactionEnded`].
    tx: tokio::sync::Mutex<Option<Tx>>,
    /// The first statement of the transaction that failed (and so aborted it).
    failed: Mutex<Option<Context>>,
    /// Whether a nested transaction (a savepoint) of this one is open: this transaction's
    /// own statements would run inside it, and be rolled back with it, so they are refused
    /// until it ends ([`unit::nest`]).
    nested: AtomicBool,
    /// Whether a stream holds this transaction's connection: the transaction's other
    /// statements are refused until it ends, instead of waiting for it (from the task that
    /// holds the stream, forever).
    streaming: AtomicBool,
}

impl TxShared {
    fn new(tx: Tx) -> Self {
        TxShared {
            tx: tokio::sync::Mutex::new(Some(tx)),
            failed: Mutex::new(None),
            nested: AtomicBool::new(false),
            streaming: AtomicBool::new(false),
        }
    }

    /// Records that a statement of this transaction failed; the first one is kept.
    pub(crate) fn note_failure(&self, ctx: &Context) {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if failed.is_none() {
            *failed = Some(ctx.clone());
        }
    }

    fn first_failure(&self) -> Option<Context> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
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

impl TenantScope {
    /// A scope for `org` on the pool `db`.
    ///
    /// `db` should log in as a role subject to row-level security (a member of
    /// `flakeguard_app`), so that the database enforces the same boundary.
    pub fn new(db: DatabaseConnection, org: OrgId) -> Self {
        Self::on(Pool::new(db), org)
    }

    pub(crate) fn on(pool: Pool, org: OrgId) -> Self {
        TenantScope {
            conn: Conn::Pool(pool),
            org,
        }
    }

    /// The tenant this scope acts for.
    pub fn org_id(&self) -> &OrgId {
        &self.org
    }

    /// Whether this scope is bound to a transaction (inside [`TenantScope::transaction`]).
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

    /// Runs `f` atomically for this tenant: one transaction (a savepoint when already inside
    /// one), committed when `f` returns `Ok`, rolled back when it returns `Err` or is dropped.
    ///
    /// `f` gets a scope bound to the transaction, with every method of this one.
    ///
    /// An `Ok` means that everything `f` did without an error is stored. When a statement of
    /// the transaction failed (PostgreSQL then aborts the transaction) and `f` returned `Ok`
    /// anyway, having ignored the error, the transaction is rolled back and the result is
    /// [`Error::TransactionAborted`], naming the statement. To survive a statement that may
    /// fail, run it in a nested `transaction`: its failure rolls back only that savepoint, and
    /// the rest of the work commits. (`insert_many` and `insert_many_copy` take a savepoint of
    /// their own.)
    ///
    /// If a clone of the inner scope is still alive when `f` returns, the transaction is rolled
    /// back ([`Error::TransactionInUse`]); every later use of such a clone fails with
    /// [`Error::TransactionEnded`], and it holds no connection.
    ///
    /// While a nested transaction runs, the outer scope refuses its own statements, and a second
    /// nested transaction, with [`Error::InvalidInput`], sending nothing: on the one connection
    /// they would run inside the savepoint and be rolled back with it, after reporting success.
    /// Inside `f`, use the scope `f` receives.
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
        self.run_transaction(f, false).await
    }

    /// Runs `f`, a series of reads, in one read-only transaction of this tenant: every read of
    /// `f` sees the same snapshot, and the transaction ends with a rollback that is queued, not
    /// waited for (as a single read's does), so that several reads cost one round trip each
    /// and one for the BEGIN, with no COMMIT. A write inside `f` fails: PostgreSQL refuses it
    /// in a read-only transaction.
    ///
    /// Inside [`TenantScope::transaction`], `f` runs in that transaction, on this scope.
    ///
    /// ```no_run
    /// # use flakeguard_db::{TenantScope, Result};
    /// # async fn f(scope: TenantScope) -> Result<()> {
    /// use flakeguard_db::entity::{fg_occurrence, fg_test_case};
    /// use flakeguard_db::sea_orm::ColumnTrait;
    /// let (cases, failed) = scope
    ///     .read_only(|tx| {
    ///         Box::pin(async move {
    ///             let cases = tx.find::<fg_test_case::Entity>().count().await?;
    ///             let failed = tx
    ///                 .count::<fg_occurrence::Entity>(fg_occurrence::Column::Status.eq("failed"))
    ///                 .await?;
    ///             Ok::<_, flakeguard_db::Error>((cases, failed))
    ///         })
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn read_only<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send,
        E: From<Error> + Send,
        F: for<'a> FnOnce(&'a TenantScope) -> BoxFuture<'a, Result<T, E>> + Send,
    {
        match &self.conn {
            Conn::Tx(_) => f(self).await,
            Conn::Pool(_) => self.run_transaction(f, true).await,
        }
    }

    /// [`TenantScope::transaction`], read-only and ended by a queued rollback when
    /// `read_only` ([`TenantScope::read_only`]).
    async fn run_transaction<T, E, F>(&self, f: F, read_only: bool) -> Result<T, E>
    where
        T: Send,
        E: From<Error> + Send,
        F: for<'a> FnOnce(&'a TenantScope) -> BoxFuture<'a, Result<T, E>> + Send,
    {
        let ctx = self.ctx(Operation::Transaction, None);
        let span = tracing::info_span!(
            "flakeguard.transaction",
            tenant = self.org.as_str(),
            operation = "transaction",
            outcome = tracing::field::Empty,
        );
        let work = async {
            // Inside a transaction: a savepoint, and the outer scope refused until it ends.
            let (tx, _nesting) = match &self.conn {
                Conn::Tx(parent) => {
                    let (tx, nesting) = unit::nest(parent, &ctx).await?;
                    (tx, Some(nesting))
                }
                Conn::Pool(db) => (self.begin_as(db, &ctx, read_only).await?, None),
            };
            let shared = Arc::new(TxShared::new(tx));
            let inner = TenantScope {
                conn: Conn::Tx(Arc::clone(&shared)),
                org: self.org.clone(),
            };
            let result = f(&inner).await;
            drop(inner);
            let in_use = Arc::strong_count(&shared) > 1;
            // Ends the transaction for every clone of the inner scope.
            let taken = shared.tx.lock().await.take();
            let Some(tx) = taken else {
                return Err(Error::TransactionEnded { context: ctx }.into());
            };
            let failed = shared.first_failure();
            let outcome = match (&result, in_use, failed) {
                (_, true, _) => Err(Error::TransactionInUse {
                    context: ctx.clone(),
                }),
                (Ok(_), false, Some(failed)) => Err(Error::TransactionAborted {
                    context: ctx.clone(),
                    failed,
                }),
                (Ok(_), false, None) => Ok(()),
                (Err(_), false, _) => {
                    // The error from `f` is the one worth reporting; a failed rollback leaves
                    // the connection to the pool, which discards it.
                    let _ = tx.rollback().await;
                    return result;
                }
            };
            match outcome {
                // Nothing to commit: the rollback is queued on the connection.
                Ok(()) if read_only => {
                    drop(tx);
                    result
                }
                Ok(()) => {
                    let committed = self.commit(tx, &ctx).await;
                    if let (Err(_), Conn::Tx(parent)) = (&committed, &self.conn) {
                        // A failed RELEASE SAVEPOINT aborts the enclosing transaction too.
                        parent.note_failure(&ctx.with_operation(Operation::Commit));
                    }
                    committed?;
                    result
                }
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(e.into())
                }
            }
        };
        let result = work.instrument(span.clone()).await;
        span.record("outcome", if result.is_ok() { "ok" } else { "error" });
        result
    }

    /// Commits `tx`, in a `flakeguard.commit` span.
    pub(crate) async fn commit(&self, tx: Tx, ctx: &Context) -> Result<()> {
        let span = tracing::debug_span!(
            "flakeguard.commit",
            tenant = self.org.as_str(),
            outcome = tracing::field::Empty,
        );
        let committed = tx
            .commit()
            .instrument(span.clone())
            .await
            .map_err(|e| Error::from_db(ctx.with_operation(Operation::Commit), e));
        span.record(
            "outcome",
            match &committed {
                Ok(()) => "ok",
                Err(e) => e.kind_name(),
            },
        );
        committed
    }
}
