//! Step 6, of the schema's six history steps: tenant-first keys and indexes.
//!
//! The natural-key unique constraints of the tables that gained `"orgId"` in step 5 are
//! re-declared with `"orgId"` first, so that two organizations may hold the same test, run or
//! repository name: each old constraint (named after its columns, without `orgId`) is dropped and
//! the new one added under its SCHEMA.md name. Then the composite indexes that start with
//! `"orgId"` are created, the ones that tenant-scoped queries use.
//!
//! Down drops those indexes and restores the constraints without `"orgId"`; it fails (and changes
//! nothing) if two organizations meanwhile hold rows that the old constraints would not allow.

use sea_orm_migration::prelude::*;

/// `m20240826_000002_fix_migration_inconsistencies`: unique constraints with `"orgId"` first and
/// the `"orgId"`-leading composite indexes (see the module docs).
#[derive(DeriveMigrationName)]
pub struct Migration;

sql_step!(up = UP, down = DOWN);

const UP: &str = r#"
ALTER TABLE "FlakeDetection" DROP CONSTRAINT "FlakeDetection_testName_repositoryId_key";
ALTER TABLE "FlakeDetection" ADD CONSTRAINT "FlakeDetection_orgId_testName_repositoryId_key"
    UNIQUE ("orgId", "testName", "repositoryId");

ALTER TABLE "TestSuite" DROP CONSTRAINT "TestSuite_repositoryId_name_runId_key";
ALTER TABLE "TestSuite" ADD CONSTRAINT "TestSuite_orgId_repositoryId_name_runId_key"
    UNIQUE ("orgId", "repositoryId", "name", "runId");

ALTER TABLE "TestResult" DROP CONSTRAINT "TestResult_repositoryId_testFullName_file_suite_key";
ALTER TABLE "TestResult" ADD CONSTRAINT "TestResult_orgId_repositoryId_testFullName_file_suite_key"
    UNIQUE ("orgId", "repositoryId", "testFullName", "file", "suite");

ALTER TABLE "FGRepository" DROP CONSTRAINT "FGRepository_provider_owner_name_key";
ALTER TABLE "FGRepository" ADD CONSTRAINT "FGRepository_orgId_provider_owner_name_key"
    UNIQUE ("orgId", "provider", "owner", "name");

ALTER TABLE "FGWorkflowRun" DROP CONSTRAINT "FGWorkflowRun_repoId_runId_key";
ALTER TABLE "FGWorkflowRun" ADD CONSTRAINT "FGWorkflowRun_orgId_repoId_runId_key"
    UNIQUE ("orgId", "repoId", "runId");

ALTER TABLE "FGTestCase" DROP CONSTRAINT "FGTestCase_repoId_suite_className_name_key";
ALTER TABLE "FGTestCase" ADD CONSTRAINT "FGTestCase_orgId_repoId_suite_className_name_key"
    UNIQUE ("orgId", "repoId", "suite", "className", "name");

ALTER TABLE "FGOccurrence" DROP CONSTRAINT "FGOccurrence_runId_testId_key";
ALTER TABLE "FGOccurrence" ADD CONSTRAINT "FGOccurrence_orgId_runId_testId_key"
    UNIQUE ("orgId", "runId", "testId");

ALTER TABLE "FGFailureCluster" DROP CONSTRAINT "FGFailureCluster_repoId_failureMsgSignature_key";
ALTER TABLE "FGFailureCluster" ADD CONSTRAINT "FGFailureCluster_orgId_repoId_failureMsgSignature_key"
    UNIQUE ("orgId", "repoId", "failureMsgSignature");

CREATE INDEX "Repository_orgId_fullName_idx" ON "Repository" ("orgId", "fullName");
CREATE INDEX "CheckRun_orgId_repositoryId_idx" ON "CheckRun" ("orgId", "repositoryId");
CREATE INDEX "WorkflowRun_orgId_repositoryId_idx" ON "WorkflowRun" ("orgId", "repositoryId");
CREATE INDEX "TestSuite_orgId_repositoryId_idx" ON "TestSuite" ("orgId", "repositoryId");
CREATE INDEX "TestResult_orgId_repositoryId_idx" ON "TestResult" ("orgId", "repositoryId");
CREATE INDEX "TestResult_orgId_status_idx" ON "TestResult" ("orgId", "status");
CREATE INDEX "FlakeDetection_orgId_repositoryId_idx" ON "FlakeDetection" ("orgId", "repositoryId");
CREATE INDEX "FlakeDetection_orgId_isFlaky_idx" ON "FlakeDetection" ("orgId", "isFlaky");
CREATE INDEX "FGRepository_orgId_provider_idx" ON "FGRepository" ("orgId", "provider");
CREATE INDEX "FGWorkflowRun_orgId_repoId_idx" ON "FGWorkflowRun" ("orgId", "repoId");
CREATE INDEX "FGTestCase_orgId_repoId_idx" ON "FGTestCase" ("orgId", "repoId");
CREATE INDEX "FGOccurrence_orgId_testId_idx" ON "FGOccurrence" ("orgId", "testId");
CREATE INDEX "FGFlakeScore_orgId_score_idx" ON "FGFlakeScore" ("orgId", "score");
CREATE INDEX "FGQuarantineDecision_orgId_state_idx" ON "FGQuarantineDecision" ("orgId", "state");
CREATE INDEX "FGFailureCluster_orgId_repoId_idx" ON "FGFailureCluster" ("orgId", "repoId");
"#;

const DOWN: &str = r#"
DROP INDEX "Repository_orgId_fullName_idx", "CheckRun_orgId_repositoryId_idx",
    "WorkflowRun_orgId_repositoryId_idx", "TestSuite_orgId_repositoryId_idx",
    "TestResult_orgId_repositoryId_idx", "TestResult_orgId_status_idx",
    "FlakeDetection_orgId_repositoryId_idx", "FlakeDetection_orgId_isFlaky_idx",
    "FGRepository_orgId_provider_idx", "FGWorkflowRun_orgId_repoId_idx",
    "FGTestCase_orgId_repoId_idx", "FGOccurrence_orgId_testId_idx",
    "FGFlakeScore_orgId_score_idx", "FGQuarantineDecision_orgId_state_idx",
    "FGFailureCluster_orgId_repoId_idx";

ALTER TABLE "FGFailureCluster" DROP CONSTRAINT "FGFailureCluster_orgId_repoId_failureMsgSignature_key";
ALTER TABLE "FGFailureCluster" ADD CONSTRAINT "FGFailureCluster_repoId_failureMsgSignature_key"
    UNIQUE ("repoId", "failureMsgSignature");

ALTER TABLE "FGOccurrence" DROP CONSTRAINT "FGOccurrence_orgId_runId_testId_key";
ALTER TABLE "FGOccurrence" ADD CONSTRAINT "FGOccurrence_runId_testId_key"
    UNIQUE ("runId", "testId");

ALTER TABLE "FGTestCase" DROP CONSTRAINT "FGTestCase_orgId_repoId_suite_className_name_key";
ALTER TABLE "FGTestCase" ADD CONSTRAINT "FGTestCase_repoId_suite_className_name_key"
    UNIQUE ("repoId", "suite", "className", "name");

ALTER TABLE "FGWorkflowRun" DROP CONSTRAINT "FGWorkflowRun_orgId_repoId_runId_key";
ALTER TABLE "FGWorkflowRun" ADD CONSTRAINT "FGWorkflowRun_repoId_runId_key"
    UNIQUE ("repoId", "runId");

ALTER TABLE "FGRepository" DROP CONSTRAINT "FGRepository_orgId_provider_owner_name_key";
ALTER TABLE "FGRepository" ADD CONSTRAINT "FGRepository_provider_owner_name_key"
    UNIQUE ("provider", "owner", "name");

ALTER TABLE "TestResult" DROP CONSTRAINT "TestResult_orgId_repositoryId_testFullName_file_suite_key";
ALTER TABLE "TestResult" ADD CONSTRAINT "TestResult_repositoryId_testFullName_file_suite_key"
    UNIQUE ("repositoryId", "testFullName", "file", "suite");

ALTER TABLE "TestSuite" DROP CONSTRAINT "TestSuite_orgId_repositoryId_name_runId_key";
ALTER TABLE "TestSuite" ADD CONSTRAINT "TestSuite_repositoryId_name_runId_key"
    UNIQUE ("repositoryId", "name", "runId");

ALTER TABLE "FlakeDetection" DROP CONSTRAINT "FlakeDetection_orgId_testName_repositoryId_key";
ALTER TABLE "FlakeDetection" ADD CONSTRAINT "FlakeDetection_testName_repositoryId_key"
    UNIQUE ("testName", "repositoryId");
"#;
