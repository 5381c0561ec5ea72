//! Step 7, after the history: row-level security, the database's own lock on tenant data.
//!
//! Creates the NOLOGIN role `flakeguard_app` if it does not exist yet, and grants it USAGE on the
//! schema `public` and SELECT, INSERT, UPDATE, DELETE on every table in it; applications log in as
//! a role that is a member of `flakeguard_app`. Default privileges extend the grant (and USAGE on
//! sequences) to the tables that later steps create, as long as the role that runs those steps is
//! the one that runs this one. The migrator's own `seaql_migrations` stays read-only to the
//! application: it may see which steps are applied, not rewrite the history.
//!
//! Then row-level security is enabled and FORCED (so that it applies to the tables' owner too) on
//! the 25 tables that hold tenant data: the 18 tenant tables, the tenant-optional `Task`, the five
//! child tables and the tenant root `Organization`. `User`, `IngestionJob` and `seaql_migrations`
//! are not tenant data and stay without it. Each table gets one policy, `tenant_isolation`, FOR
//! ALL to PUBLIC, that compares against the tenant of the current transaction,
//! `(SELECT NULLIF(current_setting('app.current_tenant_id', true), ''))`: with the setting unset
//! or empty that is NULL, which equals nothing, so nothing is visible or writable (fail closed).
//!
//! - tenant and tenant-optional tables: `"orgId" = <tenant>`, a plain equality that the `"orgId"`
//!   indexes serve. A `Task` with a NULL `"orgId"` (a personal task) is visible to no tenant.
//! - `Organization`: `"id" = <tenant>`.
//! - child tables: `EXISTS (SELECT 1 FROM "Parent" p WHERE p."id" = "Child"."parentCol")`, for
//!   the link table `_FGFailureClusterToFGTestCase` both parents. The subquery is itself filtered
//!   by the parent's policy, so it only finds a parent of the current tenant. The outer column is
//!   always qualified with its table name: unqualified, `"runId"` inside a subquery on
//!   `FGWorkflowRun` would be `FGWorkflowRun`'s own `"runId"`.
//!
//! WITH CHECK repeats that condition and adds, for each foreign key into another table with
//! row-level security (other than `"orgId"`, which the condition itself covers, and a child's
//! parent key, likewise), `("col" IS NULL OR EXISTS (SELECT 1 FROM "Target" t WHERE t."id" =
//! "Table"."col"))`. A foreign-key check ignores row-level security, so without this a tenant
//! could point its own row at another tenant's row; with it, the target must be visible to the
//! current tenant. Foreign keys to the global `User` need no check. The 52 foreign keys of
//! `docs/SCHEMA.md` divide up as follows:
//!
//! - 18 `"orgId"` -> `Organization`: covered by the `"orgId"` condition;
//! - 3 into `User` (`Task."userId"`, `OrganizationUser."userId"`, `AuditLog."userId"`): global,
//!   no check;
//! - 6 parent keys of child tables (`WorkflowJob."workflowRunId"`, `Artifact."workflowRunId"`,
//!   `FGJob."runId"`, `FGIssueLink."testId"`, `_FGFailureClusterToFGTestCase."A"` and `."B"`):
//!   covered by the child's own condition;
//! - 25 checked in WITH CHECK: `Repository."installationId"`; `CheckRun."repositoryId"`,
//!   `."installationId"`, `."workflowRunId"`; `WorkflowRun."repositoryId"`, `."installationId"`;
//!   `TestSuite."repositoryId"`, `."checkRunId"`, `."workflowJobId"`; `TestResult."repositoryId"`,
//!   `."testSuiteId"`, `."checkRunId"`, `."workflowJobId"`; `FlakeDetection."repositoryId"`,
//!   `."installationId"`, `."checkRunId"`, `."testResultId"`; `FGWorkflowRun."repoId"`;
//!   `FGTestCase."repoId"`; `FGOccurrence."testId"`, `."runId"`, `."jobId"`;
//!   `FGFlakeScore."testId"`; `FGQuarantineDecision."testId"`; `FGFailureCluster."repoId"`.
//!
//! The SQL is generated from the fixed table `TABLES` in this module, never from the live
//! catalog: like every step, this one must mean the same thing on every database it ever runs on.
//!
//! Foreign-key actions (ON DELETE CASCADE / SET NULL, ON UPDATE CASCADE) run as the owner of the
//! referencing table without forced row-level security, so deleting an organization still removes
//! all of its rows. Superusers and roles with BYPASSRLS are not subject to any of this: migrations
//! run as the owner or a superuser, applications never do.
//!
//! Creating the role needs CREATEROLE (or a superuser) unless it already exists. Down drops the
//! policies, switches row-level security off again (NO FORCE, DISABLE) and revokes the privileges
//! and default privileges granted here, and must run as the same role as up for the default
//! privileges to be found. It does not drop `flakeguard_app`: roles belong to the whole cluster
//! and may serve other databases.

use std::fmt::Write as _;

use sea_orm_migration::prelude::*;

/// `m20240827_000000_add_row_level_security`: the `flakeguard_app` role and its privileges, and
/// the `tenant_isolation` policies on every table with tenant data (see the module docs).
#[derive(DeriveMigrationName)]
pub struct Migration;

sql_step!(up = &up_sql(), down = &down_sql());

/// How a table's rows belong to a tenant, which decides its policy's condition.
#[derive(Debug, Clone, Copy)]
enum Tenancy {
    /// A tenant or tenant-optional table: the row's `"orgId"` is its tenant.
    OrgId,
    /// The tenant root `Organization`: the row's `"id"` is the tenant.
    Root,
    /// A child table: the row belongs to the tenant of each parent, given as (column of this
    /// table, parent table).
    Child(&'static [(&'static str, &'static str)]),
}

/// One table under row-level security.
#[derive(Debug, Clone, Copy)]
struct RlsTable {
    /// The table's name, unquoted.
    name: &'static str,
    /// How its rows belong to a tenant.
    tenancy: Tenancy,
    /// Foreign keys that WITH CHECK verifies point at a row of the current tenant, as (column of
    /// this table, referenced table); the referenced column is always `"id"`.
    checks: &'static [(&'static str, &'static str)],
}

const fn org(name: &'static str, checks: &'static [(&'static str, &'static str)]) -> RlsTable {
    RlsTable {
        name,
        tenancy: Tenancy::OrgId,
        checks,
    }
}

const fn child(name: &'static str, parents: &'static [(&'static str, &'static str)]) -> RlsTable {
    RlsTable {
        name,
        tenancy: Tenancy::Child(parents),
        checks: &[],
    }
}

/// The 25 tables with row-level security, in the order the policies are created; taken from
/// `docs/SCHEMA.md` and fixed for good (migrations are history).
const TABLES: [RlsTable; 25] = [
    RlsTable {
        name: "Organization",
        tenancy: Tenancy::Root,
        checks: &[],
    },
    org("OrganizationUser", &[]),
    org("Subscription", &[]),
    org("AuditLog", &[]),
    org("UsageMetric", &[]),
    org("Task", &[]),
    org("Installation", &[]),
    org("Repository", &[("installationId", "Installation")]),
    org(
        "WorkflowRun",
        &[
            ("repositoryId", "Repository"),
            ("installationId", "Installation"),
        ],
    ),
    child("WorkflowJob", &[("workflowRunId", "WorkflowRun")]),
    child("Artifact", &[("workflowRunId", "WorkflowRun")]),
    org(
        "CheckRun",
        &[
            ("repositoryId", "Repository"),
            ("installationId", "Installation"),
            ("workflowRunId", "WorkflowRun"),
        ],
    ),
    org(
        "TestSuite",
        &[
            ("repositoryId", "Repository"),
            ("checkRunId", "CheckRun"),
            ("workflowJobId", "WorkflowJob"),
        ],
    ),
    org(
        "TestResult",
        &[
            ("repositoryId", "Repository"),
            ("testSuiteId", "TestSuite"),
            ("checkRunId", "CheckRun"),
            ("workflowJobId", "WorkflowJob"),
        ],
    ),
    org(
        "FlakeDetection",
        &[
            ("repositoryId", "Repository"),
            ("installationId", "Installation"),
            ("checkRunId", "CheckRun"),
            ("testResultId", "TestResult"),
        ],
    ),
    org("FGRepository", &[]),
    org("FGWorkflowRun", &[("repoId", "FGRepository")]),
    child("FGJob", &[("runId", "FGWorkflowRun")]),
    org("FGTestCase", &[("repoId", "FGRepository")]),
    org(
        "FGOccurrence",
        &[
            ("testId", "FGTestCase"),
            ("runId", "FGWorkflowRun"),
            ("jobId", "FGJob"),
        ],
    ),
    org("FGFlakeScore", &[("testId", "FGTestCase")]),
    org("FGQuarantineDecision", &[("testId", "FGTestCase")]),
    child("FGIssueLink", &[("testId", "FGTestCase")]),
    org("FGFailureCluster", &[("repoId", "FGRepository")]),
    child(
        "_FGFailureClusterToFGTestCase",
        &[("A", "FGFailureCluster"), ("B", "FGTestCase")],
    ),
];

/// The tenant of the current transaction, NULL when unset or empty; the sub-select makes
/// PostgreSQL evaluate it once per statement rather than once per row.
const TENANT: &str = "(SELECT NULLIF(current_setting('app.current_tenant_id', true), ''))";

const UP_ROLE_AND_GRANTS: &str = r#"
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'flakeguard_app') THEN
        CREATE ROLE flakeguard_app NOLOGIN;
    END IF;
EXCEPTION
    -- Created meanwhile by a concurrent transaction (another database's migrator, say): a
    -- CREATE ROLE that waited for that one to commit fails with unique_violation on
    -- pg_authid_rolname_index rather than with duplicate_object.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO flakeguard_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO flakeguard_app;
REVOKE INSERT, UPDATE, DELETE ON TABLE "seaql_migrations" FROM flakeguard_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO flakeguard_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE ON SEQUENCES TO flakeguard_app;
"#;

const DOWN_GRANTS: &str = r#"
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    REVOKE USAGE ON SEQUENCES FROM flakeguard_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM flakeguard_app;
REVOKE SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public FROM flakeguard_app;
REVOKE USAGE ON SCHEMA public FROM flakeguard_app;
"#;

/// The condition that a row of `table` belongs to the current tenant (the policy's USING).
fn using_condition(table: &RlsTable) -> String {
    match table.tenancy {
        Tenancy::OrgId => format!(r#""orgId" = {TENANT}"#),
        Tenancy::Root => format!(r#""id" = {TENANT}"#),
        Tenancy::Child(parents) => parents
            .iter()
            .map(|(col, parent)| {
                format!(
                    r#"EXISTS (SELECT 1 FROM "{parent}" p WHERE p."id" = "{}"."{col}")"#,
                    table.name
                )
            })
            .collect::<Vec<_>>()
            .join("\n        AND "),
    }
}

/// The condition that a written row of `table` belongs to the current tenant and references only
/// rows of the current tenant (the policy's WITH CHECK).
fn check_condition(table: &RlsTable) -> String {
    let mut sql = using_condition(table);
    for (col, target) in table.checks {
        let _ = write!(
            sql,
            r#"
        AND ("{name}"."{col}" IS NULL
            OR EXISTS (SELECT 1 FROM "{target}" t WHERE t."id" = "{name}"."{col}"))"#,
            name = table.name
        );
    }
    sql
}

/// The statements that switch row-level security on for `table` and create its policy.
fn policy_sql(table: &RlsTable) -> String {
    let name = table.name;
    format!(
        r#"
ALTER TABLE "{name}" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "{name}" FORCE ROW LEVEL SECURITY;
CREATE POLICY "tenant_isolation" ON "{name}" AS PERMISSIVE FOR ALL TO PUBLIC
    USING ({using})
    WITH CHECK ({check});
"#,
        using = using_condition(table),
        check = check_condition(table),
    )
}

/// The whole of `up`.
fn up_sql() -> String {
    let mut sql = UP_ROLE_AND_GRANTS.to_owned();
    for table in &TABLES {
        sql.push_str(&policy_sql(table));
    }
    sql
}

/// The whole of `down`.
fn down_sql() -> String {
    let mut sql = String::new();
    for table in TABLES.iter().rev() {
        let name = table.name;
        let _ = write!(
            sql,
            r#"
DROP POLICY "tenant_isolation" ON "{name}";
ALTER TABLE "{name}" NO FORCE ROW LEVEL SECURITY;
ALTER TABLE "{name}" DISABLE ROW LEVEL SECURITY;
"#
        );
    }
    sql.push_str(DOWN_GRANTS);
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_exactly_the_tables_the_entities_call_tenant_data() {
        let mut names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        let mut tenant_data: Vec<&str> = flakeguard_entity::TableInfo::tenant_data()
            .map(|t| t.name)
            .collect();
        tenant_data.sort_unstable();
        assert_eq!(names, tenant_data);
    }

    #[test]
    fn covers_the_25_tables_with_tenant_data_once() {
        let mut names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 25);
        for global in ["User", "IngestionJob", "seaql_migrations"] {
            assert!(!names.contains(&global), "{global}");
        }
    }

    #[test]
    fn checks_the_25_cross_table_foreign_keys() {
        let checks: usize = TABLES.iter().map(|t| t.checks.len()).sum();
        assert_eq!(checks, 25);
        let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        for table in &TABLES {
            for (_, target) in table.checks {
                // Every target has a policy of its own, created before this one.
                let at = names.iter().position(|n| n == target);
                let me = names.iter().position(|n| *n == table.name);
                assert!(
                    matches!((at, me), (Some(at), Some(me)) if at < me),
                    "{} -> {target}",
                    table.name
                );
            }
        }
    }

    #[test]
    fn child_policies_qualify_the_outer_column() {
        let fg_job = TABLES.iter().find(|t| t.name == "FGJob");
        assert_eq!(
            fg_job.map(using_condition).as_deref(),
            Some(r#"EXISTS (SELECT 1 FROM "FGWorkflowRun" p WHERE p."id" = "FGJob"."runId")"#)
        );
    }

    #[test]
    fn down_drops_every_policy_up_creates() {
        let (up, down) = (up_sql(), down_sql());
        assert_eq!(up.matches("CREATE POLICY").count(), 25);
        assert_eq!(down.matches("DROP POLICY").count(), 25);
        assert_eq!(up.matches("FORCE ROW LEVEL SECURITY").count(), 25);
        assert_eq!(down.matches("NO FORCE ROW LEVEL SECURITY").count(), 25);
    }
}
