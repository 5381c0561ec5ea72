//! Step 1, of the schema's six history steps: the original schema.
//!
//! Creates the enums `"TaskStatus"` and `"Priority"` and the tables `User`, `Task`, `Installation`,
//! `Repository`, `WorkflowRun`, `CheckRun`, `WorkflowJob`, `Artifact` and `FlakeDetection`, with
//! their primary keys, unique constraints, indexes and foreign keys.
//!
//! None of these tables has `"orgId"` yet, except `Task`, whose nullable `"orgId"` (a personal task
//! has none) exists from the start, indexed but without a foreign key. `FlakeDetection."testResultId"`
//! exists here too; its foreign key to `TestResult` comes with that table in step 2.
//! `FlakeDetection_testName_repositoryId_key` is re-declared with `"orgId"` first in step 6.

use sea_orm_migration::prelude::*;

/// `m20240824_000000_init`: users, tasks and the GitHub App tables (see the module docs).
#[derive(DeriveMigrationName)]
pub struct Migration;

sql_step!(up = UP, down = DOWN);

const UP: &str = r#"
CREATE TYPE "TaskStatus" AS ENUM ('PENDING', 'IN_PROGRESS', 'COMPLETED', 'FAILED');
CREATE TYPE "Priority" AS ENUM ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL');

CREATE TABLE "User" (
    "id"          text        NOT NULL,
    "email"       text        NOT NULL,
    "name"        text,
    "githubId"    bigint,
    "avatar"      text,
    "role"        text        NOT NULL DEFAULT 'user',
    "status"      text        NOT NULL DEFAULT 'active',
    "lastLoginAt" timestamptz,
    "createdAt"   timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"   timestamptz NOT NULL,
    CONSTRAINT "User_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "User_email_key" UNIQUE ("email"),
    CONSTRAINT "User_githubId_key" UNIQUE ("githubId")
);
CREATE INDEX "User_githubId_idx" ON "User" ("githubId");
CREATE INDEX "User_role_idx" ON "User" ("role");
CREATE INDEX "User_status_idx" ON "User" ("status");

CREATE TABLE "Task" (
    "id"          text         NOT NULL,
    "title"       text         NOT NULL,
    "description" text,
    "status"      "TaskStatus" NOT NULL DEFAULT 'PENDING',
    "priority"    "Priority"   NOT NULL DEFAULT 'MEDIUM',
    "userId"      text         NOT NULL,
    "orgId"       text,
    "createdAt"   timestamptz  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"   timestamptz  NOT NULL,
    CONSTRAINT "Task_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "Task_userId_fkey" FOREIGN KEY ("userId")
        REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "Task_userId_idx" ON "Task" ("userId");
CREATE INDEX "Task_orgId_idx" ON "Task" ("orgId");
CREATE INDEX "Task_status_idx" ON "Task" ("status");

CREATE TABLE "Installation" (
    "id"                   text        NOT NULL,
    "githubInstallationId" bigint      NOT NULL,
    "accountLogin"         text        NOT NULL,
    "accountId"            bigint      NOT NULL,
    "accountType"          text        NOT NULL,
    "repositorySelection"  text        NOT NULL DEFAULT 'selected',
    "permissions"          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    "events"               text[]      NOT NULL DEFAULT '{}'::text[],
    "syncStatus"           text        NOT NULL DEFAULT 'active',
    "lastSyncAt"           timestamptz,
    "createdAt"            timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"            timestamptz NOT NULL,
    "suspendedAt"          timestamptz,
    CONSTRAINT "Installation_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "Installation_githubInstallationId_key" UNIQUE ("githubInstallationId")
);
CREATE INDEX "Installation_githubInstallationId_idx" ON "Installation" ("githubInstallationId");
CREATE INDEX "Installation_accountLogin_idx" ON "Installation" ("accountLogin");
CREATE INDEX "Installation_syncStatus_idx" ON "Installation" ("syncStatus");

CREATE TABLE "Repository" (
    "id"             text        NOT NULL,
    "githubId"       bigint      NOT NULL,
    "nodeId"         text        NOT NULL,
    "name"           text        NOT NULL,
    "fullName"       text        NOT NULL,
    "owner"          text        NOT NULL,
    "private"        boolean     NOT NULL DEFAULT false,
    "defaultBranch"  text        NOT NULL DEFAULT 'main',
    "installationId" text        NOT NULL,
    "isActive"       boolean     NOT NULL DEFAULT true,
    "settings"       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    "createdAt"      timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"      timestamptz NOT NULL,
    CONSTRAINT "Repository_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "Repository_githubId_key" UNIQUE ("githubId"),
    CONSTRAINT "Repository_installationId_fkey" FOREIGN KEY ("installationId")
        REFERENCES "Installation" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "Repository_githubId_idx" ON "Repository" ("githubId");
CREATE INDEX "Repository_fullName_idx" ON "Repository" ("fullName");
CREATE INDEX "Repository_installationId_idx" ON "Repository" ("installationId");

CREATE TABLE "WorkflowRun" (
    "id"             text        NOT NULL,
    "githubId"       bigint      NOT NULL,
    "name"           text,
    "headBranch"     text        NOT NULL,
    "headSha"        text        NOT NULL,
    "status"         text        NOT NULL,
    "conclusion"     text,
    "workflowId"     bigint      NOT NULL,
    "workflowName"   text        NOT NULL,
    "repositoryId"   text        NOT NULL,
    "installationId" text        NOT NULL,
    "runStartedAt"   timestamptz,
    "createdAt"      timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"      timestamptz NOT NULL,
    CONSTRAINT "WorkflowRun_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "WorkflowRun_githubId_key" UNIQUE ("githubId"),
    CONSTRAINT "WorkflowRun_repositoryId_fkey" FOREIGN KEY ("repositoryId")
        REFERENCES "Repository" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "WorkflowRun_installationId_fkey" FOREIGN KEY ("installationId")
        REFERENCES "Installation" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "WorkflowRun_githubId_idx" ON "WorkflowRun" ("githubId");
CREATE INDEX "WorkflowRun_status_idx" ON "WorkflowRun" ("status");
CREATE INDEX "WorkflowRun_conclusion_idx" ON "WorkflowRun" ("conclusion");
CREATE INDEX "WorkflowRun_repositoryId_idx" ON "WorkflowRun" ("repositoryId");
CREATE INDEX "WorkflowRun_workflowId_idx" ON "WorkflowRun" ("workflowId");

CREATE TABLE "CheckRun" (
    "id"             text        NOT NULL,
    "githubId"       bigint      NOT NULL,
    "name"           text        NOT NULL,
    "headSha"        text        NOT NULL,
    "status"         text        NOT NULL,
    "conclusion"     text,
    "startedAt"      timestamptz,
    "completedAt"    timestamptz,
    "repositoryId"   text        NOT NULL,
    "installationId" text        NOT NULL,
    "workflowRunId"  text,
    "output"         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    "actions"        jsonb       NOT NULL DEFAULT '[]'::jsonb,
    "createdAt"      timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"      timestamptz NOT NULL,
    CONSTRAINT "CheckRun_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "CheckRun_githubId_key" UNIQUE ("githubId"),
    CONSTRAINT "CheckRun_repositoryId_fkey" FOREIGN KEY ("repositoryId")
        REFERENCES "Repository" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "CheckRun_installationId_fkey" FOREIGN KEY ("installationId")
        REFERENCES "Installation" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "CheckRun_workflowRunId_fkey" FOREIGN KEY ("workflowRunId")
        REFERENCES "WorkflowRun" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
CREATE INDEX "CheckRun_githubId_idx" ON "CheckRun" ("githubId");
CREATE INDEX "CheckRun_headSha_idx" ON "CheckRun" ("headSha");
CREATE INDEX "CheckRun_status_idx" ON "CheckRun" ("status");
CREATE INDEX "CheckRun_conclusion_idx" ON "CheckRun" ("conclusion");
CREATE INDEX "CheckRun_repositoryId_idx" ON "CheckRun" ("repositoryId");
CREATE INDEX "CheckRun_workflowRunId_idx" ON "CheckRun" ("workflowRunId");

CREATE TABLE "WorkflowJob" (
    "id"            text        NOT NULL,
    "githubId"      bigint      NOT NULL,
    "name"          text        NOT NULL,
    "status"        text        NOT NULL,
    "conclusion"    text,
    "workflowRunId" text        NOT NULL,
    "startedAt"     timestamptz,
    "completedAt"   timestamptz,
    "steps"         jsonb       NOT NULL DEFAULT '[]'::jsonb,
    "createdAt"     timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"     timestamptz NOT NULL,
    CONSTRAINT "WorkflowJob_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "WorkflowJob_githubId_key" UNIQUE ("githubId"),
    CONSTRAINT "WorkflowJob_workflowRunId_fkey" FOREIGN KEY ("workflowRunId")
        REFERENCES "WorkflowRun" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "WorkflowJob_githubId_idx" ON "WorkflowJob" ("githubId");
CREATE INDEX "WorkflowJob_workflowRunId_idx" ON "WorkflowJob" ("workflowRunId");
CREATE INDEX "WorkflowJob_status_idx" ON "WorkflowJob" ("status");
CREATE INDEX "WorkflowJob_conclusion_idx" ON "WorkflowJob" ("conclusion");

CREATE TABLE "Artifact" (
    "id"                 text        NOT NULL,
    "githubId"           bigint      NOT NULL,
    "name"               text        NOT NULL,
    "type"               text        NOT NULL,
    "sizeInBytes"        bigint      NOT NULL,
    "url"                text        NOT NULL,
    "archiveDownloadUrl" text        NOT NULL,
    "expired"            boolean     NOT NULL DEFAULT false,
    "workflowRunId"      text        NOT NULL,
    "createdAt"          timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"          timestamptz NOT NULL,
    "expiresAt"          timestamptz NOT NULL,
    CONSTRAINT "Artifact_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "Artifact_githubId_key" UNIQUE ("githubId"),
    CONSTRAINT "Artifact_workflowRunId_fkey" FOREIGN KEY ("workflowRunId")
        REFERENCES "WorkflowRun" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "Artifact_githubId_idx" ON "Artifact" ("githubId");
CREATE INDEX "Artifact_workflowRunId_idx" ON "Artifact" ("workflowRunId");
CREATE INDEX "Artifact_type_idx" ON "Artifact" ("type");
CREATE INDEX "Artifact_expired_idx" ON "Artifact" ("expired");

CREATE TABLE "FlakeDetection" (
    "id"                 text             NOT NULL,
    "testName"           text             NOT NULL,
    "repositoryId"       text             NOT NULL,
    "installationId"     text             NOT NULL,
    "checkRunId"         text,
    "testResultId"       text,
    "isFlaky"            boolean          NOT NULL DEFAULT false,
    "confidence"         double precision NOT NULL DEFAULT 0.0,
    "failurePattern"     text,
    "historicalFailures" integer          NOT NULL DEFAULT 0,
    "totalRuns"          integer          NOT NULL DEFAULT 0,
    "failureRate"        double precision NOT NULL DEFAULT 0.0,
    "lastFailureAt"      timestamptz,
    "suggestedAction"    text,
    "status"             text             NOT NULL DEFAULT 'pending',
    "createdAt"          timestamptz      NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"          timestamptz      NOT NULL,
    CONSTRAINT "FlakeDetection_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "FlakeDetection_testName_repositoryId_key" UNIQUE ("testName", "repositoryId"),
    CONSTRAINT "FlakeDetection_repositoryId_fkey" FOREIGN KEY ("repositoryId")
        REFERENCES "Repository" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "FlakeDetection_installationId_fkey" FOREIGN KEY ("installationId")
        REFERENCES "Installation" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "FlakeDetection_checkRunId_fkey" FOREIGN KEY ("checkRunId")
        REFERENCES "CheckRun" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
CREATE INDEX "FlakeDetection_testName_idx" ON "FlakeDetection" ("testName");
CREATE INDEX "FlakeDetection_repositoryId_idx" ON "FlakeDetection" ("repositoryId");
CREATE INDEX "FlakeDetection_isFlaky_idx" ON "FlakeDetection" ("isFlaky");
CREATE INDEX "FlakeDetection_status_idx" ON "FlakeDetection" ("status");
CREATE INDEX "FlakeDetection_confidence_idx" ON "FlakeDetection" ("confidence");
"#;

const DOWN: &str = r#"
DROP TABLE "FlakeDetection", "Artifact", "WorkflowJob", "CheckRun", "WorkflowRun",
    "Repository", "Installation", "Task", "User";
DROP TYPE "Priority";
DROP TYPE "TaskStatus";
"#;
