#![doc = include_str!("../README.md")]
//!
//! ## The crate in Rust
//!
//! Many organizations share one database. This crate is what application crates (the API
//! server, the ingestion worker, the CLI) use to read and write it, and what keeps each
//! organization's rows away from every other: [`TenantScope`] adds the organization filter to
//! every query and checks every write, and row-level security in PostgreSQL enforces the same
//! boundary a second time.
//!
//! ```no_run
//! use flakeguard_db::entity::{fg_repository, fg_test_case};
//! use flakeguard_db::sea_orm::{ColumnTrait, Set};
//! use flakeguard_db::OrgId;
//!
//! # async fn demo() -> flakeguard_db::Result<()> {
//! // Log in as a member of the `flakeguard_app` role, so that row-level security applies.
//! let db = flakeguard_db::connect("postgres://flakeguard_api:secret@localhost/flakeguard").await?;
//! let acme = db.scope(OrgId::new("acme")?);
//!
//! let repo = acme
//!     .insert(fg_repository::ActiveModel {
//!         owner: Set("acme".into()),
//!         name: Set("web".into()),
//!         installation_id: Set("42".into()),
//!         ..Default::default() // id (a CUID2), "orgId" and "updatedAt" are filled in
//!     })
//!     .await?;
//! let cases = acme
//!     .find::<fg_test_case::Entity>()
//!     .filter(fg_test_case::Column::RepoId.eq(&repo.id))
//!     .order_by_asc(fg_test_case::Column::Name)
//!     .all()
//!     .await?; // only Acme's rows, whatever the filter says
//! # Ok(()) }
//! ```
//!
//! ### Layout
//!
//! - [`Db`]: the pool [`connect`] opens; scopes and the global tables' handle come from it.
//! - [`TenantScope`] (`tenant_scope/`): reads and writes of one organization's data; the rows
//!   it writes are [`TenantRow`]s.
//! - [`OrgId`]: a validated tenant id.
//! - [`GlobalTables`]: the tables that belong to no organization (`User`, `IngestionJob`).
//! - [`CrossTenant`]: explicit access across organizations, on its own connection.
//! - [`Error`]: the one error type, with the tenant, table and operation of every failure.
//! - [`entity`]: the `flakeguard-entity` crate: one module per table, the enums, the tenant class
//!   of every table.
//! - [`migration`]: the `flakeguard-migration` crate: the history of the schema: six schema
//!   steps, then row-level security (7) and the tenant keys (8).
//! - [`testing`]: a throwaway PostgreSQL for tests and examples (feature `testing`).
//! - [`design`]: the design decisions that span files (docs/DESIGN.md).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod cross_tenant;
mod db;
#[doc = include_str!("../docs/DESIGN.md")]
pub mod design {}
mod error;
mod global;
mod input;
mod lock;
mod org_id;
mod pipe;
pub mod reports;
mod tenant_scope;
#[cfg(feature = "testing")]
pub mod testing;
mod trace;
mod tx;

pub use cross_tenant::CrossTenant;
pub use db::Db;
pub use error::{Context, Error, Operation, Rejection, Result};
pub use flakeguard_entity as entity;
pub use flakeguard_migration as migration;
pub use global::GlobalTables;
pub use lock::FUNCTIONS as ALLOWED_FUNCTIONS;
pub use org_id::{MAX_ORG_ID_LEN, OrgId};
pub use sea_orm;
pub use tenant_scope::{
    COPY_CHUNK_ROWS, Page, ScopedCursor, ScopedSelect, ScopedSelector, TenantRow, TenantScope,
};
pub use tx::tenant_begin_sql;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::{self, Connection as _};
use sea_orm::{ConnectOptions, Database, DbErr, RuntimeErr};

/// Opens a connection pool to `url` (`postgres://user:password@host:port/database`), as the
/// crate's [`Db`] handle: make scopes and the global tables' handle from it.
///
/// Fails at once with the connection's own error (refused, unknown host, bad password, no
/// such database) when the server cannot be reached.
pub async fn connect(url: &str) -> Result<Db> {
    // sqlx's pool retries a refused connection until its acquire timeout (30 s) and then says
    // only "pool timed out"; one direct connection first reports the real cause at once.
    let conn_err = |e: sqlx::Error| {
        Error::database(
            Operation::Connect,
            DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))),
        )
    };
    let options: sqlx::postgres::PgConnectOptions = url.parse().map_err(conn_err)?;
    let probe = sqlx::postgres::PgConnection::connect_with(&options)
        .await
        .map_err(conn_err)?;
    // The probe has done its work; a failure to close it politely changes nothing.
    let _ = probe.close().await;
    Database::connect(connect_options(url))
        .await
        .map(Db::new)
        .map_err(|e| Error::database(Operation::Connect, e))
}

/// How long a pooled connection may sit idle before [`connect`] pings it on its way out of the
/// pool.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

/// The pool options [`connect`] uses, for callers that open the pool themselves
/// ([`Db::new`]) and want the same behaviour, or to change one of them.
///
/// They are SeaORM's defaults but one: a connection is pinged before use only when it has been
/// idle for [`PING_AFTER_IDLE`], not on every acquire (sqlx's default), which would cost every
/// operation one more round trip (the crate's pipelined pool, which accompanies this one, pings
/// the same way). A connection that broke without being idle that long (a server restart) is
/// found closed on its way out of the pool or by the first request of the next transaction on
/// it; where nothing can have happened yet (the BEGIN on sqlx, a read when pipelined) the crate
/// discards it and runs again once on another connection.
pub fn connect_options(url: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options.test_before_acquire_if_idle_for(PING_AFTER_IDLE);
    options
}

/// Applies every pending migration, holding the migration lock so that concurrent migrators
/// (several instances of an application starting at once) run one after the other. Returns the
/// steps applied. Run it as the schema's owner, not as the application role.
pub async fn migrate(db: &Db) -> Result<Vec<String>> {
    Ok(flakeguard_migration::runner::up(db.unscoped_connection(), None).await?)
}
