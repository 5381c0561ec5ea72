//! `IngestionJob`: a JUnit ingestion of a workflow run's artifacts. Class: global.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `IngestionJob`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "IngestionJob", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "correlationId": unique when set.
    pub correlation_id: Option<String>,
    /// "workflowRunId": the workflow run to ingest (no foreign key).
    pub workflow_run_id: String,
    /// "repositoryId": the repository (no foreign key).
    pub repository_id: String,
    /// "priority": 'normal' by default.
    pub priority: String,
    /// "status": 'queued' by default.
    pub status: String,
    /// "artifactCount".
    pub artifact_count: Option<i32>,
    /// "testCount".
    pub test_count: Option<i32>,
    /// "failureCount".
    pub failure_count: Option<i32>,
    /// "errorCount".
    pub error_count: Option<i32>,
    /// "processingTimeMs".
    pub processing_time_ms: Option<i32>,
    /// "errorMessage".
    pub error_message: Option<String>,
    /// "metadata".
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Json,
    /// "startedAt".
    pub started_at: Option<DateTimeUtc>,
    /// "completedAt".
    pub completed_at: Option<DateTimeUtc>,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// `IngestionJob` has no foreign keys and no table references it.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

crate::tenancy!(global);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
