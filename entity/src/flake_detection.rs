//! `FlakeDetection`: the flakiness verdict for one test of a repository. Class: tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `FlakeDetection`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "FlakeDetection", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the owning organization.
    pub org_id: String,
    /// "testName".
    pub test_name: String,
    /// "repositoryId": the `Repository`.
    pub repository_id: String,
    /// "installationId": the `Installation`.
    pub installation_id: String,
    /// "checkRunId": the `CheckRun`, if any.
    pub check_run_id: Option<String>,
    /// "testResultId": the `TestResult`, if any.
    pub test_result_id: Option<String>,
    /// "isFlaky".
    pub is_flaky: bool,
    /// "confidence": 0.0 to 1.0.
    pub confidence: f64,
    /// "failurePattern".
    pub failure_pattern: Option<String>,
    /// "historicalFailures".
    pub historical_failures: i32,
    /// "totalRuns".
    pub total_runs: i32,
    /// "failureRate".
    pub failure_rate: f64,
    /// "lastFailureAt".
    pub last_failure_at: Option<DateTimeUtc>,
    /// "suggestedAction".
    pub suggested_action: Option<String>,
    /// "status": 'pending' by default.
    pub status: String,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// Foreign keys of `FlakeDetection`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `FlakeDetection_orgId_fkey`.
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `FlakeDetection_repositoryId_fkey`.
    #[sea_orm(
        belongs_to = "super::repository::Entity",
        from = "Column::RepositoryId",
        to = "super::repository::Column::Id",
        on_delete = "Cascade"
    )]
    Repository,
    /// `FlakeDetection_installationId_fkey`.
    #[sea_orm(
        belongs_to = "super::installation::Entity",
        from = "Column::InstallationId",
        to = "super::installation::Column::Id",
        on_delete = "Cascade"
    )]
    Installation,
    /// `FlakeDetection_checkRunId_fkey`.
    #[sea_orm(
        belongs_to = "super::check_run::Entity",
        from = "Column::CheckRunId",
        to = "super::check_run::Column::Id",
        on_delete = "SetNull"
    )]
    CheckRun,
    /// `FlakeDetection_testResultId_fkey`.
    #[sea_orm(
        belongs_to = "super::test_result::Entity",
        from = "Column::TestResultId",
        to = "super::test_result::Column::Id",
        on_delete = "SetNull"
    )]
    TestResult,
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

impl Related<super::repository::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Repository.def()
    }
}

impl Related<super::installation::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Installation.def()
    }
}

impl Related<super::check_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CheckRun.def()
    }
}

impl Related<super::test_result::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::TestResult.def()
    }
}

crate::tenancy!(tenant, org_id = Column::OrgId);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
