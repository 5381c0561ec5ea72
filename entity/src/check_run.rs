//! `CheckRun`: a GitHub check run. Class: tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `CheckRun`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "CheckRun", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the owning organization.
    pub org_id: String,
    /// "githubId": GitHub's check-run id, unique.
    pub github_id: i64,
    /// "name".
    pub name: String,
    /// "headSha".
    pub head_sha: String,
    /// "status".
    pub status: String,
    /// "conclusion".
    pub conclusion: Option<String>,
    /// "startedAt".
    pub started_at: Option<DateTimeUtc>,
    /// "completedAt".
    pub completed_at: Option<DateTimeUtc>,
    /// "repositoryId": the `Repository`.
    pub repository_id: String,
    /// "installationId": the `Installation`.
    pub installation_id: String,
    /// "workflowRunId": the `WorkflowRun`, if any.
    pub workflow_run_id: Option<String>,
    /// "output": the check-run output as GitHub reports it.
    #[sea_orm(column_type = "JsonBinary")]
    pub output: Json,
    /// "actions": the requested actions (a JSON array).
    #[sea_orm(column_type = "JsonBinary")]
    pub actions: Json,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// Foreign keys of `CheckRun`, and the tables that reference it.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `CheckRun_orgId_fkey`.
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `CheckRun_repositoryId_fkey`.
    #[sea_orm(
        belongs_to = "super::repository::Entity",
        from = "Column::RepositoryId",
        to = "super::repository::Column::Id",
        on_delete = "Cascade"
    )]
    Repository,
    /// `CheckRun_installationId_fkey`.
    #[sea_orm(
        belongs_to = "super::installation::Entity",
        from = "Column::InstallationId",
        to = "super::installation::Column::Id",
        on_delete = "Cascade"
    )]
    Installation,
    /// `CheckRun_workflowRunId_fkey`.
    #[sea_orm(
        belongs_to = "super::workflow_run::Entity",
        from = "Column::WorkflowRunId",
        to = "super::workflow_run::Column::Id",
        on_delete = "SetNull"
    )]
    WorkflowRun,
    /// `TestSuite_checkRunId_fkey`.
    #[sea_orm(has_many = "super::test_suite::Entity")]
    TestSuite,
    /// `TestResult_checkRunId_fkey`.
    #[sea_orm(has_many = "super::test_result::Entity")]
    TestResult,
    /// `FlakeDetection_checkRunId_fkey`.
    #[sea_orm(has_many = "super::flake_detection::Entity")]
    FlakeDetection,
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

impl Related<super::workflow_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WorkflowRun.def()
    }
}

impl Related<super::test_suite::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::TestSuite.def()
    }
}

impl Related<super::test_result::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::TestResult.def()
    }
}

impl Related<super::flake_detection::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FlakeDetection.def()
    }
}

crate::tenancy!(tenant, org_id = Column::OrgId);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
