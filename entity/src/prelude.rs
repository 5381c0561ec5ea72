//! Every entity under its table's name, and the enums.

pub use crate::enums::{FgQuarantineState, Priority, TaskStatus};

pub use crate::artifact::Entity as Artifact;
pub use crate::audit_log::Entity as AuditLog;
pub use crate::check_run::Entity as CheckRun;
pub use crate::fg_failure_cluster::Entity as FgFailureCluster;
pub use crate::fg_failure_cluster_to_fg_test_case::Entity as FgFailureClusterToFgTestCase;
pub use crate::fg_flake_score::Entity as FgFlakeScore;
pub use crate::fg_issue_link::Entity as FgIssueLink;
pub use crate::fg_job::Entity as FgJob;
pub use crate::fg_occurrence::Entity as FgOccurrence;
pub use crate::fg_quarantine_decision::Entity as FgQuarantineDecision;
pub use crate::fg_repository::Entity as FgRepository;
pub use crate::fg_test_case::Entity as FgTestCase;
pub use crate::fg_workflow_run::Entity as FgWorkflowRun;
pub use crate::flake_detection::Entity as FlakeDetection;
pub use crate::ingestion_job::Entity as IngestionJob;
pub use crate::installation::Entity as Installation;
pub use crate::organization::Entity as Organization;
pub use crate::organization_user::Entity as OrganizationUser;
pub use crate::repository::Entity as Repository;
pub use crate::subscription::Entity as Subscription;
pub use crate::task::Entity as Task;
pub use crate::test_result::Entity as TestResult;
pub use crate::test_suite::Entity as TestSuite;
pub use crate::usage_metric::Entity as UsageMetric;
pub use crate::user::Entity as User;
pub use crate::workflow_job::Entity as WorkflowJob;
pub use crate::workflow_run::Entity as WorkflowRun;
