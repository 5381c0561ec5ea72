//! [`Tx`]: a transaction of the crate's own on a pooled connection, on which the statements
//! SeaORM builds run, through SeaORM's public [`ConnectionTrait`].
//!
//! # Design
//!
//! SeaORM's `DatabaseTransaction` always opens with a bare `BEGIN`, so binding it to a tenant
//! costs a second round trip before the first statement. sqlx opens a transaction with a
//! statement of the caller's choosing, sent as one simple-protocol query, and checks that a
//! transaction is open afterwards: `BEGIN; SET LOCAL app.current_tenant_id = '…'` is one round
//! trip ([`tenant_begin_sql`]). So the crate takes the connection from the pool itself, opens
//! the transaction with sqlx's transaction manager, and runs SeaORM's statements on it with
//! SeaORM's own conversions (`From<PgRow> for QueryResult`, `From<PgQueryResult> for
//! ExecResult`) and sea-query's own binding of values (`SqlxValues`). Errors are wrapped as
//! SeaORM wraps them (`DbErr::Exec`, `DbErr::Query`, `DbErr::Conn`), so [`Error::from_db`]
//! maps them as before.
//!
//! A savepoint is a second [`Tx`] on the same connection (sqlx keeps the depth); dropping a
//! [`Tx`] that was neither committed nor rolled back queues its rollback on the connection,
//! which sqlx sends when the connection goes back to the pool (its release ping flushes it) and
//! at the latest before the connection's next statement. That is also how a read ends: it wrote
//! nothing, so it does not wait for a COMMIT.
//!
//! Where the pool has a pipelined companion (src/pipe.rs), a [`Tx`] runs there instead, with the
//! same interface: its BEGIN is sent with its first statement, and an operation of one
//! statement has its COMMIT sent with it too ([`Tx::end_with_next`]). The sqlx side below
//! serves pools that cannot be pipelined (TLS required, no statement cache) and
//! [`Db::without_pipelining`](crate::Db::without_pipelining).
//!
//! The pool does not ping a connection on every acquire (sqlx's default, one more round trip
//! per operation): [`connect_options`](crate::connect_options) pings only connections that have
//! been idle for [`PING_AFTER_IDLE`](crate::PING_AFTER_IDLE). A connection that broke while it
//! sat in the pool (a server restart) is found by the BEGIN instead; nothing has happened on it
//! yet, so [`Pool::begin`] discards it and begins once more on another connection.
//!
//! [`Error::from_db`]: crate::Error

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::postgres::{PgPool, PgTransactionManager};
use sea_orm::sqlx::{self, AssertSqlSafe, Executor as _, Postgres, SqlSafeStr as _};
use sea_orm::{
    ConnAcquireErr, ConnectionTrait, DatabaseConnection, DatabaseConnectionType, DbBackend, DbErr,
    ExecResult, QueryResult, RuntimeErr, Statement,
};
use sea_query_sqlx::SqlxValues;
// sqlx re-exports the transaction manager's implementations, not the trait they implement.
use sqlx_core::transaction::TransactionManager as _;

use crate::OrgId;
use crate::pipe::{self, PipePool};

/// The simple query that opens a transaction bound to `org`: `BEGIN` and `SET LOCAL
/// app.current_tenant_id`, sent together in one round trip.
///
/// The id is written as a quoted literal. [`OrgId`]'s alphabet (`[A-Za-z0-9_-]`) cannot close
/// it; quotes are doubled all the same, so the statement stays one literal whatever an id
/// holds. `SET LOCAL`, not `set_config`: its setting ends with the transaction, and Citus
/// carries `SET LOCAL` (and only that) to its workers.
pub fn tenant_begin_sql(org: &OrgId) -> String {
    begin_sql("BEGIN", org)
}

/// [`tenant_begin_sql`] for a read-only transaction with one snapshot for all its statements
/// (`REPEATABLE READ`; a read-only transaction at that level never fails to serialize).
pub(crate) fn tenant_begin_read_only_sql(org: &OrgId) -> String {
    begin_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", org)
}

fn begin_sql(begin: &str, org: &OrgId) -> String {
    format!(
        "{begin}; SET LOCAL app.current_tenant_id = '{}'",
        org.as_str().replace('\'', "''")
    )
}

pub(crate) fn exec_err(e: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e)))
}

fn query_err(e: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(e)))
}

fn conn_err(e: sqlx::Error) -> DbErr {
    match e {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        e => DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))),
    }
}

/// Whether `e` says the connection itself is unusable (as opposed to a statement's failure).
fn broken(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_)
    ) || matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")))
}

/// A handle's pool: SeaORM's connection (for [`Db::unscoped_connection`] and callers' own
/// SeaORM code), the sqlx pool underneath, and the pipelined pool that accompanies it
/// (src/pipe.rs), on which the crate opens its transactions when it has one.
///
/// [`Db::unscoped_connection`]: crate::Db::unscoped_connection
#[derive(Clone, Debug)]
pub(crate) struct Pool {
    orm: DatabaseConnection,
    /// `None` when `orm` is not a sqlx PostgreSQL pool (a mock or a proxy connection).
    pg: Option<PgPool>,
    /// `None` where pipelining cannot serve the sqlx pool's connections ([`PipePool::shared`]).
    pipe: Option<Arc<PipePool>>,
}

impl Pool {
    pub(crate) fn new(orm: DatabaseConnection) -> Self {
        let pg = match &orm.inner {
            DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
                Some(orm.get_postgres_connection_pool().clone())
            }
            _ => None,
        };
        let pipe = pg.as_ref().and_then(PipePool::shared);
        Pool { orm, pg, pipe }
    }

    /// The same pool without pipelining: every transaction on sqlx.
    pub(crate) fn without_pipelining(mut self) -> Self {
        self.pipe = None;
        self
    }

    pub(crate) fn pipelined(&self) -> bool {
        self.pipe.is_some()
    }

    pub(crate) fn orm(&self) -> &DatabaseConnection {
        &self.orm
    }

    /// Closes the pipelined pool (the caller closes SeaORM's).
    pub(crate) fn close_pipe(&self) {
        if let Some(pipe) = &self.pipe {
            pipe.close();
        }
    }

    /// Opens a transaction with `begin` (a bare `BEGIN` when `None`). On the pipelined pool
    /// nothing is sent yet: the BEGIN travels with the first statement. On sqlx, the BEGIN is
    /// sent now, retried once on another connection when the first one turns out to be broken.
    pub(crate) async fn begin(&self, begin: Option<&str>) -> Result<Tx, DbErr> {
        if let Some(pipe) = &self.pipe {
            let conn = pipe.begin(begin.unwrap_or("BEGIN")).await?;
            return Ok(Tx {
                inner: Inner::Pipe {
                    conn: Arc::new(tokio::sync::Mutex::new(conn)),
                    level: 1,
                    step: Arc::default(),
                },
                open: true,
                by_name: AtomicBool::new(false),
            });
        }
        // Boxed: sqlx's acquire and BEGIN make a future of about 9 KB, which would otherwise
        // sit inside every operation's future (pipelined ones too) and be copied each time
        // one is moved, several times an operation.
        Box::pin(self.begin_on_sqlx(begin)).await
    }

    /// [`Pool::begin`] on sqlx whatever the pool, for a transaction that pipelining would not
    /// speed up (a stream's).
    pub(crate) async fn begin_on_sqlx(&self, begin: Option<&str>) -> Result<Tx, DbErr> {
        let pool = self.pg.as_ref().ok_or_else(|| {
            DbErr::Conn(RuntimeErr::Internal(
                "flakeguard-db runs on a sqlx PostgreSQL pool; this connection is another kind"
                    .to_owned(),
            ))
        })?;
        match Self::begin_on(pool, begin).await {
            Err((_, true)) => Self::begin_on(pool, begin).await.map_err(|(e, _)| e),
            Err((e, false)) => Err(e),
            Ok(tx) => Ok(tx),
        }
    }

    /// One attempt of [`Pool::begin`] on sqlx; the flag says whether a retry may help (the
    /// connection was broken before anything happened on it).
    async fn begin_on(pool: &PgPool, begin: Option<&str>) -> Result<Tx, (DbErr, bool)> {
        let mut conn = pool.acquire().await.map_err(|e| (conn_err(e), false))?;
        if PgTransactionManager::get_transaction_depth(&conn) > 0 {
            // A transaction left open on it (its rollback could not be queued): never reuse
            // such a connection, whatever it still holds.
            conn.close_on_drop();
            return Err((
                DbErr::Conn(RuntimeErr::Internal(
                    "a pooled connection still had a transaction open".to_owned(),
                )),
                true,
            ));
        }
        let sql = begin.map(|s| AssertSqlSafe(s.to_owned()).into_sql_str());
        match PgTransactionManager::begin(&mut conn, sql).await {
            Ok(()) => Ok(Tx {
                inner: Inner::Sqlx(Arc::new(tokio::sync::Mutex::new(conn))),
                open: true,
                by_name: AtomicBool::new(false),
            }),
            Err(e) => {
                // Whatever failed, the connection may hold half a transaction (BEGIN done, the
                // setting refused): it is closed, never handed out again.
                conn.close_on_drop();
                let retry = broken(&e);
                Err((conn_err(e), retry))
            }
        }
    }
}

/// A transaction (or a savepoint in one) on a connection the crate holds; see the module's
/// design notes. Rolled back when dropped unfinished.
pub(crate) struct Tx {
    inner: Inner,
    /// Neither committed nor rolled back yet.
    open: bool,
    /// The next statement's rows are read by name only ([`Tx::rows_by_name`]).
    by_name: AtomicBool,
}

enum Inner {
    Sqlx(Arc<tokio::sync::Mutex<PoolConnection<Postgres>>>),
    Pipe {
        conn: Arc<tokio::sync::Mutex<pipe::Conn>>,
        /// 1 for the transaction, more for a savepoint in it.
        level: u32,
        /// The step (begin, commit) of the last failure that was not the statement's own.
        step: Arc<pipe::Step>,
    },
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("open", &self.open)
            .field("pipelined", &matches!(self.inner, Inner::Pipe { .. }))
            .finish()
    }
}

impl Tx {
    /// A savepoint in this transaction, as a transaction of its own (pipelined: queued, sent
    /// with its first statement).
    pub(crate) async fn savepoint(&self) -> Result<Tx, DbErr> {
        match &self.inner {
            Inner::Sqlx(conn) => {
                let mut c = conn.lock().await;
                PgTransactionManager::begin(&mut c, None)
                    .await
                    .map_err(exec_err)?;
                Ok(Tx {
                    inner: Inner::Sqlx(Arc::clone(conn)),
                    open: true,
                    by_name: AtomicBool::new(false),
                })
            }
            Inner::Pipe { conn, step, .. } => {
                let level = conn.lock().await.savepoint();
                Ok(Tx {
                    inner: Inner::Pipe {
                        conn: Arc::clone(conn),
                        level,
                        step: Arc::clone(step),
                    },
                    open: true,
                    by_name: AtomicBool::new(false),
                })
            }
        }
    }

    /// The rows of the next statement are read by name only (an entity's model, a count):
    /// on the pipelined driver they are decoded without the position keys that a reader by
    /// position needs (src/pipe.rs), which costs a copy of every value. Without this call rows
    /// can be read either way.
    pub(crate) fn rows_by_name(&self) -> &Self {
        self.by_name.store(true, Ordering::Release);
        self
    }

    /// Whether rows may be read by position (the flag of [`Tx::rows_by_name`], taken).
    fn positions(&self) -> bool {
        !self.by_name.swap(false, Ordering::AcqRel)
    }

    /// Whether the database runs Citus, where the connection's pool knows it without asking
    /// (a pipelined pool learns it with each new connection); `None` on sqlx, or while the
    /// connection is busy (its next statement would be refused anyway).
    pub(crate) fn known_citus(&self) -> Option<bool> {
        match &self.inner {
            Inner::Pipe { conn, .. } => conn.try_lock().ok()?.citus(),
            Inner::Sqlx(_) => None,
        }
    }

    /// Commits (or releases the savepoint).
    pub(crate) async fn commit(self) -> Result<(), DbErr> {
        self.end(true).await
    }

    /// Rolls back (to the savepoint), waiting for the server's answer.
    pub(crate) async fn rollback(self) -> Result<(), DbErr> {
        self.end(false).await
    }

    /// Commits or rolls back. A failure leaves the Tx open, so that dropping it queues the
    /// rollback.
    async fn end(mut self, commit: bool) -> Result<(), DbErr> {
        match &self.inner {
            Inner::Sqlx(conn) => {
                let mut conn = conn.lock().await;
                if commit {
                    PgTransactionManager::commit(&mut conn).await
                } else {
                    PgTransactionManager::rollback(&mut conn).await
                }
                .map_err(exec_err)?;
            }
            Inner::Pipe { conn, level, .. } => {
                conn.lock().await.end(*level, commit).await?;
            }
        }
        self.open = false;
        Ok(())
    }

    /// Ends the transaction together with its next statement (pipelined only; on sqlx a
    /// no-op, the caller ends it as usual): COMMIT, or ROLLBACK for a read, sent right behind
    /// the statement. A statement after that one runs in a transaction of its own, opened by
    /// `then` (a read-only BEGIN, so that no write can slip out of the operation's
    /// transaction unnoticed). Only for the transaction itself, not a savepoint.
    pub(crate) async fn end_with_next(&self, commit: bool, then: Option<String>) {
        if let Inner::Pipe { conn, level: 1, .. } = &self.inner {
            conn.lock().await.end_with_next(commit, then);
        }
    }

    /// The step (begin, commit) of the last failure, when it was not the statement itself
    /// (pipelined: the BEGIN and the COMMIT travel with a statement and fail with it).
    pub(crate) fn take_failed_step(&self) -> Option<crate::error::Operation> {
        match &self.inner {
            Inner::Sqlx(_) => None,
            Inner::Pipe { step, .. } => step.take(),
        }
    }

    /// `COPY ... FROM STDIN` of `data` (COPY text format); the rows copied.
    pub(crate) async fn copy_in(&self, sql: &str, data: String) -> Result<u64, DbErr> {
        match &self.inner {
            Inner::Sqlx(conn) => {
                let mut conn = conn.lock().await;
                let copy = async {
                    let mut copy = conn.copy_in_raw(sql).await?;
                    copy.send(data.as_bytes()).await?;
                    copy.finish().await
                };
                copy.await.map_err(exec_err)
            }
            Inner::Pipe { conn, step, .. } => {
                let out = conn.lock().await.copy_in(sql, data.into()).await;
                self.noted(step, out)
            }
        }
    }

    /// A pipelined outcome, with the step of its failure noted for [`Tx::take_failed_step`].
    fn noted<T>(
        &self,
        step: &pipe::Step,
        out: Result<T, (DbErr, Option<crate::error::Operation>)>,
    ) -> Result<T, DbErr> {
        out.map_err(|(e, op)| {
            step.set(op);
            e
        })
    }

    async fn pipe_run(&self, req: pipe::Request<'_>) -> Result<pipe::Answer, DbErr> {
        let Inner::Pipe { conn, step, .. } = &self.inner else {
            return Err(DbErr::Conn(RuntimeErr::Internal(
                "not a pipelined transaction".to_owned(),
            )));
        };
        let out = conn.lock().await.run(req).await;
        self.noted(step, out)
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        // The lock is free: a statement holds it only inside a future that borrows this Tx.
        match &self.inner {
            Inner::Sqlx(conn) => {
                if let Ok(mut conn) = conn.try_lock() {
                    PgTransactionManager::start_rollback(&mut conn);
                }
            }
            Inner::Pipe { conn, level, .. } => {
                if let Ok(mut conn) = conn.try_lock() {
                    conn.abandon(*level);
                }
            }
        }
    }
}

impl Tx {
    /// The rows of `stmt` as the server sends them (the connection is held until the stream
    /// ends or is dropped; a dropped stream leaves the rest of the result to the driver, which
    /// discards it before the connection's next statement).
    pub(crate) fn stream_raw<'a>(
        &'a self,
        stmt: &'a Statement,
    ) -> futures_util::stream::BoxStream<'a, Result<QueryResult, DbErr>> {
        match &self.inner {
            Inner::Sqlx(conn) => Box::pin(async_stream::try_stream! {
                let mut conn = conn.lock().await;
                let mut rows = query(stmt).fetch(&mut **conn);
                while let Some(row) = futures_util::TryStreamExt::try_next(&mut rows)
                    .await
                    .map_err(query_err)?
                {
                    yield QueryResult::from(row);
                }
            }),
            Inner::Pipe { conn, .. } => Box::pin(async_stream::try_stream! {
                let positions = self.positions();
                let mut conn = conn.lock().await;
                let mut rows = conn.stream(stmt, positions);
                while let Some(row) = futures_util::TryStreamExt::try_next(&mut rows).await? {
                    yield row;
                }
            }),
        }
    }
}

fn query(stmt: &Statement) -> sqlx::query::Query<'_, Postgres, SqlxValues> {
    let values = stmt
        .values
        .clone()
        .unwrap_or_else(|| sea_orm::Values(Vec::new()));
    sqlx::query_with(AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values))
}

fn rows(answer: pipe::Answer, positions: bool) -> Result<Vec<QueryResult>, DbErr> {
    match answer {
        pipe::Answer::Rows(rows) => pipe::results(&rows, positions),
        pipe::Answer::Count(_) => Ok(Vec::new()),
    }
}

fn count(answer: pipe::Answer) -> ExecResult {
    match answer {
        pipe::Answer::Rows(rows) => pipe::exec_result(rows.len() as u64),
        pipe::Answer::Count(n) => pipe::exec_result(n),
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Tx {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let Inner::Sqlx(conn) = &self.inner else {
            return self.pipe_run(pipe::Request::Exec(&stmt)).await.map(count);
        };
        let mut conn = conn.lock().await;
        query(&stmt)
            .execute(&mut **conn)
            .await
            .map(Into::into)
            .map_err(exec_err)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let Inner::Sqlx(conn) = &self.inner else {
            return self.pipe_run(pipe::Request::Simple(sql)).await.map(count);
        };
        let mut conn = conn.lock().await;
        conn.execute(AssertSqlSafe(sql.to_owned()))
            .await
            .map(Into::into)
            .map_err(exec_err)
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let positions = self.positions();
        let Inner::Sqlx(conn) = &self.inner else {
            let answer = self.pipe_run(pipe::Request::Rows(&stmt)).await?;
            return Ok(rows(answer, positions)?.into_iter().next());
        };
        let mut conn = conn.lock().await;
        query(&stmt)
            .fetch_optional(&mut **conn)
            .await
            .map(|row| row.map(Into::into))
            .map_err(query_err)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let positions = self.positions();
        let Inner::Sqlx(conn) = &self.inner else {
            let answer = self.pipe_run(pipe::Request::Rows(&stmt)).await?;
            return rows(answer, positions);
        };
        let mut conn = conn.lock().await;
        query(&stmt)
            .fetch_all(&mut **conn)
            .await
            .map(|rows| rows.into_iter().map(Into::into).collect())
            .map_err(query_err)
    }
}
