//! `FGRepository`: a repository as FlakeGuard's core models track it. Class: tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `FGRepository`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "FGRepository", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the owning organization.
    pub org_id: String,
    /// "provider": 'github' by default.
    pub provider: String,
    /// "owner".
    pub owner: String,
    /// "name".
    pub name: String,
    /// "installationId": the installation, as the provider names it (no foreign key).
    pub installation_id: String,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// Foreign keys of `FGRepository`, and the tables that reference it.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `FGRepository_orgId_fkey`.
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `FGWorkflowRun_repoId_fkey`.
    #[sea_orm(has_many = "super::fg_workflow_run::Entity")]
    FgWorkflowRun,
    /// `FGTestCase_repoId_fkey`.
    #[sea_orm(has_many = "super::fg_test_case::Entity")]
    FgTestCase,
    /// `FGFailureCluster_repoId_fkey`.
    #[sea_orm(has_many = "super::fg_failure_cluster::Entity")]
    FgFailureCluster,
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

impl Related<super::fg_workflow_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgWorkflowRun.def()
    }
}

impl Related<super::fg_test_case::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgTestCase.def()
    }
}

impl Related<super::fg_failure_cluster::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgFailureCluster.def()
    }
}

crate::tenancy!(tenant, org_id = Column::OrgId);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
