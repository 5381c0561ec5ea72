//! The crate's one error type.

use std::fmt;
#[cfg(feature = "testing")]
use std::path::PathBuf;

use sea_orm::DbErr;

use crate::OrgId;

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the crate was doing when an error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Opening a connection.
    Connect,
    /// Applying migrations.
    Migrate,
    /// Starting a transaction and setting the tenant.
    Begin,
    /// Committing a transaction.
    Commit,
    /// A read: find, find by id, page.
    Find,
    /// A count.
    Count,
    /// Inserting one row.
    Insert,
    /// Inserting many rows.
    InsertMany,
    /// Updating one row.
    Update,
    /// Updating many rows.
    UpdateMany,
    /// Deleting one row.
    Delete,
    /// Deleting many rows.
    DeleteMany,
    /// Insert, or update on a unique conflict.
    Upsert,
    /// Raw SQL run inside a scope.
    Raw,
    /// Turning caller input (JSON) into a row.
    Parse,
    /// A unit of work of several operations ([`TenantScope::transaction`](crate::TenantScope::transaction)).
    Transaction,
    /// Administration of databases (test support).
    #[cfg(feature = "testing")]
    Admin,
}

impl Operation {
    /// Whether the operation writes rows of its table (insert, update, upsert; not delete).
    fn writes_rows(self) -> bool {
        matches!(
            self,
            Operation::Insert
                | Operation::InsertMany
                | Operation::Update
                | Operation::UpdateMany
                | Operation::Upsert
        )
    }

    /// Whether the operation only reads ([`Operation::Find`], [`Operation::Count`]): its
    /// transaction has nothing to commit and ends with a queued rollback.
    pub(crate) fn reads_only(self) -> bool {
        matches!(self, Operation::Find | Operation::Count)
    }
}

impl Operation {
    /// The operation's name, as errors and tracing spans show it (`insert many`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Operation::Connect => "connect",
            Operation::Migrate => "migrate",
            Operation::Begin => "begin",
            Operation::Commit => "commit",
            Operation::Find => "find",
            Operation::Count => "count",
            Operation::Insert => "insert",
            Operation::InsertMany => "insert many",
            Operation::Update => "update",
            Operation::UpdateMany => "update many",
            Operation::Delete => "delete",
            Operation::DeleteMany => "delete many",
            Operation::Upsert => "upsert",
            Operation::Raw => "raw sql",
            Operation::Parse => "parse",
            Operation::Transaction => "transaction",
            #[cfg(feature = "testing")]
            Operation::Admin => "admin",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an error happened: the operation, and the tenant and table when there are any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// What the crate was doing.
    pub operation: Operation,
    /// The tenant the operation ran for, if any.
    pub tenant: Option<OrgId>,
    /// The table the operation concerned, if any.
    pub table: Option<&'static str>,
}

impl Context {
    /// A context with neither tenant nor table.
    pub fn new(operation: Operation) -> Self {
        Context {
            operation,
            tenant: None,
            table: None,
        }
    }

    /// The same tenant and table, for another operation (the step that failed: begin, commit).
    pub fn with_operation(&self, operation: Operation) -> Self {
        Context {
            operation,
            ..self.clone()
        }
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.operation)?;
        if let Some(table) = self.table {
            write!(f, " on \"{table}\"")?;
        }
        if let Some(tenant) = &self.tenant {
            write!(f, " for tenant {tenant}")?;
        }
        Ok(())
    }
}

/// Why the database refused a row ([`Error::Rejected`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// A NOT NULL column got no value (SQLSTATE 23502).
    MissingValue,
    /// A unique constraint or primary key already holds the value (23505).
    Duplicate,
    /// A foreign key names a row that does not exist (23503).
    MissingReference,
    /// A value of the wrong form: an unknown enum label, malformed JSON, a number out of range
    /// (class 22, and check constraints, 23514).
    InvalidValue,
    /// Row-level security refused the row (42501): it belongs to another tenant, or points at
    /// another tenant's row, or no tenant is set.
    RowLevelSecurity,
}

impl Rejection {
    /// The kind of a PostgreSQL error code, if it is one of these.
    pub fn from_sql_state(code: &str) -> Option<Rejection> {
        Some(match code {
            "23502" => Rejection::MissingValue,
            "23505" => Rejection::Duplicate,
            "23503" => Rejection::MissingReference,
            "23514" => Rejection::InvalidValue,
            "42501" => Rejection::RowLevelSecurity,
            c if c.starts_with("22") => Rejection::InvalidValue,
            _ => return None,
        })
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejection::MissingValue => "missing value",
            Rejection::Duplicate => "duplicate",
            Rejection::MissingReference => "missing reference",
            Rejection::InvalidValue => "invalid value",
            Rejection::RowLevelSecurity => "row-level security",
        })
    }
}

/// Everything that can go wrong in `flakeguard-db`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tenant id was empty, too long, or held a character outside `[A-Za-z0-9_-]`.
    #[error("invalid tenant id {shown}: {reason}")]
    InvalidTenantId {
        /// The refused input, escaped and cut to 80 characters.
        shown: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A write would have touched another organization's data; nothing was written.
    #[error("{context}: refused: {reason}")]
    TenantDenied {
        /// The tenant, table and operation.
        context: Context,
        /// What the write named that belongs elsewhere (never another tenant's data).
        reason: String,
    },

    /// The row to update or delete does not exist for this tenant (it may not exist at all, or
    /// belong to another organization: the two are not told apart).
    #[error("{context}: no such row")]
    NotFound {
        /// The tenant, table and operation.
        context: Context,
    },

    /// The tenant's organization does not exist.
    #[error("{context}: organization {tenant} does not exist", tenant = context.tenant.as_ref().map(OrgId::as_str).unwrap_or("?"))]
    UnknownOrganization {
        /// The tenant, table and operation.
        context: Context,
    },

    /// A value the caller supplied cannot be written (a missing required field, a malformed
    /// value); nothing was written.
    #[error("{context}: invalid input: {reason}")]
    InvalidInput {
        /// The tenant, table and operation.
        context: Context,
        /// What is wrong with it.
        reason: String,
    },

    /// The database refused a row: a required value missing, a duplicate key, a reference to a
    /// row that does not exist, a malformed value, or row-level security. Nothing was written.
    #[error("{context}: rejected ({kind}): {message}", message = pg_message(source))]
    Rejected {
        /// The tenant, table and operation.
        context: Context,
        /// Which rule refused the row.
        kind: Rejection,
        /// The driver's error: PostgreSQL's message and detail quote only what the caller sent.
        #[source]
        source: DbErr,
    },

    /// A transaction's scope was still in use (cloned and kept) when the transaction ended; it
    /// was rolled back, and the clones fail with [`Error::TransactionEnded`] from then on.
    #[error("{context}: the transaction's scope was still in use when it ended; rolled back")]
    TransactionInUse {
        /// The tenant and operation.
        context: Context,
    },

    /// A scope bound to a transaction was used after that transaction had ended (a clone kept
    /// past [`TenantScope::transaction`](crate::TenantScope::transaction)); nothing was sent.
    #[error("{context}: the transaction this scope belonged to has ended")]
    TransactionEnded {
        /// The tenant, table and operation that was attempted.
        context: Context,
    },

    /// A statement inside the transaction failed, so PostgreSQL aborted the transaction: it was
    /// rolled back and nothing of it is stored, although the closure returned `Ok` (it ignored
    /// the error). Run a statement that may fail in a nested
    /// [`transaction`](crate::TenantScope::transaction) (a savepoint) to recover from it.
    #[error(
        "{context}: rolled back, nothing stored: a statement of the transaction failed \
         ({failed}) and the transaction could not commit"
    )]
    TransactionAborted {
        /// The tenant and the transaction.
        context: Context,
        /// The first statement that failed: its operation and table.
        failed: Context,
    },

    /// Applying or rolling back migrations failed (the error names the step).
    #[error(transparent)]
    Migration(#[from] flakeguard_migration::runner::MigrateError),

    /// The database refused or failed an operation.
    #[error("{context}: {source}")]
    Database {
        /// The tenant, table and operation.
        context: Context,
        /// The driver's error.
        #[source]
        source: DbErr,
    },

    /// The PostgreSQL server programs needed for a throwaway server were not found.
    #[cfg(feature = "testing")]
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

    /// The Citus extension, needed for a throwaway Citus cluster, is not installed for the
    /// PostgreSQL binaries that were found.
    #[cfg(feature = "testing")]
    #[error(
        "Citus is not installed for this PostgreSQL ({searched} does not exist); build and \
         install Citus for it (README, \"Scaling out\") to run the Citus tests",
        searched = searched.display()
    )]
    CitusNotFound {
        /// Where the Citus library was looked for.
        searched: PathBuf,
    },

    /// A throwaway PostgreSQL server could not be started.
    #[cfg(feature = "testing")]
    #[error("throwaway PostgreSQL server: {message}")]
    TestServer {
        /// What failed, with the server's own output where there is any.
        message: String,
        /// The underlying I/O error, if any.
        #[source]
        source: Option<std::io::Error>,
    },

    /// A configuration value (such as a database URL or the role of a connection) is wrong.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    /// Wraps a driver error with the operation that produced it (no tenant, no table), mapped
    /// as every driver error is (see [`Error::from_db`]).
    pub fn database(operation: Operation, source: DbErr) -> Self {
        Error::from_db(Context::new(operation), source)
    }

    /// The crate's one mapping of a driver error, for every handle: a missing row is
    /// [`Error::NotFound`]; a violation of a composite tenant key (`"<table>_orgId_<col>_fkey"`)
    /// is [`Error::TenantDenied`]; a foreign-key violation on `"<table>_orgId_fkey"` while
    /// writing rows of that table is [`Error::UnknownOrganization`]; a refused row (SQLSTATE classes 22
    /// and 23, and 42501) is [`Error::Rejected`] with its [`Rejection`]; anything else is
    /// [`Error::Database`]. Only SQLSTATEs and constraint names are read, never message text,
    /// so a server with localised messages gives the same errors.
    pub fn from_db(context: Context, source: DbErr) -> Self {
        if matches!(source, DbErr::RecordNotUpdated | DbErr::RecordNotFound(_)) {
            return Error::NotFound { context };
        }
        if let Some(pg) = pg_error(&source) {
            // A composite tenant key (`<table>_orgId_<col>_fkey`, migration step 8): the row
            // points at a row of another organization, or at none.
            if pg.code() == "23503"
                && let (Some(table), Some(constraint)) = (pg.table(), pg.constraint())
                && let Some(col) = constraint
                    .strip_prefix(table)
                    .and_then(|c| c.strip_prefix("_orgId_"))
                    .and_then(|c| c.strip_suffix("_fkey"))
                && !col.is_empty()
            {
                return Error::TenantDenied {
                    reason: format!(
                        "\"{col}\" references a row that this organization does not have \
                         (refused by the tenant key {constraint})"
                    ),
                    context,
                };
            }
            if pg.code() == "23503"
                && context.operation.writes_rows()
                && context
                    .table
                    .zip(pg.constraint())
                    .is_some_and(|(table, c)| c == format!("{table}_orgId_fkey"))
            {
                return Error::UnknownOrganization { context };
            }
            if let Some(kind) = Rejection::from_sql_state(pg.code()) {
                return Error::Rejected {
                    context,
                    kind,
                    source,
                };
            }
        }
        Error::Database { context, source }
    }

    /// A short name of the error's kind (`not_found`, `tenant_denied`, ...), as tracing spans
    /// record it in their `outcome` field.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Error::InvalidTenantId { .. } => "invalid_tenant_id",
            Error::TenantDenied { .. } => "tenant_denied",
            Error::NotFound { .. } => "not_found",
            Error::UnknownOrganization { .. } => "unknown_organization",
            Error::InvalidInput { .. } => "invalid_input",
            Error::Rejected { .. } => "rejected",
            Error::TransactionInUse { .. } => "transaction_in_use",
            Error::TransactionEnded { .. } => "transaction_ended",
            Error::TransactionAborted { .. } => "transaction_aborted",
            Error::Migration(_) => "migration",
            Error::Database { .. } => "database",
            #[cfg(feature = "testing")]
            Error::PostgresNotFound { .. }
            | Error::CitusNotFound { .. }
            | Error::TestServer { .. } => "test_server",
            Error::Config(_) => "config",
        }
    }

    /// The tenant, table and operation this error concerns, where it has them.
    pub fn context(&self) -> Option<&Context> {
        match self {
            Error::TenantDenied { context, .. }
            | Error::NotFound { context }
            | Error::UnknownOrganization { context }
            | Error::InvalidInput { context, .. }
            | Error::TransactionInUse { context }
            | Error::TransactionEnded { context }
            | Error::TransactionAborted { context, .. }
            | Error::Rejected { context, .. }
            | Error::Database { context, .. } => Some(context),
            _ => None,
        }
    }

    /// The driver error behind this error, if there is one.
    pub fn db_err(&self) -> Option<&DbErr> {
        match self {
            Error::Database { source, .. } | Error::Rejected { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Why the database refused the row, for [`Error::Rejected`].
    pub fn rejection(&self) -> Option<Rejection> {
        match self {
            Error::Rejected { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Whether a write was refused for touching another tenant's data, by this crate or by
    /// row-level security in the database.
    pub fn is_tenant_denied(&self) -> bool {
        matches!(self, Error::TenantDenied { .. }) || self.sql_state() == Some("42501")
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

    /// Whether the database could not be reached or the connection broke.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self.db_err(),
            Some(DbErr::Conn(_) | DbErr::ConnectionAcquire(_))
        ) || matches!(self.sql_state(), Some(s) if s.starts_with("08") || s.starts_with("57P"))
            || matches!(
                self.sqlx(),
                Some(
                    sea_orm::sqlx::Error::Io(_)
                        | sea_orm::sqlx::Error::PoolTimedOut
                        | sea_orm::sqlx::Error::PoolClosed
                )
            )
    }

    /// Whether running the same unit of work again may succeed, unchanged: the connection
    /// broke or the server shut down ([`Error::is_connection_error`]), the transaction lost a
    /// serialization or deadlock conflict (SQLSTATE 40001, 40P01), a lock was not granted in
    /// time (55P03), or, on Citus, the shard a statement was planned for was split or moved
    /// away meanwhile ([`Error::is_shard_moved`]). A unit of work that failed so wrote nothing,
    /// except where the connection broke while a commit was in flight: then the caller cannot
    /// know, and a retry of an insert may find the row there (a [`Rejection::Duplicate`]).
    pub fn is_retriable(&self) -> bool {
        self.is_connection_error()
            || matches!(self.sql_state(), Some("40001" | "40P01" | "55P03"))
            || self.is_shard_moved()
    }

    /// Whether Citus refused a statement because the shard it was planned for no longer
    /// exists: a tenant was isolated to a shard of its own, or a shard moved, while the
    /// statement was on its way (`flakeguard-migration isolate-tenant`). Citus reports it as an
    /// internal error (SQLSTATE XX000, "could not find valid entry for shard ..."); the
    /// transaction is aborted, and the same unit of work succeeds when run again.
    pub fn is_shard_moved(&self) -> bool {
        self.db_err().and_then(pg_error).is_some_and(|pg| {
            pg.code() == "XX000"
                && pg
                    .message()
                    .starts_with("could not find valid entry for shard")
        })
    }

    /// The SQLSTATE code PostgreSQL returned, if this error came from the server.
    pub fn sql_state(&self) -> Option<&str> {
        sql_state(self.db_err()?)
    }

    fn sqlx(&self) -> Option<&sea_orm::sqlx::Error> {
        match self.db_err()? {
            DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
            | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e))
            | DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e)) => Some(e.as_ref()),
            _ => None,
        }
    }
}

/// What PostgreSQL said about a failed statement, on either driver.
pub(crate) struct PgFacts<'a> {
    code: &'a str,
    message: &'a str,
    detail: Option<&'a str>,
    table: Option<&'a str>,
    constraint: Option<&'a str>,
}

impl<'a> PgFacts<'a> {
    pub(crate) fn code(&self) -> &'a str {
        self.code
    }

    fn message(&self) -> &'a str {
        self.message
    }

    fn detail(&self) -> Option<&'a str> {
        self.detail
    }

    fn table(&self) -> Option<&'a str> {
        self.table
    }

    fn constraint(&self) -> Option<&'a str> {
        self.constraint
    }
}

/// PostgreSQL's error for a driver error, if the server sent one (to sqlx, or to the pipelined
/// driver, whose errors travel as sqlx's; src/pipe.rs).
pub(crate) fn pg_error(err: &DbErr) -> Option<PgFacts<'_>> {
    let runtime = match err {
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => e,
        _ => return None,
    };
    let sea_orm::sqlx::Error::Database(db) = runtime.as_ref() else {
        return None;
    };
    let facts = if let Some(pg) = db.try_downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>()
    {
        PgFacts {
            code: pg.code(),
            message: pg.message(),
            detail: pg.detail(),
            table: pg.table(),
            constraint: pg.constraint(),
        }
    } else {
        let pg = &db.try_downcast_ref::<crate::pipe::PipeDbError>()?.0;
        PgFacts {
            code: pg.code().code(),
            message: pg.message(),
            detail: pg.detail(),
            table: pg.table(),
            constraint: pg.constraint(),
        }
    };
    Some(facts.or_relayed_names())
}

impl<'a> PgFacts<'a> {
    /// The table and constraint of an error that Citus relayed from a worker.
    ///
    /// # Design
    ///
    /// Citus passes a worker's error on with its code, message and detail only, without the
    /// table and constraint fields, and the message names the worker's shards:
    /// `insert or update on table "FGTestCase_102110" violates foreign key constraint
    /// "FGTestCase_orgId_repoId_fkey_102110"`. Where both fields are missing, the quoted names
    /// of the message are read instead: the first one that is a table of the schema with a
    /// shard suffix (`_<shard id>`) is the table, and the first one that is not a table, with a
    /// shard suffix of a table named in the same message, is the constraint, without it. A
    /// message that does not read so (a server that translates its messages differently) keeps
    /// both fields empty, and the error is then classified by its code alone.
    fn or_relayed_names(mut self) -> PgFacts<'a> {
        if self.table.is_some() || self.constraint.is_some() || !self.code.starts_with("23") {
            return self;
        }
        fn shard_of(name: &str) -> Option<(&str, &str)> {
            name.rsplit_once('_')
                .filter(|(_, id)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        }
        let quoted: Vec<&'a str> = self.message.split('"').skip(1).step_by(2).collect();
        let is_table = |name: &str| crate::entity::TABLES.iter().any(|t| t.name == name);
        let tables: Vec<(&'a str, &'a str)> = quoted
            .iter()
            .filter_map(|q| shard_of(q))
            .filter(|(base, _)| is_table(base))
            .collect();
        let Some(&(table, _)) = tables.first() else {
            return self;
        };
        self.table = Some(table);
        self.constraint = quoted.iter().find_map(|q| {
            let (base, id) = shard_of(q)?;
            (!is_table(base) && tables.iter().any(|(_, t)| *t == id)).then_some(base)
        });
        self
    }
}

/// PostgreSQL's message and detail of a driver error, or the driver's own text.
fn pg_message(err: &DbErr) -> String {
    match pg_error(err) {
        Some(pg) => match pg.detail() {
            Some(detail) => format!("{} ({detail})", pg.message()),
            None => pg.message().to_owned(),
        },
        None => err.to_string(),
    }
}

/// The SQLSTATE of a driver error, if the server sent one.
pub(crate) fn sql_state(err: &DbErr) -> Option<&str> {
    pg_error(err).map(|pg| pg.code())
}

#[cfg(feature = "testing")]
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
