//! `Artifact`: an artifact uploaded by a GitHub workflow run. Class: child of `WorkflowRun` via "workflowRunId".

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `Artifact`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "Artifact", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the row's organization, always its parent's (migration step 8): filled in by
    /// the scope, or by the column's default, the tenant of the current transaction.
    pub org_id: String,
    /// "githubId": GitHub's artifact id, unique.
    pub github_id: i64,
    /// "name".
    pub name: String,
    /// "type": the kind of artifact (for example a JUnit report).
    #[sea_orm(column_name = "type")]
    pub r#type: String,
    /// "sizeInBytes".
    pub size_in_bytes: i64,
    /// "url": the API URL.
    pub url: String,
    /// "archiveDownloadUrl".
    pub archive_download_url: String,
    /// "expired".
    pub expired: bool,
    /// "workflowRunId": the parent `WorkflowRun`, whose organization this row belongs to.
    pub workflow_run_id: String,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
    /// "expiresAt".
    pub expires_at: DateTimeUtc,
}

/// Foreign keys of `Artifact`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `Artifact_orgId_fkey` (migration step 8).
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `Artifact_workflowRunId_fkey`.
    #[sea_orm(
        belongs_to = "super::workflow_run::Entity",
        from = "Column::WorkflowRunId",
        to = "super::workflow_run::Column::Id",
        on_delete = "Cascade"
    )]
    WorkflowRun,
}

impl Related<super::workflow_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WorkflowRun.def()
    }
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

crate::tenancy!(
    child,
    org_id = Column::OrgId,
    parents = [(
        workflow_run,
        "WorkflowRun",
        Column::WorkflowRunId,
        "workflowRunId"
    )]
);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
