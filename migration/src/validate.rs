//! `validate` and `adopt`: proving that a live database holds this crate's schema.
//!
//! # Design
//!
//! The expectations come from the crate's own code, never from hand-written totals: the
//! migrations are applied, step by step, to a scratch database on the same server, and the
//! catalog of each step is the reference (every table, column with type, nullability and
//! default, index, unique constraint, foreign key with its on-delete rule, enum, policy and
//! grant, each by name). The entities add what they declare: their columns and types, and which
//! tables hold tenant data and so need row-level security and have an "orgId" to check for
//! NULLs. The scratch database needs the CREATEDB privilege; it is dropped afterwards.

use std::collections::BTreeSet;

use flakeguard_entity::tenancy::TenantClass;
use sea_orm_migration::MigratorTrait;
use sea_orm_migration::sea_orm::sqlx::{PgPool, postgres::PgPoolOptions};
use sea_orm_migration::sea_orm::{
    ColumnType, ConnectionTrait, DatabaseConnection, DbErr, SqlxPostgresConnector, Statement,
    TransactionTrait,
};

use crate::Migrator;
use crate::catalog::{self, Schema};
use crate::runner::{self, MigrateError, MigrationLock};

/// The schema after each step, built from the migrations on a scratch database.
#[derive(Debug, Clone)]
pub struct Reference {
    /// `(step name, catalog after that step)`, in order.
    pub steps: Vec<(String, Schema)>,
}

impl Reference {
    /// The catalog after the last step.
    pub fn latest(&self) -> Option<&Schema> {
        self.steps.last().map(|(_, s)| s)
    }
}

/// The outcome of [`validate`].
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// What was checked, with how many of each, in the order checked.
    pub checked: Vec<(&'static str, usize)>,
    /// Every problem found, one line each; empty when the database is correct.
    pub problems: Vec<String>,
}

impl Report {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn db_err(operation: &'static str) -> impl FnOnce(DbErr) -> MigrateError {
    move |source| MigrateError::Database { operation, source }
}

fn sqlx_err(
    operation: &'static str,
) -> impl FnOnce(sea_orm_migration::sea_orm::sqlx::Error) -> MigrateError {
    move |e| MigrateError::Database {
        operation,
        source: DbErr::Conn(sea_orm_migration::sea_orm::RuntimeErr::SqlxError(e.into())),
    }
}

/// Applies the migrations step by step to a scratch database on `db`'s server and returns the
/// catalog after each step. The scratch database is dropped afterwards, also on failure.
pub async fn reference(db: &DatabaseConnection) -> Result<Reference, MigrateError> {
    let name = format!(
        "flakeguard_reference_{}",
        flakeguard_entity::stamps::new_id()
    );
    db.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .map_err(|source| MigrateError::Database {
            operation: "create a scratch database for the reference schema (needs CREATEDB)",
            source,
        })?;
    let built = build_reference(db, &name).await;
    let dropped = db
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .map_err(db_err("drop the scratch database"));
    let reference = built?;
    dropped?;
    Ok(reference)
}

async fn build_reference(db: &DatabaseConnection, name: &str) -> Result<Reference, MigrateError> {
    let options = db
        .get_postgres_connection_pool()
        .connect_options()
        .as_ref()
        .clone()
        .database(name);
    let pool: PgPool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .map_err(sqlx_err("connect to the scratch database"))?;
    let scratch = SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
    let mut steps = Vec::new();
    let result = async {
        for step in runner::step_names() {
            Migrator::up(&scratch, Some(1))
                .await
                .map_err(|source| MigrateError::Step {
                    step: step.clone(),
                    direction: "up",
                    source,
                })?;
            let snapshot = catalog::read(&scratch)
                .await
                .map_err(db_err("read the reference catalog"))?;
            steps.push((step, snapshot));
        }
        Ok(())
    }
    .await;
    let _ = scratch.close().await;
    result.map(|()| Reference { steps })
}

/// Checks the live database `db` against this crate's migrations and entities.
///
/// Checks every table, column (type, nullability, default), primary key, unique constraint,
/// index, foreign key (with its on-delete rule), extended statistics object and enum under its
/// name; row-level security
/// enabled, forced and with its policies on every table of tenant data; the grants of
/// `flakeguard_app`; the entities against the columns (drift); no NULL "orgId" in tenant tables;
/// and a complete migration history. On a database distributed on Citus (`distribute`) it
/// checks the Citus variant of the schema instead (docs/SCHEMA.md's last addendum), and the
/// distribution itself: tenant tables distributed by "orgId" in one co-location group, the
/// others reference tables, and `citus.propagate_set_commands`.
pub async fn validate(db: &DatabaseConnection) -> Result<Report, MigrateError> {
    let reference = reference(db).await?;
    validate_against(db, &reference).await
}

/// [`validate`] against a reference already built.
pub async fn validate_against(
    db: &DatabaseConnection,
    reference: &Reference,
) -> Result<Report, MigrateError> {
    let single = reference.latest().cloned().unwrap_or_default();
    let distributed = crate::distribute::is_distributed(db).await?;
    let expected = if distributed {
        crate::distribute::citus_variant(&single)
    } else {
        single
    };
    let live = catalog::read(db)
        .await
        .map_err(db_err("read the catalog"))?;
    let mut report = Report::default();

    report.problems.extend(catalog::diff(&expected, &live));
    report.checked.push(("tables", expected.tables.len()));
    report
        .checked
        .push(("columns", expected.count(|t| t.columns.len())));
    report
        .checked
        .push(("primary keys", expected.count(|t| t.primary_key.len())));
    report
        .checked
        .push(("unique constraints", expected.count(|t| t.uniques.len())));
    report
        .checked
        .push(("indexes", expected.count(|t| t.indexes.len())));
    report
        .checked
        .push(("foreign keys", expected.count(|t| t.foreign_keys.len())));
    report.checked.push((
        "extended statistics",
        expected.count(|t| t.statistics.len()),
    ));
    report.checked.push(("enums", expected.enums.len()));
    report.checked.push((
        "row-level security policies",
        expected.security.values().map(|s| s.policies.len()).sum(),
    ));

    let (rls, grants) = check_security(&live, &mut report.problems);
    report
        .checked
        .push(("tables under forced row-level security", rls));
    report
        .checked
        .push(("tables granted to flakeguard_app", grants));

    let drift = drift(&live);
    report.checked.push((
        "entity columns",
        flakeguard_entity::TABLES
            .iter()
            .map(|t| (t.columns)().len())
            .sum(),
    ));
    report.problems.extend(drift);

    let tenant_tables = check_null_org_ids(db, &live, &mut report.problems).await?;
    report.checked.push((
        "tenant and child tables without NULL \"orgId\"",
        tenant_tables,
    ));

    let steps = check_history(db, &mut report.problems).await?;
    report.checked.push(("migration steps recorded", steps));
    if distributed {
        let (problems, tables) = crate::distribute::check_distribution(db, &expected).await?;
        report.problems.extend(problems);
        report
            .checked
            .push(("tables distributed or replicated as on Citus", tables));
    }
    Ok(report)
}

/// Row-level security on every table of tenant data, and the application role's grants on every
/// table, as the entities declare them. Returns how many tables each check covered.
fn check_security(live: &Schema, problems: &mut Vec<String>) -> (usize, usize) {
    let (mut rls, mut grants) = (0, 0);
    for t in flakeguard_entity::TABLES {
        let sec = live.security.get(t.name).cloned().unwrap_or_default();
        if t.class.is_tenant_data() {
            rls += 1;
            if !(sec.enabled && sec.forced) {
                problems.push(format!(
                    "{}: row-level security must be enabled and forced (enabled: {}, forced: {})",
                    t.name, sec.enabled, sec.forced
                ));
            }
            if sec.policies.is_empty() {
                problems.push(format!("{}: no row-level security policy", t.name));
            }
        }
        grants += 1;
        let have: BTreeSet<&str> = sec.app_grants.split(',').collect();
        for privilege in ["DELETE", "INSERT", "SELECT", "UPDATE"] {
            if !have.contains(privilege) {
                problems.push(format!("{}: flakeguard_app lacks {privilege}", t.name));
            }
        }
    }
    (rls, grants)
}

/// The entities against the database's columns: a column missing on either side, or a type or
/// nullability that differs, is a problem.
pub fn drift(live: &Schema) -> Vec<String> {
    let mut problems = Vec::new();
    for t in flakeguard_entity::TABLES {
        let Some(table) = live.tables.get(t.name) else {
            problems.push(format!(
                "drift: entity table {} missing in the database",
                t.name
            ));
            continue;
        };
        let columns = (t.columns)();
        for (name, def) in &columns {
            let Some(col) = table.columns.get(*name) else {
                problems.push(format!(
                    "drift: {}.{name} is in the entity but not in the database",
                    t.name
                ));
                continue;
            };
            let ty = entity_sql_type(def.get_column_type());
            if ty != col.sql_type {
                problems.push(format!(
                    "drift: {}.{name} is {ty} in the entity, {} in the database",
                    t.name, col.sql_type
                ));
            }
            if def.is_null() != col.nullable {
                problems.push(format!(
                    "drift: {}.{name} is {} in the entity, {} in the database",
                    t.name,
                    nullability(def.is_null()),
                    nullability(col.nullable)
                ));
            }
        }
        for name in table.columns.keys() {
            if !columns.iter().any(|(c, _)| c == name) {
                problems.push(format!(
                    "drift: {}.{name} is in the database but not in the entity",
                    t.name
                ));
            }
        }
    }
    problems
}

fn nullability(nullable: bool) -> &'static str {
    if nullable { "nullable" } else { "NOT NULL" }
}

/// An entity column type in the catalog's spelling (see [`catalog::normalize_type`]).
fn entity_sql_type(ty: &ColumnType) -> String {
    match ty {
        ColumnType::String(_) | ColumnType::Text | ColumnType::Char(_) => "text".to_owned(),
        ColumnType::BigInteger => "bigint".to_owned(),
        ColumnType::Integer => "integer".to_owned(),
        ColumnType::SmallInteger => "smallint".to_owned(),
        ColumnType::Double => "double precision".to_owned(),
        ColumnType::Float => "real".to_owned(),
        ColumnType::Boolean => "boolean".to_owned(),
        ColumnType::Json => "json".to_owned(),
        ColumnType::JsonBinary => "jsonb".to_owned(),
        ColumnType::TimestampWithTimeZone => "timestamptz".to_owned(),
        ColumnType::Timestamp | ColumnType::DateTime => "timestamp without time zone".to_owned(),
        ColumnType::Array(inner) => format!("{}[]", entity_sql_type(inner)),
        ColumnType::Enum { name, .. } => name.to_string(),
        other => format!("{other:?}"),
    }
}

/// Counts NULL "orgId" in every tenant and child table (as a role that sees past row-level security), or,
/// for a role that cannot, relies on the NOT NULL constraint the schema check verified.
async fn check_null_org_ids(
    db: &DatabaseConnection,
    live: &Schema,
    problems: &mut Vec<String>,
) -> Result<usize, MigrateError> {
    let mut checked = 0;
    for t in flakeguard_entity::TABLES
        .iter()
        .filter(|t| matches!(t.class, TenantClass::Tenant | TenantClass::Child { .. }))
    {
        checked += 1;
        let Some(col) = live
            .tables
            .get(t.name)
            .and_then(|tb| tb.columns.get("orgId"))
        else {
            problems.push(format!("{}: no \"orgId\" column", t.name));
            continue;
        };
        let tx = db.begin().await.map_err(db_err("begin"))?;
        let counted = async {
            tx.execute_unprepared("SET LOCAL row_security = off")
                .await?;
            tx.query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!(
                    r#"SELECT count(*) AS n FROM "{}" WHERE "orgId" IS NULL"#,
                    t.name
                ),
            ))
            .await
        }
        .await;
        let _ = tx.rollback().await;
        match counted {
            Ok(Some(row)) => {
                let n: i64 = row.try_get("", "n").map_err(db_err("count NULL orgId"))?;
                if n > 0 {
                    problems.push(format!("{}: {n} rows with NULL \"orgId\"", t.name));
                }
            }
            Ok(None) => problems.push(format!(
                "{}: counting NULL \"orgId\" returned no row",
                t.name
            )),
            // 42501: the role is subject to row-level security and may not look past it
            // (`row_security = off` refuses); the NOT NULL constraint answers instead.
            Err(e) if sql_state(&e).as_deref() == Some("42501") => {
                if col.nullable {
                    problems.push(format!(
                        "{}: \"orgId\" is nullable and this role cannot count NULLs past \
                         row-level security",
                        t.name
                    ));
                }
            }
            // Anything else (a lost connection, a missing table) is a problem, not a pass.
            Err(e) => problems.push(format!("{}: could not count NULL \"orgId\": {e}", t.name)),
        }
    }
    Ok(checked)
}

/// The names in `seaql_migrations`, in order (empty if the table does not exist).
async fn recorded_steps(db: &DatabaseConnection) -> Result<Option<Vec<String>>, MigrateError> {
    let exists = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT to_regclass('public.seaql_migrations') IS NOT NULL AS e",
        ))
        .await
        .map_err(db_err("read history"))?
        .map(|r| r.try_get::<bool>("", "e"))
        .transpose()
        .map_err(db_err("read history"))?
        .unwrap_or(false);
    if !exists {
        return Ok(None);
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM seaql_migrations ORDER BY version",
        ))
        .await
        .map_err(db_err("read history"))?;
    rows.iter()
        .map(|r| r.try_get::<String>("", "version"))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
        .map_err(db_err("read history"))
}

async fn check_history(
    db: &DatabaseConnection,
    problems: &mut Vec<String>,
) -> Result<usize, MigrateError> {
    let expected = runner::step_names();
    let recorded = recorded_steps(db).await?.unwrap_or_default();
    for step in &expected {
        if !recorded.contains(step) {
            problems.push(format!("migration history: step {step} not recorded"));
        }
    }
    for step in &recorded {
        if !expected.contains(step) {
            problems.push(format!("migration history: unknown step {step} recorded"));
        }
    }
    Ok(recorded.len())
}

/// The outcome of [`adopt`].
#[derive(Debug, Clone)]
pub enum Adoption {
    /// The schema matched the one after `recorded.last()`; those steps are now recorded as
    /// applied. `pending` steps remain for `up`.
    Adopted {
        /// The steps recorded as applied.
        recorded: Vec<String>,
        /// The steps still to apply.
        pending: Vec<String>,
    },
    /// The schema matches no step; nothing was recorded. The problems are against the latest
    /// step.
    Refused {
        /// Every difference from the latest schema.
        problems: Vec<String>,
    },
}

/// Adopts a database that already holds this schema but has no migration history (created by
/// another tool from the same schema): if its catalog matches the schema after some step, that
/// step and the ones before it are recorded as applied, without touching any data. A database
/// that matches no step is refused and nothing is written.
pub async fn adopt(db: &DatabaseConnection) -> Result<Adoption, MigrateError> {
    let lock = MigrationLock::acquire(db).await?;
    let result = adopt_locked(db).await;
    lock.release().await;
    result
}

async fn adopt_locked(db: &DatabaseConnection) -> Result<Adoption, MigrateError> {
    if let Some(recorded) = recorded_steps(db).await?
        && !recorded.is_empty()
    {
        return Ok(Adoption::Refused {
            problems: vec![format!(
                "the database already records {} migration steps; use validate instead",
                recorded.len()
            )],
        });
    }
    let reference = reference(db).await?;
    let live = catalog::read(db)
        .await
        .map_err(db_err("read the catalog"))?;
    let matched = reference
        .steps
        .iter()
        .rposition(|(_, schema)| catalog::diff(schema, &live).is_empty());
    let Some(k) = matched else {
        let latest = reference.latest().cloned().unwrap_or_default();
        return Ok(Adoption::Refused {
            problems: catalog::diff(&latest, &live),
        });
    };
    if k + 1 == reference.steps.len() {
        // The whole schema: everything validate checks must hold, history aside.
        let report = validate_against(db, &reference).await?;
        let problems: Vec<String> = report
            .problems
            .into_iter()
            .filter(|p| !p.starts_with("migration history:"))
            .collect();
        if !problems.is_empty() {
            return Ok(Adoption::Refused { problems });
        }
    }
    let recorded: Vec<String> = reference.steps[..=k]
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    Migrator::install(db)
        .await
        .map_err(db_err("create the history table"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let tx = db.begin().await.map_err(db_err("begin"))?;
    for step in &recorded {
        tx.execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "INSERT INTO seaql_migrations (version, applied_at) VALUES ($1, $2)",
            [step.clone().into(), now.into()],
        ))
        .await
        .map_err(db_err("record the history"))?;
    }
    tx.commit().await.map_err(db_err("record the history"))?;
    let pending = reference.steps[k + 1..]
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    Ok(Adoption::Adopted { recorded, pending })
}

/// The SQLSTATE of a driver error, if the server sent one.
fn sql_state(err: &DbErr) -> Option<String> {
    match err {
        DbErr::Exec(sea_orm_migration::sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Query(sea_orm_migration::sea_orm::RuntimeErr::SqlxError(e)) => match e.as_ref() {
            sea_orm_migration::sea_orm::sqlx::Error::Database(db) => {
                db.code().map(|c| c.into_owned())
            }
            _ => None,
        },
        _ => None,
    }
}
