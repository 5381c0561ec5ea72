//! `FGQuarantineDecision`: a decision about quarantining an `FGTestCase`. Class: tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `FGQuarantineDecision`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "FGQuarantineDecision", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the owning organization.
    pub org_id: String,
    /// "testId": the `FGTestCase`.
    pub test_id: String,
    /// "state": `PROPOSED` by default.
    pub state: crate::enums::FgQuarantineState,
    /// "rationale": why.
    pub rationale: String,
    /// "byUser": who decided (no foreign key).
    pub by_user: Option<String>,
    /// "until": when the quarantine ends, if it is limited.
    pub until: Option<DateTimeUtc>,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// Foreign keys of `FGQuarantineDecision`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `FGQuarantineDecision_orgId_fkey`.
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `FGQuarantineDecision_testId_fkey`.
    #[sea_orm(
        belongs_to = "super::fg_test_case::Entity",
        from = "Column::TestId",
        to = "super::fg_test_case::Column::Id",
        on_delete = "Cascade"
    )]
    FgTestCase,
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

impl Related<super::fg_test_case::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgTestCase.def()
    }
}

crate::tenancy!(tenant, org_id = Column::OrgId);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
