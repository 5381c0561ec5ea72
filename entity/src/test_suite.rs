//! `TestSuite`: one JUnit test suite of an ingested report. Class: tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `TestSuite`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "TestSuite", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the owning organization.
    pub org_id: String,
    /// "name".
    pub name: String,
    /// "package".
    pub package: Option<String>,
    /// "hostname".
    pub hostname: Option<String>,
    /// "tests": the number of tests.
    pub tests: i32,
    /// "failures".
    pub failures: i32,
    /// "errors".
    pub errors: i32,
    /// "skipped".
    pub skipped: i32,
    /// "time": seconds.
    pub time: Option<f64>,
    /// "timestamp": as the report states it.
    pub timestamp: Option<String>,
    /// "runId": the workflow run, as the ingestion names it (no foreign key).
    pub run_id: Option<String>,
    /// "jobName".
    pub job_name: Option<String>,
    /// "repositoryId": the `Repository`.
    pub repository_id: String,
    /// "checkRunId": the `CheckRun`, if any.
    pub check_run_id: Option<String>,
    /// "workflowJobId": the `WorkflowJob`, if any.
    pub workflow_job_id: Option<String>,
    /// "systemOut".
    pub system_out: Option<String>,
    /// "systemErr".
    pub system_err: Option<String>,
    /// "properties".
    #[sea_orm(column_type = "JsonBinary")]
    pub properties: Json,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// Foreign keys of `TestSuite`, and the tables that reference it.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `TestSuite_orgId_fkey`.
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `TestSuite_repositoryId_fkey`.
    #[sea_orm(
        belongs_to = "super::repository::Entity",
        from = "Column::RepositoryId",
        to = "super::repository::Column::Id",
        on_delete = "Cascade"
    )]
    Repository,
    /// `TestSuite_checkRunId_fkey`.
    #[sea_orm(
        belongs_to = "super::check_run::Entity",
        from = "Column::CheckRunId",
        to = "super::check_run::Column::Id",
        on_delete = "SetNull"
    )]
    CheckRun,
    /// `TestSuite_workflowJobId_fkey`.
    #[sea_orm(
        belongs_to = "super::workflow_job::Entity",
        from = "Column::WorkflowJobId",
        to = "super::workflow_job::Column::Id",
        on_delete = "SetNull"
    )]
    WorkflowJob,
    /// `TestResult_testSuiteId_fkey`.
    #[sea_orm(has_many = "super::test_result::Entity")]
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

impl Related<super::test_result::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::TestResult.def()
    }
}

crate::tenancy!(tenant, org_id = Column::OrgId);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
