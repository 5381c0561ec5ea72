//! The tenant-safe PostgreSQL data layer of FlakeGuard.
//!
//! Many organizations share one database. This crate is what application crates (the API
//! server, the ingestion worker, the CLI) use to read and write it: SeaORM 2.0 entities for
//! every table ([`entity`]), the schema's migration history ([`migration`]), and test support
//! that gives each test a fresh, migrated PostgreSQL database ([`testing`], feature `testing`).
//!
//! ```no_run
//! use flakeguard_db::entity::organization;
//! use flakeguard_db::sea_orm::{ActiveModelTrait, Set};
//!
//! # async fn demo() -> flakeguard_db::Result<()> {
//! let db = flakeguard_db::connect("postgres://app@localhost/flakeguard").await?;
//! let org = organization::ActiveModel {
//!     name: Set("Acme".to_owned()),
//!     slug: Set("acme".to_owned()),
//!     ..Default::default()
//! }
//! .insert(&db) // id (a CUID2) and "updatedAt" are filled in
//! .await
//! .map_err(|e| flakeguard_db::Error::database(flakeguard_db::Operation::Insert, e))?;
//! println!("created {}", org.id);
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`entity`]: the `flakeguard-entity` crate: one module per table, the enums, the tenant class
//!   of every table.
//! - [`migration`]: the `flakeguard-migration` crate: the history of the schema: six schema steps, then row-level security.
//! - [`Error`]: the one error type, with predicates such as [`Error::is_unique_violation`].
//! - [`testing`]: a throwaway PostgreSQL for tests and examples (feature `testing`).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod cross_tenant;
mod error;
mod global;
mod org_id;
mod tenant_scope;
#[cfg(feature = "testing")]
pub mod testing;

pub use cross_tenant::CrossTenant;
pub use error::{Context, Error, Operation, Result};
pub use flakeguard_entity as entity;
pub use flakeguard_migration as migration;
pub use global::GlobalTables;
pub use org_id::{MAX_ORG_ID_LEN, OrgId};
pub use sea_orm;
pub use tenant_scope::{Page, SET_TENANT_SQL, ScopedSelect, TenantScope};

use sea_orm::{Database, DatabaseConnection};

/// Opens a connection pool to `url` (`postgres://user:password@host:port/database`).
pub async fn connect(url: &str) -> Result<DatabaseConnection> {
    Database::connect(url)
        .await
        .map_err(|e| Error::database(Operation::Connect, e))
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<()> {
    use flakeguard_migration::MigratorTrait;
    flakeguard_migration::Migrator::up(db, None)
        .await
        .map_err(|e| Error::database(Operation::Migrate, e))
}
