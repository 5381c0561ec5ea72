//! SeaORM 2.0 entities for every FlakeGuard table.
//!
//! One module per table of the schema, named after the table in snake case
//! (`FGOccurrence` is [`fg_occurrence`]), with the exact table and column names of the database,
//! the relations its foreign keys imply, its tenant class ([`tenancy`](mod@tenancy)) and the ids and
//! timestamps the crate fills in ([`stamps`](mod@stamps)).
//!
//! This crate is plain table definitions. Application code does not query these entities
//! directly: it goes through `flakeguard-db`, whose tenant scope adds the organization filter
//! to every query.
//!
//! # Layout
//!
//! - [`tenancy`](mod@tenancy): the five tenant classes and the traits that make them visible to the compiler.
//! - [`stamps`](mod@stamps): CUID2 ids and "updatedAt" timestamps, for single-row and bulk paths alike.
//! - [`enums`]: the three PostgreSQL enum types.
//! - [`prelude`]: every entity under its table name (`FgOccurrence`), and the enums.
//! - [`TABLES`]: every table with its tenant class, in creation order.

pub mod enums;
pub mod stamps;
pub mod tenancy;

use tenancy::{Tenancy, TenantClass};

#[doc(hidden)]
pub mod __private {
    //! Re-exports for the declaration macros.
    pub use async_trait;
    pub use chrono;
}

/// A table and its tenant class.
#[derive(Debug, Clone, Copy)]
pub struct TableInfo {
    /// The table name, as in the database.
    pub name: &'static str,
    /// How its rows belong to an organization.
    pub class: TenantClass,
    /// The rows of an organization as a condition on this table (`None` for global tables);
    /// see [`tenancy::TenantOwned::tenant_condition`].
    pub row_filter: fn(&str) -> Option<sea_orm::Condition>,
    /// The entity's columns: name and definition (type, nullability), in declaration order.
    pub columns: fn() -> Vec<(&'static str, sea_orm::ColumnDef)>,
    /// The primary key's columns, in order.
    pub primary_key: fn() -> Vec<&'static str>,
    /// The entity's relations, as SeaORM defines them (foreign keys with their actions).
    pub relations: fn() -> Vec<sea_orm::RelationDef>,
}

impl TableInfo {
    /// The tables whose rows belong to an organization (every class but global).
    pub fn tenant_data() -> impl Iterator<Item = &'static TableInfo> {
        TABLES.iter().filter(|t| t.class.is_tenant_data())
    }
}

/// The columns of entity `E`: name and definition, in declaration order.
pub fn columns_of<E: sea_orm::EntityTrait>() -> Vec<(&'static str, sea_orm::ColumnDef)> {
    use sea_orm::{ColumnTrait, IdenStatic, Iterable};
    E::Column::iter().map(|c| (c.as_str(), c.def())).collect()
}

/// The one declaration of the schema's tables: each line names the entity module, the table
/// and the prelude name. It declares the modules, the [`prelude`] and [`TABLES`], so that adding a
/// table takes one line here (and its migration).
/// The relations of entity `E`.
pub fn relations_of<E: sea_orm::EntityTrait>() -> Vec<sea_orm::RelationDef> {
    use sea_orm::{Iterable, RelationTrait};
    E::Relation::iter().map(|r| r.def()).collect()
}

/// The primary key columns of entity `E`, in order.
pub fn primary_key_of<E: sea_orm::EntityTrait>() -> Vec<&'static str> {
    use sea_orm::{IdenStatic, Iterable, PrimaryKeyToColumn};
    E::PrimaryKey::iter()
        .map(|pk| pk.into_column().as_str())
        .collect()
}

macro_rules! tables {
    ($($module:ident => $name:literal as $alias:ident),+ $(,)?) => {
        $(pub mod $module;)+

        /// Every entity under its table's name, and the enums.
        pub mod prelude {
            pub use crate::enums::{FgQuarantineState, Priority, TaskStatus};
            $(pub use crate::$module::Entity as $alias;)+
        }

        /// Every table of the schema with its tenant class, in the order the migrations create them.
        pub const TABLES: &[TableInfo] = &[
            $(TableInfo {
                name: $name,
                class: <$module::Entity as Tenancy>::CLASS,
                row_filter: <$module::Entity as Tenancy>::row_filter,
                columns: columns_of::<$module::Entity>,
                primary_key: primary_key_of::<$module::Entity>,
                relations: relations_of::<$module::Entity>,
            }),+
        ];

        #[cfg(test)]
        mod table_names {
            use sea_orm::EntityName;

            #[test]
            fn table_list_names_match_the_entities() {
                $(assert_eq!(crate::$module::Entity.table_name(), $name);)+
            }
        }
    };
}

tables! {
    user => "User" as User,
    task => "Task" as Task,
    installation => "Installation" as Installation,
    repository => "Repository" as Repository,
    check_run => "CheckRun" as CheckRun,
    workflow_run => "WorkflowRun" as WorkflowRun,
    workflow_job => "WorkflowJob" as WorkflowJob,
    artifact => "Artifact" as Artifact,
    flake_detection => "FlakeDetection" as FlakeDetection,
    test_suite => "TestSuite" as TestSuite,
    test_result => "TestResult" as TestResult,
    ingestion_job => "IngestionJob" as IngestionJob,
    fg_repository => "FGRepository" as FgRepository,
    fg_workflow_run => "FGWorkflowRun" as FgWorkflowRun,
    fg_job => "FGJob" as FgJob,
    fg_test_case => "FGTestCase" as FgTestCase,
    fg_occurrence => "FGOccurrence" as FgOccurrence,
    fg_flake_score => "FGFlakeScore" as FgFlakeScore,
    fg_quarantine_decision => "FGQuarantineDecision" as FgQuarantineDecision,
    fg_issue_link => "FGIssueLink" as FgIssueLink,
    fg_failure_cluster => "FGFailureCluster" as FgFailureCluster,
    fg_failure_cluster_to_fg_test_case => "_FGFailureClusterToFGTestCase" as FgFailureClusterToFgTestCase,
    organization => "Organization" as Organization,
    organization_user => "OrganizationUser" as OrganizationUser,
    subscription => "Subscription" as Subscription,
    audit_log => "AuditLog" as AuditLog,
    usage_metric => "UsageMetric" as UsageMetric,
}

/// Looks up a table's entry in [`TABLES`] by its database name.
pub fn table(name: &str) -> Option<&'static TableInfo> {
    TABLES.iter().find(|t| t.name == name)
}
