//! `FGJob`: one job of an `FGWorkflowRun`. Class: child of `FGWorkflowRun` via "runId".

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `FGJob`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "FGJob", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the row's organization, always its parent's (migration step 8): filled in by
    /// the scope, or by the column's default, the tenant of the current transaction.
    pub org_id: String,
    /// "runId": the parent `FGWorkflowRun`, whose organization this row belongs to.
    pub run_id: String,
    /// "jobId": the provider's job id.
    pub job_id: String,
    /// "name".
    pub name: String,
    /// "status".
    pub status: String,
    /// "conclusion".
    pub conclusion: Option<String>,
    /// "startedAt".
    pub started_at: Option<DateTimeUtc>,
    /// "completedAt".
    pub completed_at: Option<DateTimeUtc>,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// Foreign keys of `FGJob`, and the tables that reference it.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `FGJob_orgId_fkey` (migration step 8).
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `FGJob_runId_fkey`.
    #[sea_orm(
        belongs_to = "super::fg_workflow_run::Entity",
        from = "Column::RunId",
        to = "super::fg_workflow_run::Column::Id",
        on_delete = "Cascade"
    )]
    FgWorkflowRun,
    /// `FGOccurrence_jobId_fkey`.
    #[sea_orm(has_many = "super::fg_occurrence::Entity")]
    FgOccurrence,
}

impl Related<super::fg_workflow_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgWorkflowRun.def()
    }
}

impl Related<super::fg_occurrence::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgOccurrence.def()
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
    parents = [(fg_workflow_run, "FGWorkflowRun", Column::RunId, "runId")]
);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
