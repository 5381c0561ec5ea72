//! `Organization`: a customer organization, the tenant itself. Class: tenant root.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `Organization`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "Organization", rename_all = "camelCase")]
pub struct Model {
    /// "id": the tenant id. Through a `TenantScope` it is the scope's own tenant id (filled in
    /// when left unset, and any other value is refused); elsewhere (`ActiveModel::insert`) a
    /// CUID2 is generated when it is left unset.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// "name".
    pub name: String,
    /// "slug": unique, used in URLs.
    pub slug: String,
    /// "githubLogin": the GitHub organization login, if linked.
    pub github_login: Option<String>,
    /// "domain": the e-mail domain, if any.
    pub domain: Option<String>,
    /// "settings".
    #[sea_orm(column_type = "JsonBinary")]
    pub settings: Json,
    /// "plan": 'free' by default.
    pub plan: String,
    /// "status": 'active' by default.
    pub status: String,
    /// "createdAt": set by the database.
    pub created_at: DateTimeUtc,
    /// "updatedAt": set by the crate on insert and update.
    pub updated_at: DateTimeUtc,
}

/// The tables that reference `Organization`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `OrganizationUser_orgId_fkey`.
    #[sea_orm(has_many = "super::organization_user::Entity")]
    OrganizationUser,
    /// `Subscription_orgId_fkey`.
    #[sea_orm(has_many = "super::subscription::Entity")]
    Subscription,
    /// `AuditLog_orgId_fkey`.
    #[sea_orm(has_many = "super::audit_log::Entity")]
    AuditLog,
    /// `UsageMetric_orgId_fkey`.
    #[sea_orm(has_many = "super::usage_metric::Entity")]
    UsageMetric,
    /// `Installation_orgId_fkey`.
    #[sea_orm(has_many = "super::installation::Entity")]
    Installation,
    /// `Repository_orgId_fkey`.
    #[sea_orm(has_many = "super::repository::Entity")]
    Repository,
    /// `CheckRun_orgId_fkey`.
    #[sea_orm(has_many = "super::check_run::Entity")]
    CheckRun,
    /// `WorkflowRun_orgId_fkey`.
    #[sea_orm(has_many = "super::workflow_run::Entity")]
    WorkflowRun,
    /// `TestSuite_orgId_fkey`.
    #[sea_orm(has_many = "super::test_suite::Entity")]
    TestSuite,
    /// `FGRepository_orgId_fkey`.
    #[sea_orm(has_many = "super::fg_repository::Entity")]
    FgRepository,
    /// `FGWorkflowRun_orgId_fkey`.
    #[sea_orm(has_many = "super::fg_workflow_run::Entity")]
    FgWorkflowRun,
    /// `FGTestCase_orgId_fkey`.
    #[sea_orm(has_many = "super::fg_test_case::Entity")]
    FgTestCase,
    /// `FGOccurrence_orgId_fkey`.
    #[sea_orm(has_many = "super::fg_occurrence::Entity")]
    FgOccurrence,
    /// `FGFlakeScore_orgId_fkey`.
    #[sea_orm(has_many = "super::fg_flake_score::Entity")]
    FgFlakeScore,
    /// `FGQuarantineDecision_orgId_fkey`.
    #[sea_orm(has_many = "super::fg_quarantine_decision::Entity")]
    FgQuarantineDecision,
    /// `FGFailureCluster_orgId_fkey`.
    #[sea_orm(has_many = "super::fg_failure_cluster::Entity")]
    FgFailureCluster,
    /// `TestResult_orgId_fkey`.
    #[sea_orm(has_many = "super::test_result::Entity")]
    TestResult,
    /// `FlakeDetection_orgId_fkey`.
    #[sea_orm(has_many = "super::flake_detection::Entity")]
    FlakeDetection,
}

impl Related<super::organization_user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::OrganizationUser.def()
    }
}

impl Related<super::subscription::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Subscription.def()
    }
}

impl Related<super::audit_log::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AuditLog.def()
    }
}

impl Related<super::usage_metric::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UsageMetric.def()
    }
}

impl Related<super::installation::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Installation.def()
    }
}

impl Related<super::repository::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Repository.def()
    }
}

impl Related<super::check_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CheckRun.def()
    }
}

impl Related<super::workflow_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WorkflowRun.def()
    }
}

impl Related<super::test_suite::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::TestSuite.def()
    }
}

impl Related<super::fg_repository::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgRepository.def()
    }
}

impl Related<super::fg_workflow_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgWorkflowRun.def()
    }
}

impl Related<super::fg_test_case::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgTestCase.def()
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

impl Related<super::fg_failure_cluster::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FgFailureCluster.def()
    }
}

impl Related<super::test_result::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::TestResult.def()
    }
}

impl Related<super::flake_detection::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FlakeDetection.def()
    }
}

crate::tenancy!(root, id = Column::Id);
crate::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
