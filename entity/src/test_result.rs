//! `TestResult`: one JUnit test case result of an ingested report. Class: tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `TestResult`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "TestResult", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the owning organization.
    pub org_id: String,
    /// "name".
    pub name: String,
    /// "suite".
    pub suite: String,
    /// "class": the class name.
    pub class: Option<String>,
    /// "testFullName".
    pub test_full_name: String,
    /// "file".
    pub file: Option<String>,
    /// "status".
    pub status: String,
    /// "time": seconds.
    pub time: f64,
    /// "message".
    pub message: Option<String>,
    /// "stack".
    pub stack: Option<String>,
    /// "attempt": 1 for the first try.
    pub attempt: i32,
    /// "runId": the workflow run, as the ingestion names it (no foreign key).
    pub run_id: String,
    /// "jobName".
    pub job_name: Option<String>,
    /// "repositoryId": the `Repository`.
    pub repository_id: String,
    /// "testSuiteId": the `TestSuite`, if any.
    pub test_suite_id: Option<String>,
    /// "checkRunId": the `CheckRun`, if any.
    pub check_run_id: Option<String>,
    /// "workflowJobId": the `WorkflowJob`, if any.
    pub workflow_job_id: Option<String>,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// Foreign keys of `TestResult`, and the tables that reference it.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `TestResult_orgId_fkey`.
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `TestResult_repositoryId_fkey`.
    #[sea_orm(
        belongs_to = "super::repository::Entity",
        from = "Column::RepositoryId",
        to = "super::repository::Column::Id",
        on_delete = "Cascade"
    )]
    Repository,
    /// `TestResult_testSuiteId_fkey`.
    #[sea_orm(
        belongs_to = "super::test_suite::Entity",
        from = "Column::TestSuiteId",
        to = "super::test_suite::Column::Id",
        on_delete = "SetNull"
    )]
    TestSuite,
    /// `TestResult_checkRunId_fkey`.
    #[sea_orm(
        belongs_to = "super::check_run::Entity",
        from = "Column::CheckRunId",
        to = "super::check_run::Column::Id",
        on_delete = "SetNull"
    )]
    CheckRun,
    /// `TestResult_workflowJobId_fkey`.
    #[sea_orm(
        belongs_to = "super::workflow_job::Entity",
        from = "Column::WorkflowJobId",
        to = "super::workflow_job::Column::Id",
        on_delete = "SetNull"
    )]
    WorkflowJob,
    /// `FlakeDetection_testResultId_fkey`.
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

impl Related<super::test_suite::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::TestSuite.def()
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

impl Related<super::flake_detection::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FlakeDetection.def()
    }
}

crate::tenancy!(tenant, org_id = Column::OrgId);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
