//! `FGOccurrence`: one result of one test in one workflow run. Class: tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `FGOccurrence`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "FGOccurrence", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the owning organization.
    pub org_id: String,
    /// "testId": the `FGTestCase`.
    pub test_id: String,
    /// "runId": the `FGWorkflowRun`.
    pub run_id: String,
    /// "jobId": the `FGJob`, if known.
    pub job_id: Option<String>,
    /// "status": passed, failed, skipped, error...
    pub status: String,
    /// "durationMs".
    pub duration_ms: Option<i32>,
    /// "failureMsgSignature": the normalized failure message, for clustering.
    pub failure_msg_signature: Option<String>,
    /// "failureStackDigest": a digest of the stack trace, for clustering.
    pub failure_stack_digest: Option<String>,
    /// "failureMessage".
    pub failure_message: Option<String>,
    /// "failureStackTrace".
    pub failure_stack_trace: Option<String>,
    /// "attempt": 1 for the first try.
    pub attempt: i32,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
}

/// Foreign keys of `FGOccurrence`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `FGOccurrence_orgId_fkey`.
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `FGOccurrence_testId_fkey`.
    #[sea_orm(
        belongs_to = "super::fg_test_case::Entity",
        from = "Column::TestId",
        to = "super::fg_test_case::Column::Id",
        on_delete = "Cascade"
    )]
    FgTestCase,
    /// `FGOccurrence_runId_fkey`.
    #[sea_orm(
        belongs_to = "super::fg_workflow_run::Entity",
        from = "Column::RunId",
        to = "super::fg_workflow_run::Column::Id",
        on_delete = "Cascade"
    )]
    FgWorkflowRun,
    /// `FGOccurrence_jobId_fkey`.
    #[sea_orm(
        belongs_to = "super::fg_job::Entity",
        from = "Column::JobId",
        to = "super::fg_job::Column::Id",
        on_delete = "SetNull"
    )]
    FgJob,
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

impl Related<super::fg_test_case::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgTestCase.def()
    }
}

impl Related<super::fg_workflow_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgWorkflowRun.def()
    }
}

impl Related<super::fg_job::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgJob.def()
    }
}

crate::tenancy!(tenant, org_id = Column::OrgId);
crate::stamps!(id = generated);
