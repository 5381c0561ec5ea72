//! `FGTestCase`: one test of an `FGRepository`, identified by suite, class and name. Class: tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `FGTestCase`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "FGTestCase", rename_all = "camelCase")]
pub struct Model {
    /// "id": a CUID2, generated when left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "orgId": the owning organization.
    pub org_id: String,
    /// "repoId": the `FGRepository`.
    pub repo_id: String,
    /// "suite".
    pub suite: String,
    /// "className".
    pub class_name: Option<String>,
    /// "name".
    pub name: String,
    /// "file".
    pub file: Option<String>,
    /// "ownerTeam": the team that owns the test.
    pub owner_team: Option<String>,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// Foreign keys of `FGTestCase`, and the tables that reference it.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `FGTestCase_orgId_fkey`.
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
    /// `FGTestCase_repoId_fkey`.
    #[sea_orm(
        belongs_to = "super::fg_repository::Entity",
        from = "Column::RepoId",
        to = "super::fg_repository::Column::Id",
        on_delete = "Cascade"
    )]
    FgRepository,
    /// `FGOccurrence_testId_fkey`.
    #[sea_orm(has_many = "super::fg_occurrence::Entity")]
    FgOccurrence,
    /// `FGFlakeScore_testId_fkey`.
    #[sea_orm(has_many = "super::fg_flake_score::Entity")]
    FgFlakeScore,
    /// `FGQuarantineDecision_testId_fkey`.
    #[sea_orm(has_many = "super::fg_quarantine_decision::Entity")]
    FgQuarantineDecision,
    /// `FGIssueLink_testId_fkey`.
    #[sea_orm(has_many = "super::fg_issue_link::Entity")]
    FgIssueLink,
    /// `_FGFailureClusterToFGTestCase_B_fkey`.
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

impl Related<super::fg_occurrence::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgOccurrence.def()
    }
}

impl Related<super::fg_flake_score::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgFlakeScore.def()
    }
}

impl Related<super::fg_quarantine_decision::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgQuarantineDecision.def()
    }
}

impl Related<super::fg_issue_link::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgIssueLink.def()
    }
}

impl Related<super::fg_failure_cluster_to_fg_test_case::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgFailureClusterToFgTestCase.def()
    }
}

impl Related<super::fg_failure_cluster::Entity> for Entity {
    fn to() -> RelationDef {
        super::fg_failure_cluster_to_fg_test_case::Relation::FgFailureCluster.def()
    }
    fn via() -> Option<RelationDef> {
        Some(
            super::fg_failure_cluster_to_fg_test_case::Relation::FgTestCase
                .def()
                .rev(),
        )
    }
}

crate::tenancy!(tenant, org_id = Column::OrgId);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
