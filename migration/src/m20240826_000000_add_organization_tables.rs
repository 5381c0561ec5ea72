//! Step 4, of the schema's six history steps: organizations.
//!
//! Creates the tenant root `Organization` and the tenant tables `OrganizationUser`,
//! `Subscription`, `AuditLog` and `UsageMetric`, which carry a NOT NULL `"orgId"` referencing
//! `Organization` from the start, and inserts the default organization (`id` `'default-org-id'`,
//! slug `'default'`) that step 5 assigns every pre-existing row to.
//!
//! Down drops the five tables, and the default organization with them.

use sea_orm_migration::prelude::*;

/// `m20240826_000000_add_organization_tables`: organizations, their members, subscriptions, audit
/// log and usage metrics, plus the default organization (see the module docs).
#[derive(DeriveMigrationName)]
pub struct Migration;

sql_step!(up = UP, down = DOWN);

const UP: &str = r#"
CREATE TABLE "Organization" (
    "id"          text        NOT NULL,
    "name"        text        NOT NULL,
    "slug"        text        NOT NULL,
    "githubLogin" text,
    "domain"      text,
    "settings"    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    "plan"        text        NOT NULL DEFAULT 'free',
    "status"      text        NOT NULL DEFAULT 'active',
    "createdAt"   timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"   timestamptz NOT NULL,
    CONSTRAINT "Organization_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "Organization_slug_key" UNIQUE ("slug")
);
CREATE INDEX "Organization_githubLogin_idx" ON "Organization" ("githubLogin");
CREATE INDEX "Organization_domain_idx" ON "Organization" ("domain");
CREATE INDEX "Organization_plan_idx" ON "Organization" ("plan");
CREATE INDEX "Organization_status_idx" ON "Organization" ("status");

CREATE TABLE "OrganizationUser" (
    "id"        text        NOT NULL,
    "orgId"     text        NOT NULL,
    "userId"    text        NOT NULL,
    "role"      text        NOT NULL DEFAULT 'member',
    "status"    text        NOT NULL DEFAULT 'active',
    "joinedAt"  timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" timestamptz NOT NULL,
    CONSTRAINT "OrganizationUser_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "OrganizationUser_orgId_userId_key" UNIQUE ("orgId", "userId"),
    CONSTRAINT "OrganizationUser_orgId_fkey" FOREIGN KEY ("orgId")
        REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "OrganizationUser_userId_fkey" FOREIGN KEY ("userId")
        REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "OrganizationUser_orgId_idx" ON "OrganizationUser" ("orgId");
CREATE INDEX "OrganizationUser_userId_idx" ON "OrganizationUser" ("userId");
CREATE INDEX "OrganizationUser_role_idx" ON "OrganizationUser" ("role");

CREATE TABLE "Subscription" (
    "id"                 text        NOT NULL,
    "orgId"              text        NOT NULL,
    "plan"               text        NOT NULL,
    "status"             text        NOT NULL,
    "currentPeriodStart" timestamptz NOT NULL,
    "currentPeriodEnd"   timestamptz NOT NULL,
    "cancelAt"           timestamptz,
    "cancelAtPeriodEnd"  boolean     NOT NULL DEFAULT false,
    "metadata"           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    "createdAt"          timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"          timestamptz NOT NULL,
    CONSTRAINT "Subscription_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "Subscription_orgId_fkey" FOREIGN KEY ("orgId")
        REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "Subscription_orgId_idx" ON "Subscription" ("orgId");
CREATE INDEX "Subscription_status_idx" ON "Subscription" ("status");
CREATE INDEX "Subscription_currentPeriodEnd_idx" ON "Subscription" ("currentPeriodEnd");

CREATE TABLE "AuditLog" (
    "id"         text        NOT NULL,
    "orgId"      text        NOT NULL,
    "userId"     text,
    "action"     text        NOT NULL,
    "resource"   text        NOT NULL,
    "resourceId" text,
    "details"    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    "ipAddress"  text,
    "userAgent"  text,
    "createdAt"  timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "AuditLog_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "AuditLog_orgId_fkey" FOREIGN KEY ("orgId")
        REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "AuditLog_userId_fkey" FOREIGN KEY ("userId")
        REFERENCES "User" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
CREATE INDEX "AuditLog_orgId_idx" ON "AuditLog" ("orgId");
CREATE INDEX "AuditLog_userId_idx" ON "AuditLog" ("userId");
CREATE INDEX "AuditLog_action_idx" ON "AuditLog" ("action");
CREATE INDEX "AuditLog_resource_idx" ON "AuditLog" ("resource");
CREATE INDEX "AuditLog_createdAt_idx" ON "AuditLog" ("createdAt");

CREATE TABLE "UsageMetric" (
    "id"         text        NOT NULL,
    "orgId"      text        NOT NULL,
    "metricType" text        NOT NULL,
    "value"      integer     NOT NULL DEFAULT 0,
    "period"     text        NOT NULL,
    "date"       timestamptz NOT NULL,
    "metadata"   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    "createdAt"  timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"  timestamptz NOT NULL,
    CONSTRAINT "UsageMetric_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "UsageMetric_orgId_metricType_period_date_key"
        UNIQUE ("orgId", "metricType", "period", "date"),
    CONSTRAINT "UsageMetric_orgId_fkey" FOREIGN KEY ("orgId")
        REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "UsageMetric_orgId_idx" ON "UsageMetric" ("orgId");
CREATE INDEX "UsageMetric_metricType_idx" ON "UsageMetric" ("metricType");
CREATE INDEX "UsageMetric_date_idx" ON "UsageMetric" ("date");

INSERT INTO "Organization" ("id", "name", "slug", "updatedAt")
VALUES ('default-org-id', 'Default Organization', 'default', now());
"#;

const DOWN: &str = r#"
DROP TABLE "UsageMetric", "AuditLog", "Subscription", "OrganizationUser", "Organization";
"#;
