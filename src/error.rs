//! The crate's one error type.

use std::path::PathBuf;

use sea_orm::DbErr;

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `flakeguard-db`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused or failed an operation.
    #[error("database error during {operation}")]
    Database {
        /// What the crate was doing, for example `migrate` or `create database`.
        operation: String,
        /// The driver's error.
        #[source]
        source: DbErr,
    },

    /// The PostgreSQL server programs needed for a throwaway server were not found.
    #[error(
        "PostgreSQL server binaries (initdb, postgres) not found (looked in: {searched}); \
         install them (Debian/Ubuntu: `apt-get install postgresql`) or set DATABASE_URL \
         to a server on which this user may create databases",
        searched = display_paths(searched)
    )]
    PostgresNotFound {
        /// The directories that were searched.
        searched: Vec<PathBuf>,
    },

    /// A throwaway PostgreSQL server could not be started.
    #[error("throwaway PostgreSQL server: {message}")]
    TestServer {
        /// What failed, with the server's own output where there is any.
        message: String,
        /// The underlying I/O error, if any.
        #[source]
        source: Option<std::io::Error>,
    },

    /// A configuration value (such as DATABASE_URL) is malformed.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    /// Wraps a driver error with the operation that produced it.
    pub fn database(operation: impl Into<String>, source: DbErr) -> Self {
        Error::Database {
            operation: operation.into(),
            source,
        }
    }

    /// The driver error behind this error, if there is one.
    pub fn db_err(&self) -> Option<&DbErr> {
        match self {
            Error::Database { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Whether the database refused a row because of a unique constraint.
    pub fn is_unique_violation(&self) -> bool {
        self.sql_state() == Some("23505")
    }

    /// Whether the database refused a row because of a foreign key.
    pub fn is_foreign_key_violation(&self) -> bool {
        self.sql_state() == Some("23503")
    }

    /// Whether the database refused a row because a NOT NULL column was missing.
    pub fn is_not_null_violation(&self) -> bool {
        self.sql_state() == Some("23502")
    }

    /// The SQLSTATE code PostgreSQL returned, if this error came from the server.
    pub fn sql_state(&self) -> Option<&str> {
        sql_state(self.db_err()?)
    }
}

/// The SQLSTATE of a driver error, if the server sent one.
pub(crate) fn sql_state(err: &DbErr) -> Option<&str> {
    let runtime = match err {
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => e,
        _ => return None,
    };
    match runtime.as_ref() {
        sea_orm::sqlx::Error::Database(db) => db
            .try_downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>()
            .map(|pg| pg.code()),
        _ => None,
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nowhere".to_owned();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
