//! `Task`: a task of a user, personal or within an organization. Class: tenant-optional.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `Task`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "Task", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "title".
    pub title: String,
    /// "description".
    pub description: Option<String>,
    /// "status": `PENDING` by default.
    pub status: crate::enums::TaskStatus,
    /// "priority": `MEDIUM` by default.
    pub priority: crate::enums::Priority,
    /// "userId": the owning `User`.
    pub user_id: String,
    /// "orgId": the owning organization, or NULL for a personal task (no foreign key).
    pub org_id: Option<String>,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// Foreign keys of `Task`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `Task_userId_fkey`.
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

crate::tenancy!(tenant_optional, org_id = Column::OrgId);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
