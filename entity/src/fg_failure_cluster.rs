//! `FGFailureCluster`: failures of one repository grouped by failure signature. Class: tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `FGFailureCluster`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "FGFailureCluster", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the owning organization.
    pub org_id: String,
    /// "repoId": the `FGRepository`.
    pub repo_id: String,
    /// "failureMsgSignature": the normalized failure message shared by the cluster.
    pub failure_msg_signature: String,
    /// "failureStackDigest": the stack-trace digest shared by the cluster, if any.
    pub failure_stack_digest: Option<String>,
    /// "testIds": the ids of the `FGTestCase`s in the cluster.
    #[sea_orm(column_type = "Array(RcOrArc::new(ColumnType::Text))")]
    pub test_ids: Vec<String>,
    /// "exampleMessage".
    pub example_message: Option<String>,
    /// "exampleStackTrace".
    pub example_stack_trace: Option<String>,
    /// "occurrenceCount": 1 by default.
    pub occurrence_count: i32,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// Foreign keys of `FGFailureCluster`, and the tables that reference it.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `FGFailureCluster_orgId_fkey`.
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `FGFailureCluster_repoId_fkey`.
    #[sea_orm(
        belongs_to = "super::fg_repository::Entity",
        from = "Column::RepoId",
        to = "super::fg_repository::Column::Id",
        on_delete = "Cascade"
    )]
    FgRepository,
    /// `_FGFailureClusterToFGTestCase_A_fkey`.
    #[sea_orm(has_many = "super::fg_failure_cluster_to_fg_test_case::Entity")]
    FgFailureClusterToFgTestCase,
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

impl Related<super::fg_repository::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgRepository.def()
    }
}

impl Related<super::fg_failure_cluster_to_fg_test_case::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgFailureClusterToFgTestCase.def()
    }
}

impl Related<super::fg_test_case::Entity> for Entity {
    fn to() -> RelationDef {
        super::fg_failure_cluster_to_fg_test_case::Relation::FgTestCase.def()
    }
    fn via() -> Option<RelationDef> {
        Some(
            super::fg_failure_cluster_to_fg_test_case::Relation::FgFailureCluster
                .def()
                .rev(),
        )
    }
}

crate::tenancy!(tenant, org_id = Column::OrgId);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
