//! `FGWorkflowRun`: a workflow run as FlakeGuard's core models track it. Class: tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `FGWorkflowRun`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "FGWorkflowRun", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the owning organization.
    pub org_id: String,
    /// "repoId": the `FGRepository`.
    pub repo_id: String,
    /// "runId": the provider's run id.
    pub run_id: String,
    /// "status".
    pub status: String,
    /// "conclusion".
    pub conclusion: Option<String>,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// Foreign keys of `FGWorkflowRun`, and the tables that reference it.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `FGWorkflowRun_orgId_fkey`.
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `FGWorkflowRun_repoId_fkey`.
    #[sea_orm(
        belongs_to = "super::fg_repository::Entity",
        from = "Column::RepoId",
        to = "super::fg_repository::Column::Id",
        on_delete = "Cascade"
    )]
    FgRepository,
    /// `FGJob_runId_fkey`.
    #[sea_orm(has_many = "super::fg_job::Entity")]
    FgJob,
    /// `FGOccurrence_runId_fkey`.
    #[sea_orm(has_many = "super::fg_occurrence::Entity")]
    FgOccurrence,
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

impl Related<super::fg_repository::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgRepository.def()
    }
}

impl Related<super::fg_job::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgJob.def()
    }
}

impl Related<super::fg_occurrence::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgOccurrence.def()
    }
}

crate::tenancy!(tenant, org_id = Column::OrgId);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
