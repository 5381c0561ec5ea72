//! The FlakeGuard schema history as SeaORM migrations.
//!
//! `flakeguard-migration` holds the nine steps by which the FlakeGuard PostgreSQL schema grew, in
//! order, and the [`Migrator`] that applies them (also available as the `flakeguard-migration`
//! binary): six schema steps, after which the tables match `docs/SCHEMA.md` item for item, then
//! one that puts row-level security on them, one that adds the tenant keys of the contract's
//! addendum, and one that adds the planner's statistics of the second addendum. A database
//! created by any earlier step upgrades without losing a row.
//!
//! 1. [`m20240824_000000_init`]: `User`, `Task`, the `"TaskStatus"` and `"Priority"` enums, and the
//!    GitHub App tables (`Installation`, `Repository`, `CheckRun`, `WorkflowRun`, `WorkflowJob`,
//!    `Artifact`, `FlakeDetection`), without `"orgId"` except the nullable one on `Task`.
//! 2. [`m20240824_000001_enhance_test_models_for_junit_ingestion`]: `TestSuite`, `TestResult`,
//!    `IngestionJob`.
//! 3. [`m20240825_000000_add_flakeguard_core_models`]: the `FG*` tables, `"FGQuarantineState"` and
//!    the link table `_FGFailureClusterToFGTestCase`; `FGFlakeScore` keyed by `"testId"`.
//! 4. [`m20240826_000000_add_organization_tables`]: `Organization`, `OrganizationUser`,
//!    `Subscription`, `AuditLog`, `UsageMetric`, and the default organization `default-org-id`.
//! 5. [`m20240826_000001_add_flakeguard_models`]: NOT NULL `"orgId"` (back-filled with
//!    `default-org-id`) and its foreign key and index on the 14 tenant tables that lacked it;
//!    `FGFlakeScore` re-keyed by `"id"`.
//! 6. [`m20240826_000002_fix_migration_inconsistencies`]: unique constraints re-declared with
//!    `"orgId"` first, and the composite indexes that lead with `"orgId"`.
//! 7. [`m20240827_000000_add_row_level_security`]: the NOLOGIN role `flakeguard_app` and its
//!    privileges, and row-level security, enabled and forced, with one `tenant_isolation` policy on
//!    each of the 25 tables that hold tenant data (every table but `User` and `IngestionJob`): a
//!    connection sees and writes only the rows of the tenant in `app.current_tenant_id`, and
//!    nothing while that is unset.
//! 8. [`m20240828_000000_add_tenant_keys`]: "orgId" on the five child tables, composite tenant
//!    foreign keys `("orgId", "<col>") REFERENCES "<Parent>" ("orgId", "id")` on every reference
//!    between tenant data, policies without subqueries, `Task."orgId"`'s foreign key, and NULLS
//!    NOT DISTINCT on the unique constraints over nullable columns.
//! 9. [`m20240829_000000_add_tenant_statistics`]: extended statistics on ("orgId", "repoId") of
//!    `FGTestCase`, `FGWorkflowRun` and `FGFailureCluster`, so that the planner knows a
//!    repository belongs to one organization.
//!
//! Every step has a `down` that undoes exactly that step. Each step runs in its own transaction on
//! PostgreSQL. Apply them through [`runner`] (or the binary), which holds an advisory lock so that
//! two migrators started at once run one after the other, and names the step that failed;
//! [`validate`] proves a live database holds the schema and adopts one built by another tool;
//! [`catalog`] is the snapshot both compare; [`distribute`] turns the migrated schema on a
//! Citus coordinator into the distributed one, and [`isolate`] gives an organization that
//! outgrew its shard one of its own, on another worker.
//!
//! A step that has been released is never edited: a new change to the schema is a new module,
//! named `mYYYYMMDD_HHMMSS_name`, appended to [`Migrator::migrations`].
//!
//! ```no_run
//! use flakeguard_migration::{Migrator, MigratorTrait};
//! # async fn run(db: &sea_orm_migration::sea_orm::DatabaseConnection) -> Result<(), flakeguard_migration::DbErr> {
//! flakeguard_migration::runner::up(db, None).await?; // apply every pending step, under the lock
//! # Ok(())
//! # }
//! ```

pub use sea_orm_migration::prelude::*;

/// Implements `MigrationTrait` for the module's `Migration` as two SQL scripts: `up` and `down`
/// are expressions giving the SQL text, run in the step's transaction.
macro_rules! sql_step {
    (up = $up:expr, down = $down:expr $(,)?) => {
        #[async_trait::async_trait]
        impl MigrationTrait for Migration {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager
                    .get_connection()
                    .execute_unprepared($up)
                    .await
                    .map(|_| ())
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager
                    .get_connection()
                    .execute_unprepared($down)
                    .await
                    .map(|_| ())
            }
        }
    };
}

pub mod catalog;
pub mod distribute;
pub mod isolate;
pub mod runner;
pub mod validate;

pub mod m20240824_000000_init;
pub mod m20240824_000001_enhance_test_models_for_junit_ingestion;
pub mod m20240825_000000_add_flakeguard_core_models;
pub mod m20240826_000000_add_organization_tables;
pub mod m20240826_000001_add_flakeguard_models;
pub mod m20240826_000002_fix_migration_inconsistencies;
pub mod m20240827_000000_add_row_level_security;
pub mod m20240828_000000_add_tenant_keys;
pub mod m20240829_000000_add_tenant_statistics;

/// The FlakeGuard migrator: the schema's history (steps 1 to 6), row-level security (7), the
/// tenant keys (8) and the planner's statistics (9), in order.
///
/// Use it through [`MigratorTrait`]: `Migrator::up(&db, None)` applies every pending step,
/// `Migrator::down(&db, Some(1))` rolls the last one back, `Migrator::status(&db)` lists them.
/// Applied steps are recorded in SeaORM's own `seaql_migrations` table.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20240824_000000_init::Migration),
            Box::new(m20240824_000001_enhance_test_models_for_junit_ingestion::Migration),
            Box::new(m20240825_000000_add_flakeguard_core_models::Migration),
            Box::new(m20240826_000000_add_organization_tables::Migration),
            Box::new(m20240826_000001_add_flakeguard_models::Migration),
            Box::new(m20240826_000002_fix_migration_inconsistencies::Migration),
            Box::new(m20240827_000000_add_row_level_security::Migration),
            Box::new(m20240828_000000_add_tenant_keys::Migration),
            Box::new(m20240829_000000_add_tenant_statistics::Migration),
        ]
    }
}
