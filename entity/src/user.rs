//! `User`: a person who signs in to FlakeGuard. Class: global.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `User`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "User", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "email": unique.
    pub email: String,
    /// "name": the display name.
    pub name: Option<String>,
    /// "githubId": the GitHub user id, unique when set.
    pub github_id: Option<i64>,
    /// "avatar": the avatar URL.
    pub avatar: Option<String>,
    /// "role": the application role, 'user' by default.
    pub role: String,
    /// "status": 'active' by default.
    pub status: String,
    /// "lastLoginAt".
    pub last_login_at: Option<DateTimeUtc>,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// The tables that reference `User`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `Task_userId_fkey`.
    #[sea_orm(has_many = "super::task::Entity")]
    Task,
    /// `OrganizationUser_userId_fkey`.
    #[sea_orm(has_many = "super::organization_user::Entity")]
    OrganizationUser,
    /// `AuditLog_userId_fkey`.
    #[sea_orm(has_many = "super::audit_log::Entity")]
    AuditLog,
}

impl Related<super::task::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Task.def()
    }
}

impl Related<super::organization_user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::OrganizationUser.def()
    }
}

impl Related<super::audit_log::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AuditLog.def()
    }
}

crate::tenancy!(global);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
