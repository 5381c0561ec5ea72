//! `OrganizationUser`: membership of a `User` in an `Organization`. Class: tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `OrganizationUser`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "OrganizationUser", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the owning organization.
    pub org_id: String,
    /// "userId": the member `User`.
    pub user_id: String,
    /// "role": 'member' by default.
    pub role: String,
    /// "status": 'active' by default.
    pub status: String,
    /// "joinedAt": set by the database.
    pub joined_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// Foreign keys of `OrganizationUser`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `OrganizationUser_orgId_fkey`.
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `OrganizationUser_userId_fkey`.
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

crate::tenancy!(tenant, org_id = Column::OrgId);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
