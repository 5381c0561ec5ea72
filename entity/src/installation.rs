//! `Installation`: a GitHub App installation. Class: tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `Installation`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "Installation", rename_all = "camelCase")]
pub struct Model {
    /// "id": supplied by the caller, never generated.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the owning organization.
    pub org_id: String,
    /// "githubInstallationId": GitHub's installation id, unique.
    pub github_installation_id: i64,
    /// "accountLogin": the login of the account the app is installed on.
    pub account_login: String,
    /// "accountId": GitHub's id of that account.
    pub account_id: i64,
    /// "accountType": `User` or `Organization`.
    pub account_type: String,
    /// "repositorySelection": 'selected' (the default) or 'all'.
    pub repository_selection: String,
    /// "permissions": the granted permissions.
    #[sea_orm(column_type = "JsonBinary")]
    pub permissions: Json,
    /// "events": the subscribed webhook events.
    #[sea_orm(column_type = "Array(RcOrArc::new(ColumnType::Text))")]
    pub events: Vec<String>,
    /// "syncStatus": 'active' by default.
    pub sync_status: String,
    /// "lastSyncAt".
    pub last_sync_at: Option<DateTimeUtc>,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
    /// "suspendedAt": when GitHub suspended the installation.
    pub suspended_at: Option<DateTimeUtc>,
}

/// Foreign keys of `Installation`, and the tables that reference it.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `Installation_orgId_fkey`.
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `Repository_installationId_fkey`.
    #[sea_orm(has_many = "super::repository::Entity")]
    Repository,
    /// `CheckRun_installationId_fkey`.
    #[sea_orm(has_many = "super::check_run::Entity")]
    CheckRun,
    /// `WorkflowRun_installationId_fkey`.
    #[sea_orm(has_many = "super::workflow_run::Entity")]
    WorkflowRun,
    /// `FlakeDetection_installationId_fkey`.
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

impl Related<super::flake_detection::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FlakeDetection.def()
    }
}

crate::tenancy!(tenant, org_id = Column::OrgId);
crate::stamps!(id = supplied, updated_at = (updated_at, Column::UpdatedAt));
