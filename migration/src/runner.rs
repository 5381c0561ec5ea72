//! Applying and rolling back migrations safely on a live database.
//!
//! - **One migrator at a time.** Every operation holds a PostgreSQL advisory lock
//!   ([`LOCK_KEY`]) on a connection of its own for its whole duration. A second migrator waits
//!   for the lock, then finds nothing left to do. The lock goes with the session, so a migrator
//!   that dies releases it.
//! - **One step, one transaction.** Each step runs in its own transaction, so a step that fails
//!   part-way leaves the database as it was before that step; the error names the step.

use sea_orm_migration::MigratorTrait;
use sea_orm_migration::sea_orm::sqlx::{self, Connection, PgConnection};
use sea_orm_migration::sea_orm::{DatabaseConnection, DbErr};

use crate::Migrator;

/// The advisory lock key every FlakeGuard migrator takes: `"FLAKEGRD"` in ASCII.
pub const LOCK_KEY: i64 = 0x464C_414B_4547_5244;

/// What went wrong while migrating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// A step failed; the database is as it was before that step.
    #[error(
        "migration step {step} failed ({direction}); the database is as it was before the step: {source}"
    )]
    Step {
        /// The step's module name, e.g. `m20240826_000001_add_flakeguard_models`.
        step: String,
        /// `up` or `down`.
        direction: &'static str,
        /// The database's error.
        #[source]
        source: DbErr,
    },
    /// The lock could not be taken or the history could not be read.
    #[error("migration {operation}: {source}")]
    Database {
        /// What the migrator was doing.
        operation: &'static str,
        /// The database's error.
        #[source]
        source: DbErr,
    },
    /// `distribute` cannot run here (no Citus, not the coordinator, no worker, steps pending,
    /// a schema it does not know); nothing was changed.
    #[error("cannot distribute: {0}; nothing was changed")]
    NotCitus(String),
    /// A step of `distribute` failed: before any table was distributed (`partly` false), the
    /// database is as it was; after (`partly` true), it is partly distributed, and running
    /// `distribute` again, once the cause is fixed, resumes.
    #[error("distribute failed to {step}: {source}; {}", if *.partly {
        "the database is partly distributed: run `flakeguard-migration distribute` again to \
         resume once the cause is fixed"
    } else {
        "nothing was changed"
    })]
    Distribute {
        /// What the command was doing.
        step: String,
        /// The database's error.
        #[source]
        source: DbErr,
        /// Whether the database was left partly distributed.
        partly: bool,
    },
    /// `isolate-tenant` cannot run here (not a distributed database, not the coordinator, no
    /// such organization or worker, no logical replication); nothing was changed.
    #[error("cannot isolate the tenant: {0}; nothing was changed")]
    Isolate(String),
    /// One of Citus's calls of `isolate-tenant` failed. Each is atomic: with `isolated` false
    /// the database is as it was; with `isolated` true the tenant has a shard of its own on its
    /// old worker, and running the command again with the target moves it.
    #[error("isolating the tenant failed to {step}: {source}; {}", if *.isolated {
        "the tenant has a shard of its own on its old worker: run `flakeguard-migration \
         isolate-tenant` again with `--to HOST:PORT` to move it once the cause is fixed"
    } else {
        "nothing was changed"
    })]
    IsolateFailed {
        /// What the command was doing.
        step: String,
        /// The database's error.
        #[source]
        source: DbErr,
        /// Whether the tenant was left with a shard of its own.
        isolated: bool,
    },
    /// The command does not apply to a database distributed on Citus.
    #[error("{0}")]
    Distributed(String),
}

impl MigrateError {
    fn db(operation: &'static str) -> impl FnOnce(DbErr) -> MigrateError {
        move |source| MigrateError::Database { operation, source }
    }

    /// [`MigrateError::Database`] for `operation`, as a function usable any number of times.
    pub(crate) fn db_at(operation: &'static str) -> impl Fn(DbErr) -> MigrateError + Copy {
        move |source| MigrateError::Database { operation, source }
    }
}

/// Refuses `command` on a database distributed on Citus: its steps' `down` would alter the
/// distribution column and the keys Citus depends on.
async fn refuse_if_distributed(db: &DatabaseConnection, command: &str) -> Result<(), MigrateError> {
    if crate::distribute::is_distributed(db).await? {
        return Err(MigrateError::Distributed(format!(
            "`{command}` does not apply to a database distributed on Citus: rolling steps back \
             would alter the distribution column and the keys Citus depends on; nothing was \
             changed. To start over, drop the database and create it again"
        )));
    }
    Ok(())
}

impl From<MigrateError> for DbErr {
    fn from(e: MigrateError) -> DbErr {
        DbErr::Migration(e.to_string())
    }
}

/// The migration lock, held on a connection of its own until released or dropped.
pub struct MigrationLock {
    conn: PgConnection,
}

impl MigrationLock {
    /// Waits for, and takes, the migration lock of `db`'s database.
    pub async fn acquire(db: &DatabaseConnection) -> Result<MigrationLock, MigrateError> {
        let options = db.get_postgres_connection_pool().connect_options();
        let mut conn =
            PgConnection::connect_with(&options)
                .await
                .map_err(|e| MigrateError::Database {
                    operation: "lock",
                    source: DbErr::Conn(sea_orm_migration::sea_orm::RuntimeErr::SqlxError(
                        e.into(),
                    )),
                })?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(LOCK_KEY)
            .execute(&mut conn)
            .await
            .map_err(|e| MigrateError::Database {
                operation: "lock",
                source: DbErr::Exec(sea_orm_migration::sea_orm::RuntimeErr::SqlxError(e.into())),
            })?;
        Ok(MigrationLock { conn })
    }

    /// Releases the lock and closes its connection.
    pub async fn release(mut self) {
        // Closing the session releases the lock in any case.
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_KEY)
            .execute(&mut self.conn)
            .await;
        let _ = self.conn.close().await;
    }
}

/// Applies pending steps (all, or the next `steps`) under the lock, one transaction each.
/// Returns the names of the steps applied (empty when there was nothing to do).
pub async fn up(db: &DatabaseConnection, steps: Option<u32>) -> Result<Vec<String>, MigrateError> {
    let lock = MigrationLock::acquire(db).await?;
    let result = up_locked(db, steps).await;
    lock.release().await;
    result
}

async fn up_locked(
    db: &DatabaseConnection,
    steps: Option<u32>,
) -> Result<Vec<String>, MigrateError> {
    let pending = Migrator::get_pending_migrations(db)
        .await
        .map_err(MigrateError::db("read history"))?;
    let take = steps.map_or(pending.len(), |n| n as usize);
    let mut applied = Vec::new();
    for m in pending.iter().take(take) {
        let step = m.name().to_owned();
        Migrator::up(db, Some(1))
            .await
            .map_err(|source| MigrateError::Step {
                step: step.clone(),
                direction: "up",
                source,
            })?;
        applied.push(step);
    }
    Ok(applied)
}

/// Rolls back applied steps (the last one by default, or the last `steps`) under the lock, one
/// transaction each. Returns the names of the steps rolled back.
pub async fn down(
    db: &DatabaseConnection,
    steps: Option<u32>,
) -> Result<Vec<String>, MigrateError> {
    refuse_if_distributed(db, "down").await?;
    let lock = MigrationLock::acquire(db).await?;
    let result = down_locked(db, steps.unwrap_or(1)).await;
    lock.release().await;
    result
}

async fn down_locked(db: &DatabaseConnection, steps: u32) -> Result<Vec<String>, MigrateError> {
    let applied = Migrator::get_applied_migrations(db)
        .await
        .map_err(MigrateError::db("read history"))?;
    let mut undone = Vec::new();
    for m in applied.iter().rev().take(steps as usize) {
        let step = m.name().to_owned();
        Migrator::down(db, Some(1))
            .await
            .map_err(|source| MigrateError::Step {
                step: step.clone(),
                direction: "down",
                source,
            })?;
        undone.push(step);
    }
    Ok(undone)
}

/// Rolls back every applied step, under the lock.
pub async fn reset(db: &DatabaseConnection) -> Result<Vec<String>, MigrateError> {
    refuse_if_distributed(db, "reset").await?;
    let lock = MigrationLock::acquire(db).await?;
    let result = down_locked(db, u32::MAX).await;
    lock.release().await;
    result
}

/// Rolls back every applied step, then applies them all, under the lock.
pub async fn refresh(db: &DatabaseConnection) -> Result<Vec<String>, MigrateError> {
    refuse_if_distributed(db, "refresh").await?;
    let lock = MigrationLock::acquire(db).await?;
    let result = match down_locked(db, u32::MAX).await {
        Ok(_) => up_locked(db, None).await,
        Err(e) => Err(e),
    };
    lock.release().await;
    result
}

/// Drops every table and type of the schema, then applies every step, under the lock.
pub async fn fresh(db: &DatabaseConnection) -> Result<Vec<String>, MigrateError> {
    if crate::distribute::has_citus(db).await? {
        return Err(MigrateError::Distributed(
            "`fresh` does not apply to a Citus database: it drops every type of the schema, \
             Citus's own among them; nothing was changed. To start over, drop the database and \
             create it again"
                .to_owned(),
        ));
    }
    let lock = MigrationLock::acquire(db).await?;
    let result = match Migrator::fresh(db).await {
        Ok(()) => Ok(Migrator::migrations()
            .iter()
            .map(|m| m.name().to_owned())
            .collect()),
        Err(source) => Err(MigrateError::Database {
            operation: "fresh",
            source,
        }),
    };
    lock.release().await;
    result
}

/// The name of every step, in order.
pub fn step_names() -> Vec<String> {
    Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}
