//! Step 2, of the schema's six history steps: JUnit ingestion.
//!
//! Creates `TestSuite`, `TestResult` (parsed JUnit output, attached to a `Repository` and optionally
//! to a `CheckRun` and a `WorkflowJob`) and the global `IngestionJob` queue, and adds
//! `FlakeDetection_testResultId_fkey` now that `TestResult` exists.
//!
//! `TestSuite` and `TestResult` get `"orgId"` in step 5; their unique constraints are declared here
//! without it (`TestSuite_repositoryId_name_runId_key`,
//! `TestResult_repositoryId_testFullName_file_suite_key`) and re-declared with `"orgId"` in step 6.

use sea_orm_migration::prelude::*;

/// `m20240824_000001_enhance_test_models_for_junit_ingestion`: test suites, test results and
/// ingestion jobs (see the module docs).
#[derive(DeriveMigrationName)]
pub struct Migration;

sql_step!(up = UP, down = DOWN);

const UP: &str = r#"
CREATE TABLE "TestSuite" (
    "id"            text             NOT NULL,
    "name"          text             NOT NULL,
    "package"       text,
    "hostname"      text,
    "tests"         integer          NOT NULL DEFAULT 0,
    "failures"      integer          NOT NULL DEFAULT 0,
    "errors"        integer          NOT NULL DEFAULT 0,
    "skipped"       integer          NOT NULL DEFAULT 0,
    "time"          double precision,
    "timestamp"     text,
    "runId"         text,
    "jobName"       text,
    "repositoryId"  text             NOT NULL,
    "checkRunId"    text,
    "workflowJobId" text,
    "systemOut"     text,
    "systemErr"     text,
    "properties"    jsonb            NOT NULL DEFAULT '{}'::jsonb,
    "createdAt"     timestamptz      NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"     timestamptz      NOT NULL,
    CONSTRAINT "TestSuite_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "TestSuite_repositoryId_name_runId_key" UNIQUE ("repositoryId", "name", "runId"),
    CONSTRAINT "TestSuite_repositoryId_fkey" FOREIGN KEY ("repositoryId")
        REFERENCES "Repository" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "TestSuite_checkRunId_fkey" FOREIGN KEY ("checkRunId")
        REFERENCES "CheckRun" ("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "TestSuite_workflowJobId_fkey" FOREIGN KEY ("workflowJobId")
        REFERENCES "WorkflowJob" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
CREATE INDEX "TestSuite_name_idx" ON "TestSuite" ("name");
CREATE INDEX "TestSuite_repositoryId_idx" ON "TestSuite" ("repositoryId");
CREATE INDEX "TestSuite_checkRunId_idx" ON "TestSuite" ("checkRunId");
CREATE INDEX "TestSuite_workflowJobId_idx" ON "TestSuite" ("workflowJobId");
CREATE INDEX "TestSuite_runId_idx" ON "TestSuite" ("runId");
CREATE INDEX "TestSuite_repositoryId_name_idx" ON "TestSuite" ("repositoryId", "name");
CREATE INDEX "TestSuite_createdAt_idx" ON "TestSuite" ("createdAt");

CREATE TABLE "TestResult" (
    "id"            text             NOT NULL,
    "name"          text             NOT NULL,
    "suite"         text             NOT NULL,
    "class"         text,
    "testFullName"  text             NOT NULL,
    "file"          text,
    "status"        text             NOT NULL,
    "time"          double precision NOT NULL,
    "message"       text,
    "stack"         text,
    "attempt"       integer          NOT NULL DEFAULT 1,
    "runId"         text             NOT NULL,
    "jobName"       text,
    "repositoryId"  text             NOT NULL,
    "testSuiteId"   text,
    "checkRunId"    text,
    "workflowJobId" text,
    "createdAt"     timestamptz      NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"     timestamptz      NOT NULL,
    CONSTRAINT "TestResult_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "TestResult_repositoryId_testFullName_file_suite_key"
        UNIQUE ("repositoryId", "testFullName", "file", "suite"),
    CONSTRAINT "TestResult_repositoryId_fkey" FOREIGN KEY ("repositoryId")
        REFERENCES "Repository" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "TestResult_testSuiteId_fkey" FOREIGN KEY ("testSuiteId")
        REFERENCES "TestSuite" ("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "TestResult_checkRunId_fkey" FOREIGN KEY ("checkRunId")
        REFERENCES "CheckRun" ("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "TestResult_workflowJobId_fkey" FOREIGN KEY ("workflowJobId")
        REFERENCES "WorkflowJob" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
CREATE INDEX "TestResult_repositoryId_runId_idx" ON "TestResult" ("repositoryId", "runId");
CREATE INDEX "TestResult_status_idx" ON "TestResult" ("status");
CREATE INDEX "TestResult_suite_idx" ON "TestResult" ("suite");
CREATE INDEX "TestResult_createdAt_idx" ON "TestResult" ("createdAt");
CREATE INDEX "TestResult_name_idx" ON "TestResult" ("name");
CREATE INDEX "TestResult_class_idx" ON "TestResult" ("class");
CREATE INDEX "TestResult_testFullName_idx" ON "TestResult" ("testFullName");
CREATE INDEX "TestResult_repositoryId_idx" ON "TestResult" ("repositoryId");
CREATE INDEX "TestResult_testSuiteId_idx" ON "TestResult" ("testSuiteId");
CREATE INDEX "TestResult_checkRunId_idx" ON "TestResult" ("checkRunId");
CREATE INDEX "TestResult_workflowJobId_idx" ON "TestResult" ("workflowJobId");
CREATE INDEX "TestResult_runId_idx" ON "TestResult" ("runId");
CREATE INDEX "TestResult_jobName_idx" ON "TestResult" ("jobName");
CREATE INDEX "TestResult_repositoryId_status_idx" ON "TestResult" ("repositoryId", "status");
CREATE INDEX "TestResult_repositoryId_suite_idx" ON "TestResult" ("repositoryId", "suite");
CREATE INDEX "TestResult_testSuiteId_status_idx" ON "TestResult" ("testSuiteId", "status");

CREATE TABLE "IngestionJob" (
    "id"               text        NOT NULL,
    "correlationId"    text,
    "workflowRunId"    text        NOT NULL,
    "repositoryId"     text        NOT NULL,
    "priority"         text        NOT NULL DEFAULT 'normal',
    "status"           text        NOT NULL DEFAULT 'queued',
    "artifactCount"    integer,
    "testCount"        integer,
    "failureCount"     integer,
    "errorCount"       integer,
    "processingTimeMs" integer,
    "errorMessage"     text,
    "metadata"         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    "startedAt"        timestamptz,
    "completedAt"      timestamptz,
    "createdAt"        timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"        timestamptz NOT NULL,
    CONSTRAINT "IngestionJob_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "IngestionJob_correlationId_key" UNIQUE ("correlationId")
);
CREATE INDEX "IngestionJob_status_idx" ON "IngestionJob" ("status");
CREATE INDEX "IngestionJob_workflowRunId_idx" ON "IngestionJob" ("workflowRunId");
CREATE INDEX "IngestionJob_repositoryId_idx" ON "IngestionJob" ("repositoryId");
CREATE INDEX "IngestionJob_createdAt_idx" ON "IngestionJob" ("createdAt");
CREATE INDEX "IngestionJob_correlationId_idx" ON "IngestionJob" ("correlationId");
CREATE INDEX "IngestionJob_status_createdAt_idx" ON "IngestionJob" ("status", "createdAt");

ALTER TABLE "FlakeDetection" ADD CONSTRAINT "FlakeDetection_testResultId_fkey" FOREIGN KEY ("testResultId")
    REFERENCES "TestResult" ("id") ON DELETE SET NULL ON UPDATE CASCADE;
"#;

const DOWN: &str = r#"
ALTER TABLE "FlakeDetection" DROP CONSTRAINT "FlakeDetection_testResultId_fkey";
DROP TABLE "IngestionJob", "TestResult", "TestSuite";
"#;
