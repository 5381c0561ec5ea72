//! `WorkflowJob`: one job of a GitHub workflow run. Class: child of `WorkflowRun` via "workflowRunId".

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `WorkflowJob`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "WorkflowJob", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the row's organization, always its parent's (migration step 8): filled in by
    /// the scope, or by the column's default, the tenant of the current transaction.
    pub org_id: String,
    /// "githubId": GitHub's job id.
    pub github_id: i64,
    /// "name".
    pub name: String,
    /// "status".
    pub status: String,
    /// "conclusion".
    pub conclusion: Option<String>,
    /// "workflowRunId": the parent `WorkflowRun`, whose organization this row belongs to.
    pub workflow_run_id: String,
    /// "startedAt".
    pub started_at: Option<DateTimeUtc>,
    /// "completedAt".
    pub completed_at: Option<DateTimeUtc>,
    /// "steps": the job's steps as GitHub reports them.
    #[sea_orm(column_type = "JsonBinary")]
    pub steps: Json,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// Foreign keys of `WorkflowJob`, and the tables that reference it.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `WorkflowJob_orgId_fkey` (migration step 8).
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `WorkflowJob_workflowRunId_fkey`.
    #[sea_orm(
        belongs_to = "super::workflow_run::Entity",
        from = "Column::WorkflowRunId",
        to = "super::workflow_run::Column::Id",
        on_delete = "Cascade"
    )]
    WorkflowRun,
    /// `TestSuite_workflowJobId_fkey`.
    #[sea_orm(has_many = "super::test_suite::Entity")]
    TestSuite,
    /// `TestResult_workflowJobId_fkey`.
    #[sea_orm(has_many = "super::test_result::Entity")]
    TestResult,
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
