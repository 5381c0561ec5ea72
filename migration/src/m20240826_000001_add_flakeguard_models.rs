//! Step 5, of the schema's six history steps: every tenant table gets its organization.
//!
//! Adds `"orgId"` to the 14 tables created without it in steps 1 to 3: `Installation`,
//! `Repository`, `CheckRun`, `WorkflowRun`, `FlakeDetection`, `TestSuite`, `TestResult`,
//! `FGRepository`, `FGWorkflowRun`, `FGTestCase`, `FGOccurrence`, `FGFlakeScore`,
//! `FGQuarantineDecision` and `FGFailureCluster`. For each: the column is added nullable, every
//! existing row is assigned the default organization `'default-org-id'` (created in step 4, and
//! re-inserted here if it has gone missing), then the column becomes NOT NULL with no default, and
//! `X_orgId_fkey` (ON DELETE CASCADE) and `X_orgId_idx` are added. No row is lost.
//!
//! `FGFlakeScore` is re-keyed: it gains a text `"id"`, filled for existing rows with a CUID2-shaped
//! value made in SQL (`'c'` followed by 23 hex digits), `FGFlakeScore_pkey` moves from `("testId")`
//! to `("id")`, and `"testId"` stays unique as `FGFlakeScore_testId_key`.
//!
//! Row-level security is not part of this step; it comes in a later migration of its own.
//! Down re-keys `FGFlakeScore` by `"testId"` again and drops the 14 `"orgId"` columns with their
//! foreign keys and indexes.

use sea_orm_migration::prelude::*;

/// `m20240826_000001_add_flakeguard_models`: `"orgId"` on the 14 tenant tables that lacked it,
/// back-filled with the default organization, and `FGFlakeScore` keyed by `"id"` (see the module
/// docs).
#[derive(DeriveMigrationName)]
pub struct Migration;

sql_step!(up = UP, down = DOWN);

const UP: &str = r#"
-- The organization that every pre-existing row is assigned to. Step 4 creates it; this makes sure
-- it is still there.
INSERT INTO "Organization" ("id", "name", "slug", "updatedAt")
VALUES ('default-org-id', 'Default Organization', 'default', now())
ON CONFLICT DO NOTHING;

-- For each table: add nullable, back-fill, SET NOT NULL (no default), foreign key, index.
ALTER TABLE "Installation" ADD COLUMN "orgId" text;
UPDATE "Installation" SET "orgId" = 'default-org-id' WHERE "orgId" IS NULL;
ALTER TABLE "Installation" ALTER COLUMN "orgId" SET NOT NULL;
ALTER TABLE "Installation" ADD CONSTRAINT "Installation_orgId_fkey" FOREIGN KEY ("orgId")
    REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE;
CREATE INDEX "Installation_orgId_idx" ON "Installation" ("orgId");

ALTER TABLE "Repository" ADD COLUMN "orgId" text;
UPDATE "Repository" SET "orgId" = 'default-org-id' WHERE "orgId" IS NULL;
ALTER TABLE "Repository" ALTER COLUMN "orgId" SET NOT NULL;
ALTER TABLE "Repository" ADD CONSTRAINT "Repository_orgId_fkey" FOREIGN KEY ("orgId")
    REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE;
CREATE INDEX "Repository_orgId_idx" ON "Repository" ("orgId");

ALTER TABLE "CheckRun" ADD COLUMN "orgId" text;
UPDATE "CheckRun" SET "orgId" = 'default-org-id' WHERE "orgId" IS NULL;
ALTER TABLE "CheckRun" ALTER COLUMN "orgId" SET NOT NULL;
ALTER TABLE "CheckRun" ADD CONSTRAINT "CheckRun_orgId_fkey" FOREIGN KEY ("orgId")
    REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE;
CREATE INDEX "CheckRun_orgId_idx" ON "CheckRun" ("orgId");

ALTER TABLE "WorkflowRun" ADD COLUMN "orgId" text;
UPDATE "WorkflowRun" SET "orgId" = 'default-org-id' WHERE "orgId" IS NULL;
ALTER TABLE "WorkflowRun" ALTER COLUMN "orgId" SET NOT NULL;
ALTER TABLE "WorkflowRun" ADD CONSTRAINT "WorkflowRun_orgId_fkey" FOREIGN KEY ("orgId")
    REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE;
CREATE INDEX "WorkflowRun_orgId_idx" ON "WorkflowRun" ("orgId");

ALTER TABLE "FlakeDetection" ADD COLUMN "orgId" text;
UPDATE "FlakeDetection" SET "orgId" = 'default-org-id' WHERE "orgId" IS NULL;
ALTER TABLE "FlakeDetection" ALTER COLUMN "orgId" SET NOT NULL;
ALTER TABLE "FlakeDetection" ADD CONSTRAINT "FlakeDetection_orgId_fkey" FOREIGN KEY ("orgId")
    REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE;
CREATE INDEX "FlakeDetection_orgId_idx" ON "FlakeDetection" ("orgId");

ALTER TABLE "TestSuite" ADD COLUMN "orgId" text;
UPDATE "TestSuite" SET "orgId" = 'default-org-id' WHERE "orgId" IS NULL;
ALTER TABLE "TestSuite" ALTER COLUMN "orgId" SET NOT NULL;
ALTER TABLE "TestSuite" ADD CONSTRAINT "TestSuite_orgId_fkey" FOREIGN KEY ("orgId")
    REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE;
CREATE INDEX "TestSuite_orgId_idx" ON "TestSuite" ("orgId");

ALTER TABLE "TestResult" ADD COLUMN "orgId" text;
UPDATE "TestResult" SET "orgId" = 'default-org-id' WHERE "orgId" IS NULL;
ALTER TABLE "TestResult" ALTER COLUMN "orgId" SET NOT NULL;
ALTER TABLE "TestResult" ADD CONSTRAINT "TestResult_orgId_fkey" FOREIGN KEY ("orgId")
    REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE;
CREATE INDEX "TestResult_orgId_idx" ON "TestResult" ("orgId");

ALTER TABLE "FGRepository" ADD COLUMN "orgId" text;
UPDATE "FGRepository" SET "orgId" = 'default-org-id' WHERE "orgId" IS NULL;
ALTER TABLE "FGRepository" ALTER COLUMN "orgId" SET NOT NULL;
ALTER TABLE "FGRepository" ADD CONSTRAINT "FGRepository_orgId_fkey" FOREIGN KEY ("orgId")
    REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE;
CREATE INDEX "FGRepository_orgId_idx" ON "FGRepository" ("orgId");

ALTER TABLE "FGWorkflowRun" ADD COLUMN "orgId" text;
UPDATE "FGWorkflowRun" SET "orgId" = 'default-org-id' WHERE "orgId" IS NULL;
ALTER TABLE "FGWorkflowRun" ALTER COLUMN "orgId" SET NOT NULL;
ALTER TABLE "FGWorkflowRun" ADD CONSTRAINT "FGWorkflowRun_orgId_fkey" FOREIGN KEY ("orgId")
    REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE;
CREATE INDEX "FGWorkflowRun_orgId_idx" ON "FGWorkflowRun" ("orgId");

ALTER TABLE "FGTestCase" ADD COLUMN "orgId" text;
UPDATE "FGTestCase" SET "orgId" = 'default-org-id' WHERE "orgId" IS NULL;
ALTER TABLE "FGTestCase" ALTER COLUMN "orgId" SET NOT NULL;
ALTER TABLE "FGTestCase" ADD CONSTRAINT "FGTestCase_orgId_fkey" FOREIGN KEY ("orgId")
    REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE;
CREATE INDEX "FGTestCase_orgId_idx" ON "FGTestCase" ("orgId");

ALTER TABLE "FGOccurrence" ADD COLUMN "orgId" text;
UPDATE "FGOccurrence" SET "orgId" = 'default-org-id' WHERE "orgId" IS NULL;
ALTER TABLE "FGOccurrence" ALTER COLUMN "orgId" SET NOT NULL;
ALTER TABLE "FGOccurrence" ADD CONSTRAINT "FGOccurrence_orgId_fkey" FOREIGN KEY ("orgId")
    REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE;
CREATE INDEX "FGOccurrence_orgId_idx" ON "FGOccurrence" ("orgId");

ALTER TABLE "FGFlakeScore" ADD COLUMN "orgId" text;
UPDATE "FGFlakeScore" SET "orgId" = 'default-org-id' WHERE "orgId" IS NULL;
ALTER TABLE "FGFlakeScore" ALTER COLUMN "orgId" SET NOT NULL;
ALTER TABLE "FGFlakeScore" ADD CONSTRAINT "FGFlakeScore_orgId_fkey" FOREIGN KEY ("orgId")
    REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE;
CREATE INDEX "FGFlakeScore_orgId_idx" ON "FGFlakeScore" ("orgId");

ALTER TABLE "FGQuarantineDecision" ADD COLUMN "orgId" text;
UPDATE "FGQuarantineDecision" SET "orgId" = 'default-org-id' WHERE "orgId" IS NULL;
ALTER TABLE "FGQuarantineDecision" ALTER COLUMN "orgId" SET NOT NULL;
ALTER TABLE "FGQuarantineDecision" ADD CONSTRAINT "FGQuarantineDecision_orgId_fkey" FOREIGN KEY ("orgId")
    REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE;
CREATE INDEX "FGQuarantineDecision_orgId_idx" ON "FGQuarantineDecision" ("orgId");

ALTER TABLE "FGFailureCluster" ADD COLUMN "orgId" text;
UPDATE "FGFailureCluster" SET "orgId" = 'default-org-id' WHERE "orgId" IS NULL;
ALTER TABLE "FGFailureCluster" ALTER COLUMN "orgId" SET NOT NULL;
ALTER TABLE "FGFailureCluster" ADD CONSTRAINT "FGFailureCluster_orgId_fkey" FOREIGN KEY ("orgId")
    REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE;
CREATE INDEX "FGFailureCluster_orgId_idx" ON "FGFailureCluster" ("orgId");

-- FGFlakeScore: from one row keyed by "testId" to a CUID2 "id", with "testId" still unique.
ALTER TABLE "FGFlakeScore" ADD COLUMN "id" text;
UPDATE "FGFlakeScore" SET "id" = 'c' || substr(md5(random()::text || "testId"), 1, 23) WHERE "id" IS NULL;
ALTER TABLE "FGFlakeScore" ALTER COLUMN "id" SET NOT NULL;
ALTER TABLE "FGFlakeScore" DROP CONSTRAINT "FGFlakeScore_pkey";
ALTER TABLE "FGFlakeScore" ADD CONSTRAINT "FGFlakeScore_pkey" PRIMARY KEY ("id");
ALTER TABLE "FGFlakeScore" ADD CONSTRAINT "FGFlakeScore_testId_key" UNIQUE ("testId");
"#;

const DOWN: &str = r#"
-- FGFlakeScore: back to one row per test keyed by "testId".
ALTER TABLE "FGFlakeScore" DROP CONSTRAINT "FGFlakeScore_testId_key";
ALTER TABLE "FGFlakeScore" DROP CONSTRAINT "FGFlakeScore_pkey";
ALTER TABLE "FGFlakeScore" DROP COLUMN "id";
ALTER TABLE "FGFlakeScore" ADD CONSTRAINT "FGFlakeScore_pkey" PRIMARY KEY ("testId");

DROP INDEX "FGFailureCluster_orgId_idx";
ALTER TABLE "FGFailureCluster" DROP CONSTRAINT "FGFailureCluster_orgId_fkey";
ALTER TABLE "FGFailureCluster" DROP COLUMN "orgId";

DROP INDEX "FGQuarantineDecision_orgId_idx";
ALTER TABLE "FGQuarantineDecision" DROP CONSTRAINT "FGQuarantineDecision_orgId_fkey";
ALTER TABLE "FGQuarantineDecision" DROP COLUMN "orgId";

DROP INDEX "FGFlakeScore_orgId_idx";
ALTER TABLE "FGFlakeScore" DROP CONSTRAINT "FGFlakeScore_orgId_fkey";
ALTER TABLE "FGFlakeScore" DROP COLUMN "orgId";

DROP INDEX "FGOccurrence_orgId_idx";
ALTER TABLE "FGOccurrence" DROP CONSTRAINT "FGOccurrence_orgId_fkey";
ALTER TABLE "FGOccurrence" DROP COLUMN "orgId";

DROP INDEX "FGTestCase_orgId_idx";
ALTER TABLE "FGTestCase" DROP CONSTRAINT "FGTestCase_orgId_fkey";
ALTER TABLE "FGTestCase" DROP COLUMN "orgId";

DROP INDEX "FGWorkflowRun_orgId_idx";
ALTER TABLE "FGWorkflowRun" DROP CONSTRAINT "FGWorkflowRun_orgId_fkey";
ALTER TABLE "FGWorkflowRun" DROP COLUMN "orgId";

DROP INDEX "FGRepository_orgId_idx";
ALTER TABLE "FGRepository" DROP CONSTRAINT "FGRepository_orgId_fkey";
ALTER TABLE "FGRepository" DROP COLUMN "orgId";

DROP INDEX "TestResult_orgId_idx";
ALTER TABLE "TestResult" DROP CONSTRAINT "TestResult_orgId_fkey";
ALTER TABLE "TestResult" DROP COLUMN "orgId";

DROP INDEX "TestSuite_orgId_idx";
ALTER TABLE "TestSuite" DROP CONSTRAINT "TestSuite_orgId_fkey";
ALTER TABLE "TestSuite" DROP COLUMN "orgId";

DROP INDEX "FlakeDetection_orgId_idx";
ALTER TABLE "FlakeDetection" DROP CONSTRAINT "FlakeDetection_orgId_fkey";
ALTER TABLE "FlakeDetection" DROP COLUMN "orgId";

DROP INDEX "WorkflowRun_orgId_idx";
ALTER TABLE "WorkflowRun" DROP CONSTRAINT "WorkflowRun_orgId_fkey";
ALTER TABLE "WorkflowRun" DROP COLUMN "orgId";

DROP INDEX "CheckRun_orgId_idx";
ALTER TABLE "CheckRun" DROP CONSTRAINT "CheckRun_orgId_fkey";
ALTER TABLE "CheckRun" DROP COLUMN "orgId";

DROP INDEX "Repository_orgId_idx";
ALTER TABLE "Repository" DROP CONSTRAINT "Repository_orgId_fkey";
ALTER TABLE "Repository" DROP COLUMN "orgId";

DROP INDEX "Installation_orgId_idx";
ALTER TABLE "Installation" DROP CONSTRAINT "Installation_orgId_fkey";
ALTER TABLE "Installation" DROP COLUMN "orgId";

"#;
