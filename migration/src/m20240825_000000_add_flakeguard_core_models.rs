//! Step 3, of the schema's six history steps: the FlakeGuard core.
//!
//! Creates the enum `"FGQuarantineState"` and the tables `FGRepository`, `FGWorkflowRun`, `FGJob`,
//! `FGTestCase`, `FGOccurrence`, `FGFlakeScore`, `FGQuarantineDecision`, `FGIssueLink`,
//! `FGFailureCluster` and the many-to-many link table `_FGFailureClusterToFGTestCase`.
//!
//! At this step `FGFlakeScore` has no `"id"`: one score per test, keyed by `"testId"`
//! (`FGFlakeScore_pkey` on `("testId")`); step 5 re-keys it. The tables that get `"orgId"` in
//! step 5 declare their natural-key unique constraints here without it; step 6 re-declares them
//! with `"orgId"` first.

use sea_orm_migration::prelude::*;

/// `m20240825_000000_add_flakeguard_core_models`: the `FG*` tables (see the module docs).
#[derive(DeriveMigrationName)]
pub struct Migration;

sql_step!(up = UP, down = DOWN);

const UP: &str = r#"
CREATE TYPE "FGQuarantineState" AS ENUM ('PROPOSED', 'ACTIVE', 'EXPIRED', 'DISMISSED', 'RESOLVED');

CREATE TABLE "FGRepository" (
    "id"             text        NOT NULL,
    "provider"       text        NOT NULL DEFAULT 'github',
    "owner"          text        NOT NULL,
    "name"           text        NOT NULL,
    "installationId" text        NOT NULL,
    "createdAt"      timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"      timestamptz NOT NULL,
    CONSTRAINT "FGRepository_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "FGRepository_provider_owner_name_key" UNIQUE ("provider", "owner", "name")
);
CREATE INDEX "FGRepository_provider_idx" ON "FGRepository" ("provider");
CREATE INDEX "FGRepository_owner_idx" ON "FGRepository" ("owner");
CREATE INDEX "FGRepository_installationId_idx" ON "FGRepository" ("installationId");

CREATE TABLE "FGWorkflowRun" (
    "id"         text        NOT NULL,
    "repoId"     text        NOT NULL,
    "runId"      text        NOT NULL,
    "status"     text        NOT NULL,
    "conclusion" text,
    "createdAt"  timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"  timestamptz NOT NULL,
    CONSTRAINT "FGWorkflowRun_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "FGWorkflowRun_repoId_runId_key" UNIQUE ("repoId", "runId"),
    CONSTRAINT "FGWorkflowRun_repoId_fkey" FOREIGN KEY ("repoId")
        REFERENCES "FGRepository" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "FGWorkflowRun_repoId_idx" ON "FGWorkflowRun" ("repoId");
CREATE INDEX "FGWorkflowRun_status_idx" ON "FGWorkflowRun" ("status");
CREATE INDEX "FGWorkflowRun_conclusion_idx" ON "FGWorkflowRun" ("conclusion");
CREATE INDEX "FGWorkflowRun_createdAt_idx" ON "FGWorkflowRun" ("createdAt");

CREATE TABLE "FGJob" (
    "id"          text        NOT NULL,
    "runId"       text        NOT NULL,
    "jobId"       text        NOT NULL,
    "name"        text        NOT NULL,
    "status"      text        NOT NULL,
    "conclusion"  text,
    "startedAt"   timestamptz,
    "completedAt" timestamptz,
    "createdAt"   timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"   timestamptz NOT NULL,
    CONSTRAINT "FGJob_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "FGJob_runId_jobId_key" UNIQUE ("runId", "jobId"),
    CONSTRAINT "FGJob_runId_fkey" FOREIGN KEY ("runId")
        REFERENCES "FGWorkflowRun" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "FGJob_runId_idx" ON "FGJob" ("runId");
CREATE INDEX "FGJob_status_idx" ON "FGJob" ("status");
CREATE INDEX "FGJob_conclusion_idx" ON "FGJob" ("conclusion");

CREATE TABLE "FGTestCase" (
    "id"        text        NOT NULL,
    "repoId"    text        NOT NULL,
    "suite"     text        NOT NULL,
    "className" text,
    "name"      text        NOT NULL,
    "file"      text,
    "ownerTeam" text,
    "createdAt" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" timestamptz NOT NULL,
    CONSTRAINT "FGTestCase_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "FGTestCase_repoId_suite_className_name_key"
        UNIQUE ("repoId", "suite", "className", "name"),
    CONSTRAINT "FGTestCase_repoId_fkey" FOREIGN KEY ("repoId")
        REFERENCES "FGRepository" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "FGTestCase_repoId_suite_className_name_idx"
    ON "FGTestCase" ("repoId", "suite", "className", "name");
CREATE INDEX "FGTestCase_repoId_idx" ON "FGTestCase" ("repoId");
CREATE INDEX "FGTestCase_suite_idx" ON "FGTestCase" ("suite");
CREATE INDEX "FGTestCase_ownerTeam_idx" ON "FGTestCase" ("ownerTeam");
CREATE INDEX "FGTestCase_file_idx" ON "FGTestCase" ("file");

CREATE TABLE "FGOccurrence" (
    "id"                  text        NOT NULL,
    "testId"              text        NOT NULL,
    "runId"               text        NOT NULL,
    "jobId"               text,
    "status"              text        NOT NULL,
    "durationMs"          integer,
    "failureMsgSignature" text,
    "failureStackDigest"  text,
    "failureMessage"      text,
    "failureStackTrace"   text,
    "attempt"             integer     NOT NULL DEFAULT 1,
    "createdAt"           timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "FGOccurrence_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "FGOccurrence_runId_testId_key" UNIQUE ("runId", "testId"),
    CONSTRAINT "FGOccurrence_testId_fkey" FOREIGN KEY ("testId")
        REFERENCES "FGTestCase" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "FGOccurrence_runId_fkey" FOREIGN KEY ("runId")
        REFERENCES "FGWorkflowRun" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "FGOccurrence_jobId_fkey" FOREIGN KEY ("jobId")
        REFERENCES "FGJob" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
CREATE INDEX "FGOccurrence_testId_idx" ON "FGOccurrence" ("testId");
CREATE INDEX "FGOccurrence_runId_idx" ON "FGOccurrence" ("runId");
CREATE INDEX "FGOccurrence_status_idx" ON "FGOccurrence" ("status");
CREATE INDEX "FGOccurrence_failureMsgSignature_testId_idx"
    ON "FGOccurrence" ("failureMsgSignature", "testId");
CREATE INDEX "FGOccurrence_failureStackDigest_testId_idx"
    ON "FGOccurrence" ("failureStackDigest", "testId");
CREATE INDEX "FGOccurrence_createdAt_idx" ON "FGOccurrence" ("createdAt");
CREATE INDEX "FGOccurrence_testId_createdAt_idx" ON "FGOccurrence" ("testId", "createdAt");
CREATE INDEX "FGOccurrence_testId_status_idx" ON "FGOccurrence" ("testId", "status");

CREATE TABLE "FGFlakeScore" (
    "testId"        text             NOT NULL,
    "score"         double precision NOT NULL DEFAULT 0.0,
    "windowN"       integer          NOT NULL DEFAULT 50,
    "lastUpdatedAt" timestamptz      NOT NULL,
    CONSTRAINT "FGFlakeScore_pkey" PRIMARY KEY ("testId"),
    CONSTRAINT "FGFlakeScore_testId_fkey" FOREIGN KEY ("testId")
        REFERENCES "FGTestCase" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "FGFlakeScore_score_idx" ON "FGFlakeScore" ("score");
CREATE INDEX "FGFlakeScore_lastUpdatedAt_idx" ON "FGFlakeScore" ("lastUpdatedAt");

CREATE TABLE "FGQuarantineDecision" (
    "id"        text                NOT NULL,
    "testId"    text                NOT NULL,
    "state"     "FGQuarantineState" NOT NULL DEFAULT 'PROPOSED',
    "rationale" text                NOT NULL,
    "byUser"    text,
    "until"     timestamptz,
    "createdAt" timestamptz         NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" timestamptz         NOT NULL,
    CONSTRAINT "FGQuarantineDecision_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "FGQuarantineDecision_testId_fkey" FOREIGN KEY ("testId")
        REFERENCES "FGTestCase" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "FGQuarantineDecision_testId_idx" ON "FGQuarantineDecision" ("testId");
CREATE INDEX "FGQuarantineDecision_state_idx" ON "FGQuarantineDecision" ("state");
CREATE INDEX "FGQuarantineDecision_until_idx" ON "FGQuarantineDecision" ("until");
CREATE INDEX "FGQuarantineDecision_createdAt_idx" ON "FGQuarantineDecision" ("createdAt");

CREATE TABLE "FGIssueLink" (
    "id"        text        NOT NULL,
    "testId"    text        NOT NULL,
    "provider"  text        NOT NULL DEFAULT 'github',
    "url"       text        NOT NULL,
    "createdAt" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "FGIssueLink_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "FGIssueLink_testId_fkey" FOREIGN KEY ("testId")
        REFERENCES "FGTestCase" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "FGIssueLink_testId_idx" ON "FGIssueLink" ("testId");
CREATE INDEX "FGIssueLink_provider_idx" ON "FGIssueLink" ("provider");
CREATE INDEX "FGIssueLink_createdAt_idx" ON "FGIssueLink" ("createdAt");

CREATE TABLE "FGFailureCluster" (
    "id"                  text        NOT NULL,
    "repoId"              text        NOT NULL,
    "failureMsgSignature" text        NOT NULL,
    "failureStackDigest"  text,
    "testIds"             text[]      NOT NULL,
    "exampleMessage"      text,
    "exampleStackTrace"   text,
    "occurrenceCount"     integer     NOT NULL DEFAULT 1,
    "createdAt"           timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"           timestamptz NOT NULL,
    CONSTRAINT "FGFailureCluster_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "FGFailureCluster_repoId_failureMsgSignature_key"
        UNIQUE ("repoId", "failureMsgSignature"),
    CONSTRAINT "FGFailureCluster_repoId_fkey" FOREIGN KEY ("repoId")
        REFERENCES "FGRepository" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "FGFailureCluster_failureMsgSignature_repoId_idx"
    ON "FGFailureCluster" ("failureMsgSignature", "repoId");
CREATE INDEX "FGFailureCluster_failureStackDigest_idx" ON "FGFailureCluster" ("failureStackDigest");
CREATE INDEX "FGFailureCluster_occurrenceCount_idx" ON "FGFailureCluster" ("occurrenceCount");
CREATE INDEX "FGFailureCluster_createdAt_idx" ON "FGFailureCluster" ("createdAt");

CREATE TABLE "_FGFailureClusterToFGTestCase" (
    "A" text NOT NULL,
    "B" text NOT NULL,
    CONSTRAINT "_FGFailureClusterToFGTestCase_AB_pkey" PRIMARY KEY ("A", "B"),
    CONSTRAINT "_FGFailureClusterToFGTestCase_A_fkey" FOREIGN KEY ("A")
        REFERENCES "FGFailureCluster" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "_FGFailureClusterToFGTestCase_B_fkey" FOREIGN KEY ("B")
        REFERENCES "FGTestCase" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "_FGFailureClusterToFGTestCase_B_index" ON "_FGFailureClusterToFGTestCase" ("B");
"#;

const DOWN: &str = r#"
DROP TABLE "_FGFailureClusterToFGTestCase", "FGFailureCluster", "FGIssueLink",
    "FGQuarantineDecision", "FGFlakeScore", "FGOccurrence", "FGTestCase", "FGJob",
    "FGWorkflowRun", "FGRepository";
DROP TYPE "FGQuarantineState";
"#;
