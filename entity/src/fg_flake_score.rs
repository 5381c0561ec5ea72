//! `FGFlakeScore`: the current flakiness score of an `FGTestCase`. Class: tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `FGFlakeScore`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "FGFlakeScore", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the owning organization.
    pub org_id: String,
    /// "testId": the `FGTestCase`, unique (one score per test).
    pub test_id: String,
    /// "score": 0.0 (stable) and up.
    pub score: f64,
    /// "windowN": how many recent runs the score covers, 50 by default.
    pub window_n: i32,
    /// "lastUpdatedAt": set by the crate on insert and update.
    pub last_updated_at: DateTimeUtc,
}

/// Foreign keys of `FGFlakeScore`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `FGFlakeScore_orgId_fkey`.
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `FGFlakeScore_testId_fkey`.
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
crate::stamps!(
    id = generated,
    updated_at = (last_updated_at, Column::LastUpdatedAt)
);
