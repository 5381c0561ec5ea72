//! The unit of work: how one operation of a scope gets its transaction, and how its outcome is
//! traced and recorded.

use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::DbErr;
use tokio::sync::{MappedMutexGuard, MutexGuard};
use tracing::Instrument;

use super::guard::FkCheck;
use super::{Conn, TenantScope, TxShared};
use crate::error::{Context, Operation};
use crate::tx::{Pool, Tx, tenant_begin_read_only_sql, tenant_begin_sql};
use crate::{Error, Result};

/// The transaction one operation of a scope runs in.
pub(crate) enum Unit<'a> {
    /// The scope's open transaction, finished by whoever opened it. Held for the operation, so
    /// that the transaction cannot end under it.
    Shared {
        tx: MappedMutexGuard<'a, Tx>,
        shared: &'a TxShared,
    },
    /// A savepoint inside the scope's open transaction, for an operation of several statements
    /// that must leave nothing behind when one fails.
    Savepoint {
        _parent: MappedMutexGuard<'a, Tx>,
        tx: Tx,
    },
    /// A transaction of this operation's own.
    Own(Tx),
    /// A read-only transaction of this operation's own: it has nothing to commit, so it ends
    /// with a rollback that is queued, not waited for (see [`TenantScope::unit`]).
    Read(Tx),
}

/// Whether a driver error means the statement reached the server and failed there (or the
/// connection broke), which aborts the enclosing transaction. Errors made after a statement
/// succeeded (no row returned, a value that does not decode) leave it intact.
fn aborts_transaction(err: &DbErr) -> bool {
    matches!(
        err,
        DbErr::Exec(_) | DbErr::Query(_) | DbErr::Conn(_) | DbErr::ConnectionAcquire(_)
    )
}

/// The open transaction of `shared`, locked for one operation; [`Error::TransactionEnded`]
/// when it has ended.
pub(crate) async fn lock<'a>(
    shared: &'a TxShared,
    ctx: &Context,
) -> Result<MappedMutexGuard<'a, Tx>> {
    // A stream holds the lock for as long as it lives: waiting for it from the task that holds
    // the stream would wait forever.
    if shared.streaming.load(Ordering::Acquire) {
        return Err(busy(ctx, STREAM_OPEN));
    }
    let guard = acquire(shared, ctx).await?;
    if shared.nested.load(Ordering::Acquire) {
        return Err(busy(ctx, NESTED_OPEN));
    }
    Ok(guard)
}

/// The open transaction of `shared`, locked; [`Error::TransactionEnded`] when it has ended.
async fn acquire<'a>(shared: &'a TxShared, ctx: &Context) -> Result<MappedMutexGuard<'a, Tx>> {
    MutexGuard::try_map(shared.tx.lock().await, |tx| tx.as_mut()).map_err(|_| {
        Error::TransactionEnded {
            context: ctx.clone(),
        }
    })
}

const NESTED_OPEN: &str = "a nested transaction of this transaction is open, and this \
                           statement would run inside it: run it through the scope the nested \
                           transaction gives its closure, or after the nested transaction ends";
const STREAM_OPEN: &str = "a stream of this transaction is open and holds its connection: \
                           drain or drop the stream first";

fn busy(ctx: &Context, why: &str) -> Error {
    Error::InvalidInput {
        context: ctx.clone(),
        reason: format!("{why}; nothing was sent"),
    }
}

/// A mark on the open transaction (a nested transaction or a stream holds it), set while the
/// value lives (see [`TxShared::nested`] and [`TxShared::streaming`]).
pub(crate) struct Mark<'a>(&'a AtomicBool);

impl Drop for Mark<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// A nested transaction of the open transaction of `shared`: a savepoint, with the outer
/// transaction's own statements refused until the returned [`Mark`] is dropped. Taken under
/// the transaction's lock, so no statement of it slips in between.
pub(crate) async fn nest<'a>(shared: &'a TxShared, ctx: &Context) -> Result<(Tx, Mark<'a>)> {
    if shared.streaming.load(Ordering::Acquire) {
        return Err(busy(ctx, STREAM_OPEN));
    }
    let (parent, tx) = savepoint(shared, ctx).await?;
    shared.nested.store(true, Ordering::Release);
    drop(parent);
    Ok((tx, Mark(&shared.nested)))
}

/// A savepoint in the open transaction of `shared`, with that transaction locked; a failure to
/// take it aborts the transaction and is recorded as such.
pub(crate) async fn savepoint<'a>(
    shared: &'a TxShared,
    ctx: &Context,
) -> Result<(MappedMutexGuard<'a, Tx>, Tx)> {
    let parent = lock(shared, ctx).await?;
    let tx = parent.savepoint().await.map_err(|e| {
        let begin = ctx.with_operation(Operation::Begin);
        shared.note_failure(&begin);
        Error::from_db(begin, e)
    })?;
    Ok((parent, tx))
}

impl Unit<'_> {
    pub(crate) fn conn(&self) -> &Tx {
        match self {
            Unit::Shared { tx, .. } => tx,
            Unit::Savepoint { tx, .. } | Unit::Own(tx) | Unit::Read(tx) => tx,
        }
    }

    /// Maps the outcome of a statement of this unit, recording a failure that aborted the
    /// scope's open transaction (see [`TenantScope::transaction`]).
    ///
    /// On the pipelined driver the BEGIN and the COMMIT travel with a statement; a failure of
    /// either is reported as that step's ([`Operation::Begin`], [`Operation::Commit`]).
    pub(crate) fn check<T>(&self, ctx: &Context, result: Result<T, DbErr>) -> Result<T> {
        result.map_err(|e| {
            let ctx = match self.conn().take_failed_step() {
                Some(step) => ctx.with_operation(step),
                None => ctx.clone(),
            };
            if let Unit::Shared { shared, .. } = self
                && aborts_transaction(&e)
            {
                shared.note_failure(&ctx);
            }
            Error::from_db(ctx, e)
        })
    }

    /// For an operation of one statement, on a transaction of its own: the transaction ends
    /// with the statement, its COMMIT (a read's ROLLBACK) sent right behind it on the pipelined
    /// driver. What runs after it (naming a refused foreign key) reads in a read-only
    /// transaction of its own.
    async fn end_with_statement(&self, scope: &TenantScope) {
        let (Unit::Own(tx) | Unit::Read(tx)) = self else {
            return;
        };
        let commit = matches!(self, Unit::Own(_));
        tx.end_with_next(commit, Some(tenant_begin_read_only_sql(&scope.org)))
            .await;
    }

    /// Commits a transaction (or savepoint) of the operation's own; nothing for a shared one;
    /// for a read, the rollback is queued on the connection (dropping the transaction).
    pub(crate) async fn finish(self, scope: &TenantScope, ctx: &Context) -> Result<()> {
        match self {
            Unit::Shared { .. } => Ok(()),
            Unit::Read(tx) => {
                drop(tx);
                Ok(())
            }
            Unit::Own(tx) => scope.commit(tx, ctx).await,
            Unit::Savepoint { tx, _parent } => scope.commit(tx, ctx).await,
        }
    }
}

impl TenantScope {
    /// This scope's transaction for one operation: the open one, or a new one bound to the
    /// tenant, committed by [`Unit::finish`] and rolled back if dropped unfinished.
    ///
    /// A read ([`Operation::Find`], [`Operation::Count`]) on the pool does not wait for a
    /// COMMIT: its transaction wrote nothing, so it ends with a ROLLBACK. Pipelined, the
    /// ROLLBACK travels right behind the read's statement ([`Unit::end_with_statement`]); on
    /// sqlx the driver queues it on the connection and sends, and waits for, it when the
    /// connection goes back to the pool (sqlx tests a returned connection with a ping, which
    /// flushes it) or at the latest before the connection's next statement. The tenant setting
    /// is transaction-local either way, so nothing of it outlives the read.
    pub(crate) async fn unit(&self, ctx: &Context) -> Result<Unit<'_>> {
        Ok(match &self.conn {
            Conn::Tx(shared) => Unit::Shared {
                tx: lock(shared, ctx).await?,
                shared,
            },
            Conn::Pool(db) if ctx.operation.reads_only() => Unit::Read(self.begin(db, ctx).await?),
            Conn::Pool(db) => Unit::Own(self.begin(db, ctx).await?),
        })
    }

    /// The unit of a stream: [`TenantScope::unit`], and inside a transaction a [`Mark`] that
    /// makes the transaction's other statements fail instead of waiting for the stream.
    pub(crate) async fn stream_unit(&self, ctx: &Context) -> Result<(Unit<'_>, Option<Mark<'_>>)> {
        let shared = match &self.conn {
            Conn::Tx(shared) => shared,
            // A stream's transaction of its own runs on sqlx: its rows decode in place, where
            // the pipelined driver copies each into a map first, and a long result gains
            // nothing from a BEGIN that travels with it.
            Conn::Pool(db) => {
                let span = tracing::debug_span!("flakeguard.begin", tenant = self.org.as_str());
                let tx = db
                    .begin_on_sqlx(Some(&tenant_begin_sql(&self.org)))
                    .instrument(span)
                    .await
                    .map_err(|e| Error::from_db(ctx.with_operation(Operation::Begin), e))?;
                return Ok((Unit::Read(tx), None));
            }
        };
        if shared.nested.load(Ordering::Acquire) {
            return Err(busy(ctx, NESTED_OPEN));
        }
        if shared.streaming.swap(true, Ordering::AcqRel) {
            return Err(busy(ctx, STREAM_OPEN));
        }
        let mark = Mark(&shared.streaming);
        let tx = acquire(shared, ctx).await?;
        Ok((Unit::Shared { tx, shared }, Some(mark)))
    }

    /// Like [`TenantScope::unit`], for a write of several statements: inside an open
    /// transaction it takes a savepoint, so that a failure leaves nothing behind either way.
    pub(crate) async fn atomic_unit(&self, ctx: &Context) -> Result<Unit<'_>> {
        Ok(match &self.conn {
            Conn::Tx(shared) => {
                let (parent, tx) = savepoint(shared, ctx).await?;
                Unit::Savepoint {
                    _parent: parent,
                    tx,
                }
            }
            Conn::Pool(db) => Unit::Own(self.begin(db, ctx).await?),
        })
    }

    /// Opens a transaction on `db` bound to the tenant ([`tenant_begin_sql`]: one round trip on
    /// sqlx, none yet when pipelined, where it leaves with the first statement), in a
    /// `flakeguard.begin` span.
    pub(crate) async fn begin(&self, db: &Pool, ctx: &Context) -> Result<Tx> {
        self.begin_as(db, ctx, false).await
    }

    /// [`TenantScope::begin`], read-only with one snapshot when `read_only`.
    pub(crate) async fn begin_as(&self, db: &Pool, ctx: &Context, read_only: bool) -> Result<Tx> {
        let span = tracing::debug_span!("flakeguard.begin", tenant = self.org.as_str());
        let sql = if read_only {
            tenant_begin_read_only_sql(&self.org)
        } else {
            tenant_begin_sql(&self.org)
        };
        db.begin(Some(&sql))
            .instrument(span)
            .await
            .map_err(|e| Error::from_db(ctx.with_operation(Operation::Begin), e))
    }

    /// Runs one statement, `f`, as a unit of work of this scope: in its transaction (see
    /// [`TenantScope::unit`]), with driver errors mapped to `ctx`, in a `flakeguard.operation`
    /// span that records `rows(&result)`.
    ///
    /// The foreign-key checks `before` run first, in a round trip of their own. The checks
    /// `folded` are carried by `f`'s statement itself ([`TenantScope::owned`]); when it then
    /// changed nothing (SeaORM's `RecordNotInserted`, `RecordNotUpdated` or `RecordNotFound`), and a check may be
    /// why, [`TenantScope::verify_fks`] runs then (one more round trip, on this path only) to
    /// name the foreign key that failed; when every reference is this tenant's after all, the
    /// statement changed nothing for another reason and its own error stands.
    pub(crate) async fn statement<T, F>(
        &self,
        ctx: &Context,
        before: &[FkCheck],
        folded: &[FkCheck],
        rows: fn(&T) -> u64,
        f: F,
    ) -> Result<T>
    where
        F: for<'c> FnOnce(&'c Tx) -> futures_util::future::BoxFuture<'c, Result<T, DbErr>>,
    {
        crate::trace::operation(ctx, rows, async {
            let unit = self.unit(ctx).await?;
            if before.is_empty() {
                unit.end_with_statement(self).await;
            } else {
                self.verify_fks(&unit, ctx, before).await?;
            }
            let out = match f(unit.conn()).await {
                Err(
                    e @ (DbErr::RecordNotInserted
                    | DbErr::RecordNotUpdated
                    | DbErr::RecordNotFound(_)),
                ) if !folded.is_empty() => {
                    self.verify_fks(&unit, ctx, folded).await?;
                    Err(e)
                }
                out => out,
            };
            let out = unit.check(ctx, out)?;
            unit.finish(self, ctx).await?;
            Ok(out)
        })
        .await
    }
}
