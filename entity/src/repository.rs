//! `Repository`: a GitHub repository reached through an installation. Class: tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `Repository`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "Repository", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the owning organization.
    pub org_id: String,
    /// "githubId": GitHub's repository id, unique.
    pub github_id: i64,
    /// "nodeId": GitHub's GraphQL node id.
    pub node_id: String,
    /// "name".
    pub name: String,
    /// "fullName": `owner/name`.
    pub full_name: String,
    /// "owner".
    pub owner: String,
    /// "private".
    pub private: bool,
    /// "defaultBranch": 'main' by default.
    pub default_branch: String,
    /// "installationId": the `Installation`.
    pub installation_id: String,
    /// "isActive".
    pub is_active: bool,
    /// "settings".
    #[sea_orm(column_type = "JsonBinary")]
    pub settings: Json,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// Foreign keys of `Repository`, and the tables that reference it.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `Repository_orgId_fkey`.
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `Repository_installationId_fkey`.
    #[sea_orm(
        belongs_to = "super::installation::Entity",
        from = "Column::InstallationId",
        to = "super::installation::Column::Id",
        on_delete = "Cascade"
    )]
    Installation,
    /// `CheckRun_repositoryId_fkey`.
    #[sea_orm(has_many = "super::check_run::Entity")]
    CheckRun,
    /// `WorkflowRun_repositoryId_fkey`.
    #[sea_orm(has_many = "super::workflow_run::Entity")]
    WorkflowRun,
    /// `TestSuite_repositoryId_fkey`.
    #[sea_orm(has_many = "super::test_suite::Entity")]
    TestSuite,
    /// `TestResult_repositoryId_fkey`.
    #[sea_orm(has_many = "super::test_result::Entity")]
    TestResult,
    /// `FlakeDetection_repositoryId_fkey`.
    #[sea_orm(has_many = "super::flake_detection::Entity")]
    FlakeDetection,
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
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

impl Related<super::flake_detection::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FlakeDetection.def()
    }
}

crate::tenancy!(tenant, org_id = Column::OrgId);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
