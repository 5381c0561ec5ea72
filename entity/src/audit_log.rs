//! `AuditLog`: one recorded action within an organization. Class: tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `AuditLog`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "AuditLog", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the owning organization.
    pub org_id: String,
    /// "userId": the acting `User`, if any (NULL once the user is deleted).
    pub user_id: Option<String>,
    /// "action".
    pub action: String,
    /// "resource": the kind of resource acted on.
    pub resource: String,
    /// "resourceId".
    pub resource_id: Option<String>,
    /// "details".
    #[sea_orm(column_type = "JsonBinary")]
    pub details: Json,
    /// "ipAddress".
    pub ip_address: Option<String>,
    /// "userAgent".
    pub user_agent: Option<String>,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
}

/// Foreign keys of `AuditLog`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `AuditLog_orgId_fkey`.
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `AuditLog_userId_fkey`.
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "SetNull"
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
crate::stamps!(id = generated);
