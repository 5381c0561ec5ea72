//! The pipelined driver: a tenant transaction whose BEGIN (with the tenant), first statement
//! and, for a single-statement operation, COMMIT or ROLLBACK reach the server together, in one
//! round trip.
//!
//! # Design
//!
//! sqlx waits for the answer to each request before it sends the next (sqlx#408), so with it a
//! transaction costs a round trip for its BEGIN however the BEGIN is worded. tokio-postgres
//! sends every request as soon as its future is first polled and matches the answers in
//! order, so requests polled together travel together. A [`Conn`] therefore opens its
//! transaction lazily: the BEGIN is queued and sent in front of the first statement, and an
//! operation that knows its statement is its last ([`Conn::end_with_next`]) has the COMMIT (or,
//! for a read, the ROLLBACK) sent right behind it. PostgreSQL runs the three in order; when the
//! statement fails, the transaction is aborted and the COMMIT behind it rolls back. Savepoints
//! are queued the same way: a nested transaction whose statements never ran costs nothing.
//!
//! SeaORM's statements run on it unchanged: values are bound with the types sqlx would declare
//! for them ([`param_type`]; sea-query-postgres declares a few differently, for example a UTC
//! timestamp as `timestamp`, which would change what a statement means, so the binding is
//! written here), and rows are decoded into SeaORM's own proxy row, the one `QueryResult` a
//! driver other than sqlx can fill, with the value types SeaORM's readers expect for the
//! column's type ([`decode`]). A proxy row keeps its values in a map by name and reads by
//! position in the map's order, so a row whose column names are not in order also carries its
//! values under position keys that sort first (`"\0" + index`): a model (by name) and a tuple
//! (by position) both read what sqlx would give them (of two columns of one name, the name
//! holds the last, as in sqlx). That costs a copy of every value, so the crate's own reads of
//! entity models, which read by name, ask for rows without them (`Tx::rows_by_name`). Which key
//! holds which column is worked out once per statement ([`Layout`]), not per row. Errors from
//! the server keep their SQLSTATE, table and constraint ([`PipeDbError`], a sqlx
//! `DatabaseError`), so `Error::from_db` maps them as it maps sqlx's.
//!
//! The pool is deadpool-postgres's, sized and timed as the sqlx pool it accompanies, with one
//! pipelined pool per sqlx pool (shared by every handle made on it, and kept for a minute after
//! the last, so that scopes made per request share it). It pings a
//! connection only when it has sat idle for [`PING_AFTER_IDLE`], as the crate's sqlx options
//! do; a connection the server closed meanwhile is found closed and replaced, and a read that
//! finds its connection broken on its first trip is retried once on another (a write is not:
//! its COMMIT travelled with it, and whether it ran is unknown). A connection is never handed
//! out again with a transaction open: a [`Conn`] dropped inside one queues its ROLLBACK ahead
//! of whatever the connection's next user sends (as sqlx queues its own), and one dropped with
//! requests in flight, or whose state is unknown (a request failed half-way), is closed.
//!
//! Not pipelined: a pool whose sqlx options require TLS (this driver connects without it) or
//! turn sqlx's statement cache off (behind a PgBouncer without prepared statements; this
//! driver prepares named statements). There the crate's transactions run on sqlx.
//!
//! [`PING_AFTER_IDLE`]: crate::PING_AFTER_IDLE

use std::collections::BTreeMap;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Object, PoolError, RecyclingMethod, Runtime,
};
use futures_util::{SinkExt as _, TryStreamExt as _, future};
use sea_orm::sea_query::{ArrayType, OptionEnum};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgPool, PgSslMode};
use sea_orm::sqlx::{self, ConnectOptions as _};
use sea_orm::{
    ConnAcquireErr, DbErr, ExecResult, ProxyExecResult, ProxyRow, QueryResult, RuntimeErr,
    Statement, Value,
};
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};
use tokio_postgres::{NoTls, Row, SimpleQueryMessage};

use crate::error::Operation;

/// The pipelined pool that accompanies a sqlx pool; see the module's design notes.
pub(crate) struct PipePool {
    pool: deadpool_postgres::Pool,
    /// Whether the database runs Citus ([`Citus`]), found by every new connection.
    citus: Arc<AtomicU8>,
}

/// Whether the database runs Citus (its extension is installed there): one boolean column,
/// `citus`.
pub(crate) const CITUS_SQL: &str =
    "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS citus";

/// What a pipelined pool knows of Citus in its database, kept in [`PipePool::citus`]: the
/// tenant BEGIN goes as one simple query (`BEGIN ...; SET LOCAL ...`, one request and one
/// answer) but on Citus, whose workers warn of "a transaction already in progress" for every
/// transaction begun so, and where it is not known yet.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Citus {
    Unknown = 0,
    No = 1,
    Yes = 2,
}

impl std::fmt::Debug for PipePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipePool")
            .field("status", &self.pool.status())
            .finish()
    }
}

/// A pipelined pool, registered for the sqlx pool it accompanies.
struct Registered {
    /// The address of the sqlx pool's options: its identity while it lives.
    key: usize,
    /// The sqlx pool's connect options when it was registered. Held, so that their address
    /// is not reused while registered: a pool whose connect options are this very value
    /// connects as [`Registered::url`] says without the URL being rebuilt (a scope made per
    /// request looks its pool up every time).
    opts: Arc<PgConnectOptions>,
    /// What its connections are ([`identity`]): a later sqlx pool at the same address shares
    /// the pipelined pool only if it connects the same way.
    url: String,
    pool: Arc<PipePool>,
    /// When a handle last took it.
    taken: Instant,
}

/// The pipelined pools of the sqlx pools in use. A pool stays while a handle holds it, and for
/// [`LINGER`] after a handle last took it, so that scopes made one per request
/// (`TenantScope::new`) share one pool instead of each opening connections of its own; a pool
/// nobody took for that long is dropped, its connections closed, when the next is looked up.
static POOLS: StdMutex<Vec<Registered>> = StdMutex::new(Vec::new());

/// How long a pipelined pool outlives its last handle (see [`POOLS`]).
const LINGER: Duration = Duration::from_secs(60);

impl PipePool {
    /// The pipelined pool for `pg`, shared by every handle on `pg`; `None` where it cannot
    /// serve `pg`'s connections as sqlx would (TLS required, or prepared statements turned off
    /// with a statement cache of 0, as behind a PgBouncer that does not support them).
    pub(crate) fn shared(pg: &PgPool) -> Option<Arc<PipePool>> {
        let key = std::ptr::from_ref(pg.options()) as usize;
        let opts = pg.connect_options();
        let now = Instant::now();
        // A poisoned registry (a panic elsewhere while it was held) only costs pipelining.
        let mut pools = POOLS.lock().ok()?;
        pools.retain(|r| {
            !r.pool.pool.is_closed()
                && (Arc::strong_count(&r.pool) > 1 || now.duration_since(r.taken) < LINGER)
        });
        let same = |r: &&mut Registered| r.key == key && Arc::ptr_eq(&r.opts, &opts);
        if let Some(r) = pools.iter_mut().find(same) {
            r.taken = now;
            return Some(Arc::clone(&r.pool));
        }
        let url = identity(&opts);
        if let Some(r) = pools.iter_mut().find(|r| r.key == key && r.url == url) {
            r.taken = now;
            r.opts = opts;
            return Some(Arc::clone(&r.pool));
        }
        let pool = Arc::new(PipePool::new(pg)?);
        pools.push(Registered {
            key,
            opts,
            url,
            pool: Arc::clone(&pool),
            taken: now,
        });
        Some(pool)
    }

    fn new(pg: &PgPool) -> Option<PipePool> {
        let opts = pg.connect_options();
        if matches!(
            opts.get_ssl_mode(),
            PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull
        ) {
            return None;
        }
        // sqlx keeps the password to itself but for the URL it can rebuild the options from.
        let url = opts.to_url_lossy();
        if url
            .query_pairs()
            .any(|(k, v)| k == "statement-cache-capacity" && v == "0")
        {
            return None;
        }
        let mut cfg = tokio_postgres::Config::new();
        match opts.get_socket() {
            Some(dir) => cfg.host_path(dir),
            None => cfg.host(opts.get_host()),
        };
        cfg.port(opts.get_port()).user(opts.get_username());
        if let Some(password) = url.password() {
            let password = percent_encoding::percent_decode_str(password).collect::<Vec<u8>>();
            cfg.password(password);
        }
        if let Some(db) = opts.get_database() {
            cfg.dbname(db);
        }
        if let Some(name) = opts.get_application_name() {
            cfg.application_name(name);
        }
        // The session settings sqlx starts every connection with, so that a statement renders
        // and reads dates and times the same on either driver; then the caller's own.
        let mut options = "-c DateStyle=ISO,MDY -c TimeZone=UTC".to_owned();
        if let Some(own) = opts.get_options() {
            options.push(' ');
            options.push_str(own);
        }
        cfg.options(&options);
        let manager = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let citus = Arc::new(AtomicU8::new(Citus::Unknown as u8));
        let found = Arc::clone(&citus);
        let sqlx_options = pg.options();
        let timeout = Some(sqlx_options.get_acquire_timeout());
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(usize::try_from(sqlx_options.get_max_connections()).unwrap_or(usize::MAX))
            .runtime(Runtime::Tokio1)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .post_create(Hook::async_fn(move |client, _| {
                let found = Arc::clone(&found);
                Box::pin(async move {
                    let row = client
                        .query_one(CITUS_SQL, &[])
                        .await
                        .map_err(HookError::Backend)?;
                    let citus = if row.try_get(0).map_err(HookError::Backend)? {
                        Citus::Yes
                    } else {
                        Citus::No
                    };
                    found.store(citus as u8, Ordering::Relaxed);
                    Ok(())
                })
            }))
            .pre_recycle(Hook::async_fn(|client, metrics| {
                Box::pin(async move {
                    if metrics.last_used() >= crate::PING_AFTER_IDLE {
                        client.simple_query("").await.map_err(HookError::Backend)?;
                    }
                    Ok(())
                })
            }))
            .build()
            .ok()?;
        Some(PipePool { pool, citus })
    }

    /// The requests of the crate's own BEGIN SQL ([`crate::tx::tenant_begin_sql`]): one, but
    /// where the database may run Citus (see [`Citus`]); there one per statement, split where
    /// that SQL separates them, with `"; "` (it holds no such text inside one: a tenant id has
    /// no `;`).
    fn begin_requests(&self, sql: &str) -> Vec<String> {
        begin_requests(self.citus.load(Ordering::Relaxed), sql)
    }

    /// Whether the database runs Citus, once a connection of the pool has asked.
    fn citus(&self) -> Option<bool> {
        match self.citus.load(Ordering::Relaxed) {
            v if v == Citus::No as u8 => Some(false),
            v if v == Citus::Yes as u8 => Some(true),
            _ => None,
        }
    }

    /// A transaction on a pooled connection, opened by `begin` (sent with its first request).
    pub(crate) async fn begin(self: &Arc<Self>, begin: &str) -> Result<Conn, DbErr> {
        let client = self.get().await?;
        Ok(Conn {
            client: Some(client),
            pool: Arc::clone(self),
            queued: self.begin_requests(begin),
            depth: 1,
            server_open: false,
            fresh: true,
            end_next: None,
            poisoned: false,
            in_flight: false,
        })
    }

    async fn get(&self) -> Result<Object, DbErr> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(_) => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            PoolError::Closed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
            PoolError::Backend(e) => DbErr::Conn(RuntimeErr::SqlxError(Arc::new(to_sqlx(e)))),
            e => DbErr::Conn(RuntimeErr::Internal(e.to_string())),
        })
    }

    /// Closes the pool: its idle connections now, the others as they come back.
    pub(crate) fn close(&self) {
        self.pool.close();
    }
}

/// How a transaction ends together with its next statement.
#[derive(Clone)]
struct EndNext {
    commit: bool,
    /// Sent in front of any statement after that one: a transaction of its own.
    then: Option<String>,
}

/// One pipelined connection with a transaction (or the queued BEGIN of one) on it.
pub(crate) struct Conn {
    /// `None` only while being dropped.
    client: Option<Object>,
    pool: Arc<PipePool>,
    /// Simple-protocol SQL sent in front of the next request: the BEGIN, savepoints, the
    /// rollbacks of savepoints dropped unfinished.
    queued: Vec<String>,
    /// Levels open once `queued` is sent: 1 the transaction, more for savepoints, 0 none.
    depth: u32,
    /// The server has a transaction open on this connection.
    server_open: bool,
    /// Nothing has been sent on this connection for this transaction yet.
    fresh: bool,
    end_next: Option<EndNext>,
    /// The connection's state is unknown: closed, never pooled again.
    poisoned: bool,
    /// Requests are on their way and their answers not taken yet: a future dropped now leaves
    /// the connection in a state nobody knows (a transaction open, a COMMIT whose outcome is
    /// unknown), so it is closed, never pooled again.
    in_flight: bool,
}

/// What a statement asks of the server.
pub(crate) enum Request<'a> {
    /// A prepared statement's rows.
    Rows(&'a Statement),
    /// A prepared statement's count of rows changed.
    Exec(&'a Statement),
    /// Simple-protocol SQL (several statements, no parameters); the rows changed, summed.
    Simple(&'a str),
}

/// What the server answered to a [`Request`].
pub(crate) enum Answer {
    Rows(Vec<Row>),
    Count(u64),
}

/// The step of a transaction that a failure belongs to, kept for the caller's error context.
#[derive(Debug, Default)]
pub(crate) struct Step(AtomicU8);

impl Step {
    pub(crate) fn set(&self, op: Option<Operation>) {
        let v = match op {
            None => 0,
            Some(Operation::Begin) => 1,
            Some(_) => 2,
        };
        self.0.store(v, Ordering::Release);
    }

    /// The step of the last failure, when it was the BEGIN or the COMMIT rather than the
    /// statement; cleared.
    pub(crate) fn take(&self) -> Option<Operation> {
        match self.0.swap(0, Ordering::AcqRel) {
            1 => Some(Operation::Begin),
            2 => Some(Operation::Commit),
            _ => None,
        }
    }
}

/// Statements that failed, with their step.
type Failed = (DbErr, Option<Operation>);

impl Conn {
    /// Whether the database runs Citus, where the pool knows it already.
    pub(crate) fn citus(&self) -> Option<bool> {
        self.pool.citus()
    }

    fn client(&self) -> Result<&Object, DbErr> {
        self.client
            .as_ref()
            .ok_or_else(|| DbErr::Conn(RuntimeErr::Internal("connection released".to_owned())))
    }

    /// Opens a savepoint (queued: sent with the next request); its level.
    pub(crate) fn savepoint(&mut self) -> u32 {
        self.depth += 1;
        self.queued.push(savepoint_sql("SAVEPOINT", self.depth));
        self.depth
    }

    /// Ends the transaction with the next statement, COMMIT (or ROLLBACK) travelling with it.
    /// A statement after that one runs in a transaction of its own, opened by `then`.
    pub(crate) fn end_with_next(&mut self, commit: bool, then: Option<String>) {
        if self.depth == 1 {
            self.end_next = Some(EndNext { commit, then });
        }
    }

    /// Ends `level`: commits (releases) or rolls back. A level already ended, or one whose
    /// BEGIN never left, costs nothing.
    pub(crate) async fn end(&mut self, level: u32, commit: bool) -> Result<(), DbErr> {
        if self.depth < level {
            return Ok(());
        }
        if level > 1 && self.queued.last() == Some(&savepoint_sql("SAVEPOINT", level)) {
            self.queued.pop();
            self.depth = level - 1;
            return Ok(());
        }
        if level == 1 && !self.server_open {
            self.queued.clear();
            self.depth = 0;
            self.end_next = None;
            return Ok(());
        }
        let end = match (level, commit) {
            (1, true) => "COMMIT".to_owned(),
            (1, false) => "ROLLBACK".to_owned(),
            (_, true) => savepoint_sql("RELEASE SAVEPOINT", level),
            (_, false) => savepoint_sql("ROLLBACK TO SAVEPOINT", level),
        };
        let mut sql = std::mem::take(&mut self.queued);
        sql.push(end);
        self.in_flight = true;
        let sent = self.client()?.batch_execute(&sql.join("; ")).await;
        self.in_flight = false;
        self.depth = level - 1;
        if level == 1 {
            self.server_open = false;
            self.end_next = None;
        }
        sent.map_err(|e| self.failed(e, DbErr::Exec))
    }

    /// Forgets `level` without waiting (its handle was dropped unfinished): a savepoint's
    /// rollback is queued for the next request; the transaction's is sent when the connection
    /// goes back to the pool.
    pub(crate) fn abandon(&mut self, level: u32) {
        if self.depth < level || level == 1 {
            return;
        }
        if self.queued.last() == Some(&savepoint_sql("SAVEPOINT", level)) {
            self.queued.pop();
        } else {
            self.queued
                .push(savepoint_sql("ROLLBACK TO SAVEPOINT", level));
        }
        self.depth = level - 1;
    }

    /// Sends what is queued, `req` and (when asked for) the end of the transaction together,
    /// and takes their answers.
    pub(crate) async fn run(&mut self, req: Request<'_>) -> Result<Answer, Failed> {
        if self.depth == 0 {
            return Err((
                DbErr::Conn(RuntimeErr::Internal(
                    "the transaction has ended; nothing was sent".to_owned(),
                )),
                None,
            ));
        }
        let params = match req {
            Request::Rows(stmt) | Request::Exec(stmt) => bind(stmt).map_err(|e| (e, None))?,
            Request::Simple(_) => Vec::new(),
        };
        let queued = std::mem::take(&mut self.queued);
        let end = self.end_next.take();
        let retryable = self.fresh && end.as_ref().is_some_and(|end| !end.commit);
        let again = retryable.then(|| (queued.clone(), end.clone()));
        match self.run_once(&req, &params, queued, end).await {
            Err((e, Some(Operation::Begin))) if broken_db(&e) && again.is_some() => {
                // A read's connection broke before anything it asked for could matter: begin
                // again on another connection.
                if let Some(client) = self.client.take() {
                    drop(Object::take(client));
                }
                self.client = Some(
                    self.pool
                        .get()
                        .await
                        .map_err(|e| (e, Some(Operation::Begin)))?,
                );
                self.poisoned = false;
                self.server_open = false;
                self.depth = 1;
                let (queued, end) = again.unwrap_or_default();
                self.run_once(&req, &params, queued, end).await
            }
            out => out,
        }
    }

    async fn run_once(
        &mut self,
        req: &Request<'_>,
        params: &[Param<'_>],
        queued: Vec<String>,
        end: Option<EndNext>,
    ) -> Result<Answer, Failed> {
        let begins = !self.server_open && !queued.is_empty();
        let end_sql = end
            .as_ref()
            .filter(|_| self.depth == 1)
            .map(|end| if end.commit { "COMMIT" } else { "ROLLBACK" });
        self.in_flight = true;
        let client = self.client().map_err(|e| (e, None))?;
        let pre = send_queued(client, &queued);
        let (sent_tx, sent_rx) = tokio::sync::oneshot::channel::<()>();
        let main = async {
            let mut sent = Some(sent_tx);
            // The request leaves on its first poll; the end may follow it from then on.
            async fn first_poll<T>(
                fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
                sent: &mut Option<tokio::sync::oneshot::Sender<()>>,
            ) -> Result<T, tokio_postgres::Error> {
                let mut fut = pin!(fut);
                let first = poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
                if let Some(sent) = sent.take() {
                    let _ = sent.send(());
                }
                match first {
                    Poll::Ready(out) => out,
                    Poll::Pending => fut.await,
                }
            }
            match req {
                Request::Simple(sql) => first_poll(client.simple_query(sql), &mut sent)
                    .await
                    .map(|messages| Answer::Count(simple_count(&messages))),
                Request::Rows(stmt) | Request::Exec(stmt) => {
                    let types: Vec<Type> = params.iter().map(|p| p.1.clone()).collect();
                    let prepared = client.prepare_typed_cached(&stmt.sql, &types).await?;
                    let refs: Vec<&(dyn ToSql + Sync)> =
                        params.iter().map(|p| &p.0 as &(dyn ToSql + Sync)).collect();
                    if matches!(req, Request::Rows(_)) {
                        first_poll(client.query(&prepared, &refs), &mut sent)
                            .await
                            .map(Answer::Rows)
                    } else {
                        first_poll(client.execute(&prepared, &refs), &mut sent)
                            .await
                            .map(Answer::Count)
                    }
                }
            }
        };
        let fin = async {
            let sql = end_sql?;
            // No statement left: nothing to end with it.
            sent_rx.await.ok()?;
            Some(client.batch_execute(sql).await)
        };
        // A statement in the middle of a transaction goes alone: no need to poll three.
        let (pre, main, fin) = if queued.is_empty() && end_sql.is_none() {
            drop((pre, fin));
            (Ok(()), main.await, None)
        } else {
            future::join3(pre, main, fin).await
        };
        self.in_flight = false;
        self.fresh = false;
        let ended = fin.is_some();
        if let Err(e) = pre {
            // The BEGIN (or a savepoint) failed: whatever ran after it ran outside what the
            // caller asked for, so the connection's state is not to be trusted.
            self.poisoned = true;
            let step = Some(Operation::Begin);
            return Err((self.failed(e, DbErr::Exec), step));
        }
        if begins {
            self.server_open = true;
        }
        if ended {
            self.server_open = false;
            self.depth = 0;
        }
        let out = match main {
            Err(e) => {
                let wrap = if matches!(req, Request::Rows(_)) {
                    DbErr::Query
                } else {
                    DbErr::Exec
                };
                return Err((self.failed(e, wrap), None));
            }
            Ok(out) => out,
        };
        if let Some(Err(e)) = fin {
            return Err((self.failed(e, DbErr::Exec), Some(Operation::Commit)));
        }
        if ended && let Some(then) = end.and_then(|end| end.then) {
            self.queued.extend(self.pool.begin_requests(&then));
            self.depth = 1;
        }
        Ok(out)
    }

    /// The rows of `stmt` as the server sends them, after what is queued.
    pub(crate) fn stream<'a>(
        &'a mut self,
        stmt: &'a Statement,
        positions: bool,
    ) -> futures_util::stream::BoxStream<'a, Result<QueryResult, DbErr>> {
        Box::pin(async_stream::try_stream! {
            let params = bind(stmt)?;
            let queued = std::mem::take(&mut self.queued);
            let begins = !self.server_open && !queued.is_empty();
            let client = self.client.as_ref().ok_or_else(|| {
                DbErr::Conn(RuntimeErr::Internal("connection released".to_owned()))
            })?;
            let types: Vec<Type> = params.iter().map(|p| p.1.clone()).collect();
            let pre = send_queued(client, &queued);
            self.in_flight = true;
            let (pre, prepared) =
                future::join(pre, client.prepare_typed_cached(&stmt.sql, &types)).await;
            let started = match (pre, prepared) {
                (Err(e), _) => Err((e, true)),
                (Ok(()), Err(e)) => Err((e, false)),
                (Ok(()), Ok(prepared)) => Ok(prepared),
            };
            let prepared = match started {
                Ok(prepared) => prepared,
                Err((e, begin_failed)) => {
                    self.in_flight = false;
                    self.poisoned |= begin_failed || broken(&e);
                    if !begin_failed && begins {
                        self.server_open = true;
                    }
                    Err(DbErr::Query(RuntimeErr::SqlxError(Arc::new(to_sqlx(e)))))?
                }
            };
            if begins {
                self.server_open = true;
            }
            let rows = client
                .query_raw(&prepared, params.iter().map(|p| &p.0 as &(dyn ToSql + Sync)))
                .await
                .map_err(|e| DbErr::Query(RuntimeErr::SqlxError(Arc::new(to_sqlx(e)))))?;
            // From here a stream dropped half-way is safe: the driver discards the rest of its
            // rows before the answer to the connection's next request.
            self.in_flight = false;
            let layout = Layout::new(prepared.columns(), positions);
            let mut rows = pin!(rows);
            while let Some(row) = rows
                .try_next()
                .await
                .map_err(|e| DbErr::Query(RuntimeErr::SqlxError(Arc::new(to_sqlx(e)))))?
            {
                yield layout.row(&row)?;
            }
        })
    }

    /// `COPY ... FROM STDIN` of `data`, after what is queued; the rows copied.
    pub(crate) async fn copy_in(&mut self, sql: &str, data: Bytes) -> Result<u64, Failed> {
        let queued = std::mem::take(&mut self.queued);
        let begins = !self.server_open && !queued.is_empty();
        self.in_flight = true;
        let client = self.client().map_err(|e| (e, None))?;
        let pre = send_queued(client, &queued);
        let copy = async {
            let sink = client.copy_in::<_, Bytes>(sql).await?;
            let mut sink = pin!(sink);
            sink.send(data).await?;
            sink.as_mut().finish().await
        };
        let (pre, copied) = future::join(pre, copy).await;
        self.in_flight = false;
        self.fresh = false;
        if let Err(e) = pre {
            self.poisoned = true;
            return Err((self.failed(e, DbErr::Exec), Some(Operation::Begin)));
        }
        if begins {
            self.server_open = true;
        }
        copied.map_err(|e| (self.failed(e, DbErr::Exec), None))
    }

    /// Converts a driver error, noting a connection that can no longer be trusted.
    fn failed(&mut self, e: tokio_postgres::Error, wrap: fn(RuntimeErr) -> DbErr) -> DbErr {
        if broken(&e) {
            self.poisoned = true;
        }
        wrap(RuntimeErr::SqlxError(Arc::new(to_sqlx(e))))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if self.poisoned || self.in_flight {
            drop(Object::take(client));
            return;
        }
        if !self.server_open {
            return;
        }
        // A transaction is open: its ROLLBACK is queued on the connection before it goes back
        // to the pool. tokio-postgres sends a request on its future's first poll and, the
        // future dropped, discards the answer; requests run in order, so the next user's BEGIN
        // follows the ROLLBACK. (A spawned task that waited for the answer would cost a thread
        // hop and keep the connection out of the pool meanwhile, for nothing.)
        let queued = {
            let mut rollback = pin!(client.batch_execute("ROLLBACK"));
            let mut cx = std::task::Context::from_waker(futures_util::task::noop_waker_ref());
            !matches!(rollback.as_mut().poll(&mut cx), Poll::Ready(Err(_)))
        };
        if !queued {
            drop(Object::take(client));
        }
    }
}

/// Everything that decides what a connection of `opts` is: the URL sqlx rebuilds its options as
/// (host, port, user, password, database, TLS mode, statement cache), and the two settings that
/// URL leaves out, the startup `options` (which may set a role or a setting for the session)
/// and the application name.
fn identity(opts: &PgConnectOptions) -> String {
    format!(
        "{} options={:?} application_name={:?}",
        opts.to_url_lossy(),
        opts.get_options(),
        opts.get_application_name()
    )
}

/// Sends what is queued (nothing to send: done at once). The request leaves on the first poll.
async fn send_queued(client: &Object, queued: &[String]) -> Result<(), tokio_postgres::Error> {
    // One simple query each, polled together: they leave in one write, in order (the tenant
    // BEGIN is one or two of them, see `PipePool::begin_requests`).
    future::try_join_all(queued.iter().map(|sql| client.batch_execute(sql)))
        .await
        .map(|_| ())
}

/// [`PipePool::begin_requests`], for what the pool knows of Citus (a [`Citus`] as `u8`).
fn begin_requests(citus: u8, sql: &str) -> Vec<String> {
    if citus == Citus::No as u8 {
        vec![sql.to_owned()]
    } else {
        sql.split("; ").map(str::to_owned).collect()
    }
}

fn savepoint_sql(verb: &str, level: u32) -> String {
    format!("{verb} fg_savepoint_{level}")
}

fn simple_count(messages: &[SimpleQueryMessage]) -> u64 {
    messages
        .iter()
        .map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => *n,
            _ => 0,
        })
        .sum()
}

/// Whether `e` says the connection itself is unusable.
fn broken(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            code.starts_with("57P") || code.starts_with("08")
        }
        None => e.is_closed() || io_source(e).is_some(),
    }
}

/// [`broken`], for a converted error.
fn broken_db(e: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))
    | DbErr::Conn(RuntimeErr::SqlxError(e))) = e
    else {
        return matches!(e, DbErr::ConnectionAcquire(_));
    };
    match e.as_ref() {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")),
        _ => false,
    }
}

fn io_source(e: &tokio_postgres::Error) -> Option<&std::io::Error> {
    std::error::Error::source(e)?.downcast_ref::<std::io::Error>()
}

/// A tokio-postgres error as the sqlx error SeaORM and the crate's error mapping understand.
fn to_sqlx(e: tokio_postgres::Error) -> sqlx::Error {
    if let Some(db) = e.as_db_error() {
        return sqlx::Error::Database(Box::new(PipeDbError(db.clone())));
    }
    if let Some(io) = io_source(&e) {
        return sqlx::Error::Io(std::io::Error::new(io.kind(), e.to_string()));
    }
    if e.is_closed() {
        return sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            e.to_string(),
        ));
    }
    sqlx::Error::Protocol(e.to_string())
}

/// An error PostgreSQL sent on a pipelined connection, as a sqlx `DatabaseError`: its SQLSTATE,
/// table and constraint reach `Error::from_db` as sqlx's own would.
#[derive(Debug)]
pub(crate) struct PipeDbError(pub(crate) tokio_postgres::error::DbError);

impl std::fmt::Display for PipeDbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.message())
    }
}

impl std::error::Error for PipeDbError {}

impl sqlx_core::error::DatabaseError for PipeDbError {
    fn message(&self) -> &str {
        self.0.message()
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.0.code().code().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn constraint(&self) -> Option<&str> {
        self.0.constraint()
    }

    fn table(&self) -> Option<&str> {
        self.0.table()
    }

    fn kind(&self) -> sqlx_core::error::ErrorKind {
        use sqlx_core::error::ErrorKind;
        match self.0.code().code() {
            "23505" => ErrorKind::UniqueViolation,
            "23503" => ErrorKind::ForeignKeyViolation,
            "23502" => ErrorKind::NotNullViolation,
            "23514" => ErrorKind::CheckViolation,
            "23P01" => ErrorKind::ExclusionViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// A statement's value with the type it is declared as.
#[derive(Debug)]
struct Param<'a>(Element<'a>, Type);

fn bind(stmt: &Statement) -> Result<Vec<Param<'_>>, DbErr> {
    let Some(values) = &stmt.values else {
        return Ok(Vec::new());
    };
    values
        .0
        .iter()
        .map(|v| param_type(v).map(|ty| Param(Element(v), ty)))
        .collect()
}

/// The type a value is declared as: the one sqlx declares for it (sea-query-sqlx's binding),
/// so that a statement means the same on either driver.
fn param_type(v: &Value) -> Result<Type, DbErr> {
    Ok(match v {
        Value::Bool(_) => Type::BOOL,
        Value::TinyInt(_) | Value::SmallInt(_) | Value::TinyUnsigned(_) => Type::INT2,
        Value::Int(_) | Value::SmallUnsigned(_) => Type::INT4,
        Value::BigInt(_) | Value::Unsigned(_) | Value::BigUnsigned(_) => Type::INT8,
        Value::Float(_) => Type::FLOAT4,
        Value::Double(_) => Type::FLOAT8,
        Value::String(_) | Value::Enum(_) | Value::Char(_) => Type::TEXT,
        Value::Bytes(_) => Type::BYTEA,
        Value::Json(_) => Type::JSONB,
        Value::ChronoDate(_) => Type::DATE,
        Value::ChronoTime(_) => Type::TIME,
        Value::ChronoDateTime(_) => Type::TIMESTAMP,
        Value::ChronoDateTimeUtc(_)
        | Value::ChronoDateTimeLocal(_)
        | Value::ChronoDateTimeWithTimeZone(_) => Type::TIMESTAMPTZ,
        Value::Array(ty, _) => match ty {
            ArrayType::Bool => Type::BOOL_ARRAY,
            ArrayType::TinyInt | ArrayType::SmallInt | ArrayType::TinyUnsigned => Type::INT2_ARRAY,
            ArrayType::Int | ArrayType::SmallUnsigned => Type::INT4_ARRAY,
            ArrayType::BigInt | ArrayType::Unsigned | ArrayType::BigUnsigned => Type::INT8_ARRAY,
            ArrayType::Float => Type::FLOAT4_ARRAY,
            ArrayType::Double => Type::FLOAT8_ARRAY,
            ArrayType::String | ArrayType::Char | ArrayType::Enum(_) => Type::TEXT_ARRAY,
            ArrayType::Bytes => Type::BYTEA_ARRAY,
            ArrayType::Json => Type::JSONB_ARRAY,
            ArrayType::ChronoDate => Type::DATE_ARRAY,
            ArrayType::ChronoTime => Type::TIME_ARRAY,
            ArrayType::ChronoDateTime => Type::TIMESTAMP_ARRAY,
            ArrayType::ChronoDateTimeUtc
            | ArrayType::ChronoDateTimeLocal
            | ArrayType::ChronoDateTimeWithTimeZone => Type::TIMESTAMPTZ_ARRAY,
            other => return Err(unsupported_value(&format!("an array of {other:?}"))),
        },
        other => return Err(unsupported_value(&format!("{other:?}"))),
    })
}

fn unsupported_value(what: &str) -> DbErr {
    DbErr::Type(format!(
        "a value of this kind cannot be bound on a pipelined connection: {what}"
    ))
}

/// A value, encoded as the type the server asks for: the one [`param_type`] declared, or an
/// array's member type.
#[derive(Debug)]
struct Element<'a>(&'a Value);

impl ToSql for Element<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        value_to_sql(self.0, ty, out)
    }

    fn accepts(_: &Type) -> bool {
        // The type is the value's own (`param_type`), or its array's member type.
        true
    }

    to_sql_checked!();
}

fn value_to_sql(
    v: &Value,
    ty: &Type,
    out: &mut BytesMut,
) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
    match v {
        Value::Bool(v) => v.to_sql(ty, out),
        Value::TinyInt(v) => v.map(i16::from).to_sql(ty, out),
        Value::SmallInt(v) => v.to_sql(ty, out),
        Value::Int(v) => v.to_sql(ty, out),
        Value::BigInt(v) => v.to_sql(ty, out),
        Value::TinyUnsigned(v) => v.map(i16::from).to_sql(ty, out),
        Value::SmallUnsigned(v) => v.map(i32::from).to_sql(ty, out),
        Value::Unsigned(v) => v.map(i64::from).to_sql(ty, out),
        Value::BigUnsigned(v) => v.map(i64::try_from).transpose()?.to_sql(ty, out),
        Value::Float(v) => v.to_sql(ty, out),
        Value::Double(v) => v.to_sql(ty, out),
        Value::String(v) => v.as_deref().to_sql(ty, out),
        Value::Enum(OptionEnum::Some(e)) => Some(e.value.as_ref()).to_sql(ty, out),
        Value::Enum(OptionEnum::None(_)) => Ok(IsNull::Yes),
        Value::Char(v) => v.map(|c| c.to_string()).to_sql(ty, out),
        Value::Bytes(v) => v.as_deref().to_sql(ty, out),
        Value::Json(v) => v.as_deref().to_sql(ty, out),
        Value::ChronoDate(v) => v.to_sql(ty, out),
        Value::ChronoTime(v) => v.to_sql(ty, out),
        Value::ChronoDateTime(v) => v.to_sql(ty, out),
        Value::ChronoDateTimeUtc(v) => v.to_sql(ty, out),
        Value::ChronoDateTimeLocal(v) => v.map(|t| t.with_timezone(&Utc)).to_sql(ty, out),
        Value::ChronoDateTimeWithTimeZone(v) => v.map(|t| t.with_timezone(&Utc)).to_sql(ty, out),
        Value::Array(_, None) => Ok(IsNull::Yes),
        Value::Array(_, Some(items)) => items
            .iter()
            .map(Element)
            .collect::<Vec<_>>()
            .to_sql(ty, out),
        other => Err(format!("a value of this kind cannot be bound: {other:?}").into()),
    }
}

/// A value whose binary form is its text: an enum label, `unknown`, `void`.
struct Text(String);

impl<'a> FromSql<'a> for Text {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Text(std::str::from_utf8(raw)?.to_owned()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The position key of column `i` in a proxy row: sorts before every column name (PostgreSQL
/// names are never empty and never hold a NUL).
fn position_key(i: usize) -> String {
    format!("\0{i:05}")
}

/// Where a statement's columns go in a proxy row (see the module's design notes), worked out
/// once per statement rather than for every row: the keys in the map's order, each with the
/// column whose value it holds. By name, and by position too when `positions` (a reader that
/// may read by position: a tuple, a caller's own code) and the names are not in order already.
/// Of two columns of one name, the name holds the last, as a sqlx row read by name gives it
/// (the positions keep both).
pub(crate) struct Layout {
    keys: Vec<(String, usize)>,
    /// Whether a column's value goes under more than one key (then each key gets a copy).
    copies: bool,
}

impl Layout {
    pub(crate) fn new(columns: &[tokio_postgres::Column], positions: bool) -> Layout {
        let ordered = !positions || columns.windows(2).all(|w| w[0].name() < w[1].name());
        let mut keys = BTreeMap::new();
        for (i, column) in columns.iter().enumerate() {
            keys.insert(column.name().to_owned(), i);
            if !ordered {
                keys.insert(position_key(i), i);
            }
        }
        Layout {
            keys: keys.into_iter().collect(),
            copies: !ordered,
        }
    }

    /// `row` as SeaORM's proxy row.
    pub(crate) fn row(&self, row: &Row) -> Result<QueryResult, DbErr> {
        let mut values = (0..row.len())
            .map(|i| decode(row, i).map(Some))
            .collect::<Result<Vec<_>, _>>()?;
        // In the map's order already, so the map is built without a search per key.
        let entries = self.keys.iter().map(|(key, i)| {
            let slot = values.get_mut(*i);
            // Without copies each column is under one key, so a value is taken once.
            let value = if self.copies {
                slot.and_then(|v| v.clone())
            } else {
                slot.and_then(Option::take)
            };
            let value = value.ok_or_else(|| {
                DbErr::Type(format!("a row without the statement's column {key:?}"))
            })?;
            Ok((key.clone(), value))
        });
        Ok(ProxyRow::new(entries.collect::<Result<_, DbErr>>()?).into())
    }
}

/// Rows as SeaORM's query results.
pub(crate) fn results(rows: &[Row], positions: bool) -> Result<Vec<QueryResult>, DbErr> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let layout = Layout::new(first.columns(), positions);
    rows.iter().map(|row| layout.row(row)).collect()
}

/// A count of rows changed as SeaORM's exec result.
pub(crate) fn exec_result(rows: u64) -> ExecResult {
    ProxyExecResult::new(0, rows).into()
}

/// Column `i` of `row` as the SeaORM value that SeaORM's readers expect for its type.
fn decode(row: &Row, i: usize) -> Result<Value, DbErr> {
    let column = &row.columns()[i];
    let ty = column.type_();
    macro_rules! get {
        ($t:ty) => {
            row.try_get::<_, Option<$t>>(i)
                .map_err(|e| DbErr::Type(format!("column \"{}\" ({ty}): {e}", column.name())))?
        };
    }
    fn array<T>(items: Option<Vec<Option<T>>>, ty: ArrayType, f: fn(Option<T>) -> Value) -> Value {
        Value::Array(
            ty,
            items.map(|items| Box::new(items.into_iter().map(f).collect())),
        )
    }
    Ok(match *ty {
        Type::BOOL => Value::Bool(get!(bool)),
        Type::INT2 => Value::SmallInt(get!(i16)),
        Type::INT4 => Value::Int(get!(i32)),
        Type::INT8 => Value::BigInt(get!(i64)),
        Type::FLOAT4 => Value::Float(get!(f32)),
        Type::FLOAT8 => Value::Double(get!(f64)),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => Value::String(get!(String)),
        Type::UNKNOWN | Type::VOID => Value::String(get!(Text).map(|t| t.0)),
        Type::BYTEA => Value::Bytes(get!(Vec<u8>)),
        Type::JSON | Type::JSONB => Value::Json(get!(serde_json::Value).map(Box::new)),
        Type::TIMESTAMPTZ => Value::ChronoDateTimeUtc(get!(DateTime<Utc>)),
        Type::TIMESTAMP => Value::ChronoDateTime(get!(NaiveDateTime)),
        Type::DATE => Value::ChronoDate(get!(NaiveDate)),
        Type::TIME => Value::ChronoTime(get!(NaiveTime)),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => {
            array(get!(Vec<Option<String>>), ArrayType::String, Value::String)
        }
        Type::INT4_ARRAY => array(get!(Vec<Option<i32>>), ArrayType::Int, Value::Int),
        Type::INT8_ARRAY => array(get!(Vec<Option<i64>>), ArrayType::BigInt, Value::BigInt),
        Type::BOOL_ARRAY => array(get!(Vec<Option<bool>>), ArrayType::Bool, Value::Bool),
        _ if matches!(ty.kind(), Kind::Enum(_)) => Value::String(get!(Text).map(|t| t.0)),
        _ => {
            return Err(DbErr::Type(format!(
                "column \"{}\" is of type {ty}, which a pipelined connection does not decode; \
                 cast it in the query (to text, float8, ...)",
                column.name()
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_keys_sort_before_every_name_and_in_column_order() {
        let keys: Vec<String> = (0..12).map(position_key).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        for name in [" ", "!", "0", "A", "_", "a", "é"] {
            assert!(position_key(99_999).as_str() < name, "{name:?}");
        }
    }

    #[test]
    fn the_tenant_begin_is_one_request_only_where_citus_is_known_absent() {
        let org = crate::OrgId::new("acme").expect("a valid id");
        let sql = crate::tx::tenant_begin_sql(&org);
        assert_eq!(begin_requests(Citus::No as u8, &sql), vec![sql.clone()]);
        for citus in [Citus::Unknown, Citus::Yes] {
            let requests = begin_requests(citus as u8, &sql);
            assert_eq!(requests.len(), 2, "{requests:?}");
            assert!(requests[0].starts_with("BEGIN"), "{requests:?}");
            assert!(requests[1].contains("acme"), "{requests:?}");
        }
    }

    #[test]
    fn pools_that_connect_differently_never_share_a_pipelined_pool() {
        use sea_orm::sqlx::postgres::PgConnectOptions;
        let base = PgConnectOptions::new()
            .host("127.0.0.1")
            .username("app")
            .password("secret")
            .database("db");
        let same = identity(&base.clone());
        assert_eq!(identity(&base), same);
        for other in [
            base.clone().options([("role", "flakeguard_platform")]),
            base.clone().application_name("other"),
            base.clone().username("platform"),
            base.clone().password("other"),
            base.clone().database("other"),
        ] {
            assert_ne!(identity(&other), same);
        }
    }

    #[test]
    fn values_are_declared_as_sqlx_declares_them() {
        let utc = Value::ChronoDateTimeUtc(None);
        assert_eq!(param_type(&utc).ok(), Some(Type::TIMESTAMPTZ));
        assert_eq!(
            param_type(&Value::BigUnsigned(Some(1))).ok(),
            Some(Type::INT8)
        );
        assert_eq!(param_type(&Value::Json(None)).ok(), Some(Type::JSONB));
        assert_eq!(
            param_type(&Value::Array(ArrayType::String, None)).ok(),
            Some(Type::TEXT_ARRAY)
        );
    }
}
