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
pub mod prelude;
pub mod stamps;
pub mod tenancy;

pub mod artifact;
pub mod audit_log;
pub mod check_run;
pub mod fg_failure_cluster;
pub mod fg_failure_cluster_to_fg_test_case;
pub mod fg_flake_score;
pub mod fg_issue_link;
pub mod fg_job;
pub mod fg_occurrence;
pub mod fg_quarantine_decision;
pub mod fg_repository;
pub mod fg_test_case;
pub mod fg_workflow_run;
pub mod flake_detection;
pub mod ingestion_job;
pub mod installation;
pub mod organization;
pub mod organization_user;
pub mod repository;
pub mod subscription;
pub mod task;
pub mod test_result;
pub mod test_suite;
pub mod usage_metric;
pub mod user;
pub mod workflow_job;
pub mod workflow_run;

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
}

/// The columns of entity `E`: name and definition, in declaration order.
pub fn columns_of<E: sea_orm::EntityTrait>() -> Vec<(&'static str, sea_orm::ColumnDef)> {
    use sea_orm::{ColumnTrait, IdenStatic, Iterable};
    E::Column::iter().map(|c| (c.as_str(), c.def())).collect()
}

macro_rules! tables {
    ($($module:ident => $name:literal),+ $(,)?) => {
        /// Every table of the schema with its tenant class, in the order the migrations create them.
        pub const TABLES: &[TableInfo] = &[
            $(TableInfo {
                name: $name,
                class: <$module::Entity as Tenancy>::CLASS,
                row_filter: <$module::Entity as Tenancy>::row_filter,
                columns: columns_of::<$module::Entity>,
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
    user => "User",
    task => "Task",
    installation => "Installation",
    repository => "Repository",
    check_run => "CheckRun",
    workflow_run => "WorkflowRun",
    workflow_job => "WorkflowJob",
    artifact => "Artifact",
    flake_detection => "FlakeDetection",
    test_suite => "TestSuite",
    test_result => "TestResult",
    ingestion_job => "IngestionJob",
    fg_repository => "FGRepository",
    fg_workflow_run => "FGWorkflowRun",
    fg_job => "FGJob",
    fg_test_case => "FGTestCase",
    fg_occurrence => "FGOccurrence",
    fg_flake_score => "FGFlakeScore",
    fg_quarantine_decision => "FGQuarantineDecision",
    fg_issue_link => "FGIssueLink",
    fg_failure_cluster => "FGFailureCluster",
    fg_failure_cluster_to_fg_test_case => "_FGFailureClusterToFGTestCase",
    organization => "Organization",
    organization_user => "OrganizationUser",
    subscription => "Subscription",
    audit_log => "AuditLog",
    usage_metric => "UsageMetric",
}

/// Looks up a table's entry in [`TABLES`] by its database name.
pub fn table(name: &str) -> Option<&'static TableInfo> {
    TABLES.iter().find(|t| t.name == name)
}
