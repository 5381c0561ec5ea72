//! `WorkflowRun`: a GitHub Actions workflow run. Class: tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `WorkflowRun`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "WorkflowRun", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the owning organization.
    pub org_id: String,
    /// "githubId": GitHub's run id, unique.
    pub github_id: i64,
    /// "name".
    pub name: Option<String>,
    /// "headBranch".
    pub head_branch: String,
    /// "headSha".
    pub head_sha: String,
    /// "status".
    pub status: String,
    /// "conclusion".
    pub conclusion: Option<String>,
    /// "workflowId": GitHub's workflow id.
    pub workflow_id: i64,
    /// "workflowName".
    pub workflow_name: String,
    /// "repositoryId": the `Repository`.
    pub repository_id: String,
    /// "installationId": the `Installation`.
    pub installation_id: String,
    /// "runStartedAt".
    pub run_started_at: Option<DateTimeUtc>,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// Foreign keys of `WorkflowRun`, and the tables that reference it.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `WorkflowRun_orgId_fkey`.
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `WorkflowRun_repositoryId_fkey`.
    #[sea_orm(
        belongs_to = "super::repository::Entity",
        from = "Column::RepositoryId",
        to = "super::repository::Column::Id",
        on_delete = "Cascade"
    )]
    Repository,
    /// `WorkflowRun_installationId_fkey`.
    #[sea_orm(
        belongs_to = "super::installation::Entity",
        from = "Column::InstallationId",
        to = "super::installation::Column::Id",
        on_delete = "Cascade"
    )]
    Installation,
    /// `CheckRun_workflowRunId_fkey`.
    #[sea_orm(has_many = "super::check_run::Entity")]
    CheckRun,
    /// `WorkflowJob_workflowRunId_fkey`.
    #[sea_orm(has_many = "super::workflow_job::Entity")]
    WorkflowJob,
    /// `Artifact_workflowRunId_fkey`.
    #[sea_orm(has_many = "super::artifact::Entity")]
    Artifact,
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

impl Related<super::workflow_job::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WorkflowJob.def()
    }
}

impl Related<super::artifact::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Artifact.def()
    }
}

crate::tenancy!(tenant, org_id = Column::OrgId);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
