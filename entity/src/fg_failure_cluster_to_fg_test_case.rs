//! `_FGFailureClusterToFGTestCase`: the many-to-many link between `FGFailureCluster` ("A") and
//! `FGTestCase` ("B"). Class: child of both sides.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `_FGFailureClusterToFGTestCase`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "_FGFailureClusterToFGTestCase")]
pub struct Model {
    /// "A": the `FGFailureCluster`.
    #[sea_orm(primary_key, auto_increment = false, column_name = "A")]
    pub a: String,
    /// "B": the `FGTestCase`.
    #[sea_orm(primary_key, auto_increment = false, column_name = "B")]
    pub b: String,
    /// "orgId": the row's organization, always its parent's (migration step 8): filled in by
    /// the scope, or by the column's default, the tenant of the current transaction.
    #[sea_orm(column_name = "orgId")]
    pub org_id: String,
}

/// Foreign keys of the link table.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `_FGFailureClusterToFGTestCase_orgId_fkey` (migration step 8).
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `_FGFailureClusterToFGTestCase_A_fkey`.
    #[sea_orm(
        belongs_to = "super::fg_failure_cluster::Entity",
        from = "Column::A",
        to = "super::fg_failure_cluster::Column::Id",
        on_delete = "Cascade"
    )]
    FgFailureCluster,
    /// `_FGFailureClusterToFGTestCase_B_fkey`.
    #[sea_orm(
        belongs_to = "super::fg_test_case::Entity",
        from = "Column::B",
        to = "super::fg_test_case::Column::Id",
        on_delete = "Cascade"
    )]
    FgTestCase,
}

impl Related<super::fg_failure_cluster::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgFailureCluster.def()
    }
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
    parents = [
        (fg_failure_cluster, "FGFailureCluster", Column::A, "A"),
        (fg_test_case, "FGTestCase", Column::B, "B"),
    ]
);
crate::stamps!(id = none);
