//! `FGIssueLink`: a link from an `FGTestCase` to an issue in a tracker. Class: child of `FGTestCase` via "testId".

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `FGIssueLink`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "FGIssueLink", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the row's organization, always its parent's (migration step 8): filled in by
    /// the scope, or by the column's default, the tenant of the current transaction.
    pub org_id: String,
    /// "testId": the parent `FGTestCase`, whose organization this row belongs to.
    pub test_id: String,
    /// "provider": 'github' by default.
    pub provider: String,
    /// "url": the issue URL.
    pub url: String,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
}

/// Foreign keys of `FGIssueLink`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `FGIssueLink_orgId_fkey` (migration step 8).
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `FGIssueLink_testId_fkey`.
    #[sea_orm(
        belongs_to = "super::fg_test_case::Entity",
        from = "Column::TestId",
        to = "super::fg_test_case::Column::Id",
        on_delete = "Cascade"
    )]
    FgTestCase,
}

impl Related<super::fg_test_case::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgTestCase.def()
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
    parents = [(fg_test_case, "FGTestCase", Column::TestId, "testId")]
);
crate::stamps!(id = generated);
