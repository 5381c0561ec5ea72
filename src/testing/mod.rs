//! A throwaway PostgreSQL for tests and examples (feature `testing`).
//!
//! - `database.rs`: [`TestDatabase`], a fresh migrated database per test, copied from a
//!   template migrated once per process;
//! - `server.rs`: the server the databases live on (DATABASE_URL's, or a throwaway one), and
//!   how its binaries are found;
//! - `supervisor.rs`: the process that owns a throwaway server and removes it when the test
//!   process exits;
//! - `trips.rs`: [`TripCounter`], a proxy that counts round trips;
//! - `citus.rs`: [`CitusDatabase`], a fresh database on a throwaway Citus cluster (a
//!   coordinator and two workers), for where Citus is installed.
//!
//! [`TestDatabase::new`] gives a fresh, fully migrated database and its URL; the database is
//! removed when the value is dropped.
//!
//! - With `DATABASE_URL` set, the databases are created on that server (the URL's user must be
//!   allowed to `CREATE DATABASE`; a superuser is simplest).
//! - Without it, the first call starts a private server from the machine's PostgreSQL binaries
//!   in a temporary directory, on a free port of 127.0.0.1. It is shared by every test of the
//!   process and stopped, with its directory removed, when the process exits, however it exits.
//!   When the process runs as root, the server runs as the `postgres` OS user (`initdb` and
//!   `postgres` refuse root). When the binaries are missing the error says what to install.
//!
//! Migrations run once per process into a template database; each [`TestDatabase`] is a copy of
//! it (`CREATE DATABASE ... TEMPLATE ...`), which keeps a suite fast on small machines.
//!
//! A database whose test panicked is kept (its name is printed) so that it can be inspected.
//!
//! [`TestDatabase::restart_server`] stops the throwaway server and starts it again on the same
//! port and data directory, for tests of what happens when the database goes away.
//!
//! ```no_run
//! # async fn demo() -> flakeguard_db::Result<()> {
//! let db = flakeguard_db::testing::TestDatabase::new().await?;
//! let conn = db.connect().await?;
//! // ... use `conn`, or hand `db.url()` to the code under test ...
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! Crates that start a temporary server exist, but none fits this machine's constraints: they
//! download binaries (no network here), or require `sudo` to leave root and panic on every
//! failure. What is written here is the part no crate does: find the installed binaries, drop
//! root through `setpriv`, and tie the server's life to the test process. That tie is a small
//! shell supervisor whose standard input is a pipe from this process: when the process ends for
//! any reason the pipe closes, and the supervisor stops the server and deletes its directory.
//! A `static` server could not do this itself, since statics are never dropped. The same pipe
//! carries the one command the supervisor knows, `restart`, which it acknowledges on its
//! standard output.

mod citus;
mod database;
mod server;
mod supervisor;
mod trips;

use std::net::TcpListener;
use std::process::Command;
use std::sync::Mutex;

pub use citus::{CITUS_WORKERS, CitusDatabase, citus_library};
pub use database::TestDatabase;
pub use trips::TripCounter;

use crate::{Error, Result};

/// The application role of tests: LOGIN, member of `flakeguard_app`, password = name.
pub const APP_ROLE: &str = "flakeguard_test_app";

/// The cross-tenant role of tests: LOGIN, BYPASSRLS, member of `flakeguard_app`,
/// password = name.
pub const PLATFORM_ROLE: &str = "flakeguard_test_platform";

/// The database of an example program: with DATABASE_URL set, that database, migrated (the
/// URL's role must be allowed to migrate); otherwise a throwaway one, connected as [`APP_ROLE`]
/// so that row-level security applies. Prints which. Keep the returned [`TestDatabase`] alive
/// while the connection is in use: dropping it removes the throwaway database.
pub async fn connect_example() -> Result<(crate::Db, Option<TestDatabase>)> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => {
            println!("using DATABASE_URL");
            let db = crate::connect(url.trim()).await?;
            crate::migrate(&db).await?;
            println!("schema migrated");
            Ok((db, None))
        }
        _ => {
            println!("starting a throwaway PostgreSQL (set DATABASE_URL to use your own server)");
            let tmp = TestDatabase::new().await?;
            println!("  database {} migrated", tmp.name());
            let db = crate::Db::new(tmp.connect_as_app().await?);
            println!("  connected as {APP_ROLE}, a member of flakeguard_app");
            Ok((db, Some(tmp)))
        }
    }
}

/// Whether this process runs as root (whose servers must run as another OS user).
pub fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| io_error("cannot find a free port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| io_error("cannot find a free port", e))
}

pub(crate) fn io_error(message: &str, source: std::io::Error) -> Error {
    Error::TestServer {
        message: message.to_owned(),
        source: Some(source),
    }
}

/// A database name no other test (in this or another process) will pick.
/// `url` with `user` and `password` in it.
pub(crate) fn url_with_user(url: &str, user: &str, password: &str) -> Result<String> {
    let mut url = url::Url::parse(url)
        .map_err(|e| Error::Config(format!("database URL does not parse: {e}")))?;
    url.set_username(user)
        .and_then(|()| url.set_password(Some(password)))
        .map_err(|()| Error::Config("database URL cannot carry a user".to_owned()))?;
    Ok(url.into())
}

pub(crate) fn fresh_name(prefix: &str) -> String {
    format!("{prefix}_{}", flakeguard_entity::stamps::new_id())
}

/// Quotes an identifier for PostgreSQL.
pub(crate) fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another test panicked; the value is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An example or test found one organization's data within another's reach.
#[derive(Debug, thiserror::Error)]
#[error("isolation breach: {what}: {outcome}")]
pub struct Breach {
    /// What was attempted.
    pub what: String,
    /// What came back instead of a refusal (debug-formatted).
    pub outcome: String,
}

/// Checks an attempt that must be refused (a write into another organization's data, an input
/// that must not be stored): prints `what: refused: <error>` and returns the error, or returns a
/// [`Breach`] when the attempt succeeded. Examples return it from `main`, so that a breach
/// makes them exit non-zero.
pub fn expect_refused<T: std::fmt::Debug>(
    what: &str,
    result: Result<T>,
) -> std::result::Result<Error, Breach> {
    match result {
        Err(e) => {
            println!("  {what}: refused: {e}");
            Ok(e)
        }
        Ok(v) => Err(Breach {
            what: what.to_owned(),
            outcome: format!("succeeded with {v:?}"),
        }),
    }
}

/// Checks a read that must find nothing of another organization (`found` is what it found,
/// `nothing` whether that is nothing): prints `what: nothing`, or returns a [`Breach`].
pub fn expect_nothing<T: std::fmt::Debug>(
    what: &str,
    found: T,
    nothing: bool,
) -> std::result::Result<(), Breach> {
    if nothing {
        println!("  {what}: nothing ({found:?})");
        Ok(())
    } else {
        Err(Breach {
            what: what.to_owned(),
            outcome: format!("found {found:?}"),
        })
    }
}

/// Runs `sql` on a connection of `db`'s pool as the crate's transactions get them (the
/// pipelined pool's, when `db` is pipelined; see [`Db::is_pipelined`](crate::Db::is_pipelined)),
/// in a transaction of its own with no tenant set; its first row. **No Rust lock and no tenant**:
/// for tests that look at what a pooled connection carries after a scope used it.
pub async fn query_pooled(db: &crate::Db, sql: &str) -> Result<Option<sea_orm::QueryResult>> {
    let ctx = crate::error::Context::new(crate::error::Operation::Raw);
    let stmt = sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql);
    crate::db::in_transaction(db.pool(), &ctx, |tx| {
        Box::pin(sea_orm::ConnectionTrait::query_one_raw(tx, stmt))
    })
    .await
}

/// The tenant setting that a connection of `db`'s pool carries outside any scope (`None` when
/// it carries none, as it always should), read by [`query_pooled`]. A connection handed back
/// with a transaction still open would show that transaction's tenant here.
pub async fn pooled_tenant(db: &crate::Db) -> Result<Option<String>> {
    let row = query_pooled(
        db,
        "SELECT current_setting('app.current_tenant_id', true) AS t",
    )
    .await?;
    let tenant = match row {
        Some(row) => row.try_get::<Option<String>>("", "t").map_err(|e| {
            Error::from_db(crate::error::Context::new(crate::error::Operation::Raw), e)
        })?,
        None => None,
    };
    Ok(tenant.filter(|t| !t.is_empty()))
}

#[cfg(test)]
mod breach_tests {
    use super::*;

    #[test]
    fn a_write_that_went_through_or_a_read_that_found_something_is_a_breach() {
        let written: Result<u64> = Ok(1);
        let breach = expect_refused("write B's row", written).unwrap_err();
        assert_eq!(
            breach.to_string(),
            "isolation breach: write B's row: succeeded with 1"
        );
        let refused: Result<u64> = Err(Error::Config("no".into()));
        assert!(matches!(
            expect_refused("write B's row", refused),
            Ok(Error::Config(_))
        ));
        assert!(expect_nothing("read B's row", Some("row"), false).is_err());
        assert!(expect_nothing("read B's row", None::<&str>, true).is_ok());
    }
}
