//! Step 8: tenant keys in every row and every foreign key, so that the schema itself refuses a
//! reference from one organization's row to another's, for every role.
//!
//! 1. **"orgId" on the five child tables** (`WorkflowJob`, `Artifact`, `FGJob`, `FGIssueLink`,
//!    `_FGFailureClusterToFGTestCase`): added, filled from each row's parent, then NOT NULL with
//!    a foreign key to "Organization" (ON DELETE CASCADE) and an index, as on the tenant tables.
//!    Its default is the tenant of the current transaction,
//!    `NULLIF(current_setting('app.current_tenant_id', true), '')`, so that SQL written against
//!    the contract's column lists (which omit it) keeps working inside a tenant transaction;
//!    with no tenant set the default is NULL and the insert is refused by NOT NULL. A default
//!    costs nothing when "orgId" is given and one STABLE function call per statement when it is
//!    not, where a trigger would cost a function call per row either way.
//! 2. **Composite tenant keys.** `UNIQUE ("orgId", "id")` (`<T>_orgId_id_key`) on the twelve
//!    tables that tenant data references, and for each of the 31 foreign keys between tenant
//!    data its twin `("orgId", "<col>") REFERENCES "<Parent>" ("orgId", "id")`
//!    (`<T>_orgId_<col>_fkey`), with the same ON DELETE rule; SET NULL becomes
//!    `SET NULL ("<col>")`, so that "orgId" is left alone. The single-column foreign keys of the
//!    contract stay. A plain foreign-key check ignores row-level security but not a key: a
//!    reference across organizations is refused for the superuser, the owner and BYPASSRLS
//!    roles alike.
//! 3. **Policies without subqueries.** Every `tenant_isolation` policy becomes a plain
//!    comparison of the row's own "orgId" ("id" for `Organization`) with the tenant, in USING
//!    and WITH CHECK: the composite keys own the references now, so no parent is looked up per
//!    written row. The policies still fail closed with no tenant set.
//! 4. **`Task."orgId"`** gets its foreign key to "Organization" (ON DELETE CASCADE). A task that
//!    points at a missing organization is never deleted silently: the step refuses, naming them.
//! 5. **NULLS NOT DISTINCT** on the unique constraints over nullable columns, recreated under
//!    their names: `FGTestCase` ("className"), `TestResult` ("file"), `TestSuite` ("runId").
//!    Rows that would be duplicates under the new rule are never merged or deleted: the step
//!    refuses, naming them.
//!
//! Every refusal happens before anything changes (the step runs in one transaction), and names
//! the rows. `down` restores step 7 exactly, keeping every row.

use std::fmt::Write as _;

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

/// `m20240828_000000_add_tenant_keys`: see the module docs.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tenant of the current transaction; NULL when unset or empty.
const TENANT: &str = "NULLIF(current_setting('app.current_tenant_id', true), '')";

/// The child tables and the parent each row takes its "orgId" from: (table, column, parent).
const CHILDREN: [(&str, &str, &str); 5] = [
    ("WorkflowJob", "workflowRunId", "WorkflowRun"),
    ("Artifact", "workflowRunId", "WorkflowRun"),
    ("FGJob", "runId", "FGWorkflowRun"),
    ("FGIssueLink", "testId", "FGTestCase"),
    ("_FGFailureClusterToFGTestCase", "A", "FGFailureCluster"),
];

/// The tables that tenant data references: each gets `UNIQUE ("orgId", "id")`.
const REFERENCED: [&str; 12] = [
    "Installation",
    "Repository",
    "WorkflowRun",
    "WorkflowJob",
    "CheckRun",
    "TestSuite",
    "TestResult",
    "FGRepository",
    "FGWorkflowRun",
    "FGJob",
    "FGTestCase",
    "FGFailureCluster",
];

/// The 31 foreign keys between tenant data, as in `docs/SCHEMA.md`: (table, column, parent,
/// ON DELETE rule). Each gets its composite twin.
const FOREIGN_KEYS: [(&str, &str, &str, &str); 31] = [
    ("Repository", "installationId", "Installation", "CASCADE"),
    ("CheckRun", "repositoryId", "Repository", "CASCADE"),
    ("CheckRun", "installationId", "Installation", "CASCADE"),
    ("CheckRun", "workflowRunId", "WorkflowRun", "SET NULL"),
    ("WorkflowRun", "repositoryId", "Repository", "CASCADE"),
    ("WorkflowRun", "installationId", "Installation", "CASCADE"),
    ("WorkflowJob", "workflowRunId", "WorkflowRun", "CASCADE"),
    ("Artifact", "workflowRunId", "WorkflowRun", "CASCADE"),
    ("TestSuite", "repositoryId", "Repository", "CASCADE"),
    ("TestSuite", "checkRunId", "CheckRun", "SET NULL"),
    ("TestSuite", "workflowJobId", "WorkflowJob", "SET NULL"),
    ("FGWorkflowRun", "repoId", "FGRepository", "CASCADE"),
    ("FGJob", "runId", "FGWorkflowRun", "CASCADE"),
    ("FGTestCase", "repoId", "FGRepository", "CASCADE"),
    ("FGOccurrence", "testId", "FGTestCase", "CASCADE"),
    ("FGOccurrence", "runId", "FGWorkflowRun", "CASCADE"),
    ("FGOccurrence", "jobId", "FGJob", "SET NULL"),
    ("FGFlakeScore", "testId", "FGTestCase", "CASCADE"),
    ("FGQuarantineDecision", "testId", "FGTestCase", "CASCADE"),
    ("FGIssueLink", "testId", "FGTestCase", "CASCADE"),
    ("FGFailureCluster", "repoId", "FGRepository", "CASCADE"),
    ("TestResult", "repositoryId", "Repository", "CASCADE"),
    ("TestResult", "testSuiteId", "TestSuite", "SET NULL"),
    ("TestResult", "checkRunId", "CheckRun", "SET NULL"),
    ("TestResult", "workflowJobId", "WorkflowJob", "SET NULL"),
    ("FlakeDetection", "repositoryId", "Repository", "CASCADE"),
    (
        "FlakeDetection",
        "installationId",
        "Installation",
        "CASCADE",
    ),
    ("FlakeDetection", "checkRunId", "CheckRun", "SET NULL"),
    ("FlakeDetection", "testResultId", "TestResult", "SET NULL"),
    (
        "_FGFailureClusterToFGTestCase",
        "A",
        "FGFailureCluster",
        "CASCADE",
    ),
    (
        "_FGFailureClusterToFGTestCase",
        "B",
        "FGTestCase",
        "CASCADE",
    ),
];

/// The unique constraints over nullable columns that become NULLS NOT DISTINCT: (table,
/// constraint, columns).
const NULLS_NOT_DISTINCT: [(&str, &str, &[&str]); 3] = [
    (
        "FGTestCase",
        "FGTestCase_orgId_repoId_suite_className_name_key",
        &["orgId", "repoId", "suite", "className", "name"],
    ),
    (
        "TestResult",
        "TestResult_orgId_repositoryId_testFullName_file_suite_key",
        &["orgId", "repositoryId", "testFullName", "file", "suite"],
    ),
    (
        "TestSuite",
        "TestSuite_orgId_repositoryId_name_runId_key",
        &["orgId", "repositoryId", "name", "runId"],
    ),
];

/// The 25 tables under row-level security: (table, the column holding the tenant).
const POLICIES: [(&str, &str); 25] = [
    ("Organization", "id"),
    ("OrganizationUser", "orgId"),
    ("Subscription", "orgId"),
    ("AuditLog", "orgId"),
    ("UsageMetric", "orgId"),
    ("Task", "orgId"),
    ("Installation", "orgId"),
    ("Repository", "orgId"),
    ("WorkflowRun", "orgId"),
    ("WorkflowJob", "orgId"),
    ("Artifact", "orgId"),
    ("CheckRun", "orgId"),
    ("TestSuite", "orgId"),
    ("TestResult", "orgId"),
    ("FlakeDetection", "orgId"),
    ("FGRepository", "orgId"),
    ("FGWorkflowRun", "orgId"),
    ("FGJob", "orgId"),
    ("FGTestCase", "orgId"),
    ("FGOccurrence", "orgId"),
    ("FGFlakeScore", "orgId"),
    ("FGQuarantineDecision", "orgId"),
    ("FGIssueLink", "orgId"),
    ("FGFailureCluster", "orgId"),
    ("_FGFailureClusterToFGTestCase", "orgId"),
];

/// At most this many offending rows are named in a refusal.
const NAMED: usize = 20;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        refuse_if_any(
            db,
            "tasks point at an organization that does not exist; give them an existing \
             organization (or NULL, a personal task) or delete them, then run this step again",
            r#"SELECT t."id" || ' (orgId ' || t."orgId" || ')' AS row FROM "Task" t
               WHERE t."orgId" IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM "Organization" o WHERE o."id" = t."orgId")
               ORDER BY 1"#,
        )
        .await?;
        for (table, constraint, columns) in NULLS_NOT_DISTINCT {
            let cols = quoted(columns);
            refuse_if_any(
                db,
                &format!(
                    "rows of \"{table}\" are duplicates under NULLS NOT DISTINCT ({constraint}): \
                     they differ only by NULLs; merge or delete them, then run this step again"
                ),
                &format!(
                    r#"SELECT string_agg("id", ', ' ORDER BY "id") AS row FROM "{table}"
                       GROUP BY {cols} HAVING count(*) > 1 ORDER BY 1"#
                ),
            )
            .await?;
        }
        refuse_if_any(
            db,
            "links of \"_FGFailureClusterToFGTestCase\" join a cluster and a test case of \
             different organizations; delete them, then run this step again",
            r#"SELECT l."A" || '|' || l."B" AS row FROM "_FGFailureClusterToFGTestCase" l
               JOIN "FGFailureCluster" c ON c."id" = l."A"
               JOIN "FGTestCase" t ON t."id" = l."B"
               WHERE c."orgId" <> t."orgId" ORDER BY 1"#,
        )
        .await?;
        db.execute_unprepared(&up_sql()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(&down_before_step7()).await?;
        // Step 7's own `up` recreates its policies, exactly (its role, grants and switches are
        // idempotent): step 7 is history and is neither edited nor copied.
        super::m20240827_000000_add_row_level_security::Migration
            .up(manager)
            .await?;
        db.execute_unprepared(&down_after_step7()).await?;
        Ok(())
    }
}

/// Fails, naming the rows `sql` finds (`row` column), when there are any.
async fn refuse_if_any(
    db: &SchemaManagerConnection<'_>,
    problem: &str,
    sql: &str,
) -> Result<(), DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut named = Vec::new();
    for row in rows.iter().take(NAMED) {
        named.push(row.try_get::<String>("", "row")?);
    }
    let more = rows.len().saturating_sub(NAMED);
    Err(DbErr::Migration(format!(
        "{} {problem}: {}{}; nothing was changed",
        rows.len(),
        named.join("; "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )))
}

fn quoted(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The whole of `up`, after the checks.
fn up_sql() -> String {
    let mut sql = String::new();
    // 1. "orgId" on the child tables, from each row's parent.
    for (table, col, parent) in CHILDREN {
        let _ = write!(
            sql,
            r#"
ALTER TABLE "{table}" ADD COLUMN "orgId" TEXT DEFAULT {TENANT};
UPDATE "{table}" c SET "orgId" = p."orgId" FROM "{parent}" p WHERE p."id" = c."{col}";
ALTER TABLE "{table}" ALTER COLUMN "orgId" SET NOT NULL;
ALTER TABLE "{table}" ADD CONSTRAINT "{table}_orgId_fkey" FOREIGN KEY ("orgId")
    REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE;
CREATE INDEX "{table}_orgId_idx" ON "{table}" ("orgId");
"#
        );
    }
    // 2. Composite tenant keys.
    for table in REFERENCED {
        let _ = writeln!(
            sql,
            r#"ALTER TABLE "{table}" ADD CONSTRAINT "{table}_orgId_id_key" UNIQUE ("orgId", "id");"#
        );
    }
    for (table, col, parent, on_delete) in FOREIGN_KEYS {
        let on_delete = match on_delete {
            "SET NULL" => format!(r#"SET NULL ("{col}")"#),
            other => other.to_owned(),
        };
        let _ = write!(
            sql,
            r#"ALTER TABLE "{table}" ADD CONSTRAINT "{table}_orgId_{col}_fkey"
    FOREIGN KEY ("orgId", "{col}") REFERENCES "{parent}" ("orgId", "id")
    ON DELETE {on_delete} ON UPDATE CASCADE;
"#
        );
    }
    // 3. Policies without subqueries.
    for (table, col) in POLICIES {
        let _ = write!(
            sql,
            r#"DROP POLICY "tenant_isolation" ON "{table}";
CREATE POLICY "tenant_isolation" ON "{table}" AS PERMISSIVE FOR ALL TO PUBLIC
    USING ("{col}" = {TENANT})
    WITH CHECK ("{col}" = {TENANT});
"#
        );
    }
    // 4. Task's organization.
    sql.push_str(
        r#"ALTER TABLE "Task" ADD CONSTRAINT "Task_orgId_fkey" FOREIGN KEY ("orgId")
    REFERENCES "Organization" ("id") ON DELETE CASCADE ON UPDATE CASCADE;
"#,
    );
    // 5. NULLS NOT DISTINCT, under the same names.
    for (table, constraint, columns) in NULLS_NOT_DISTINCT {
        let _ = write!(
            sql,
            r#"ALTER TABLE "{table}" DROP CONSTRAINT "{constraint}";
ALTER TABLE "{table}" ADD CONSTRAINT "{constraint}" UNIQUE NULLS NOT DISTINCT ({cols});
"#,
            cols = quoted(columns)
        );
    }
    sql
}

/// The first half of `down`: the constraints of items 4 and 5 as step 7 had them, and the
/// policies gone (step 7's `up` then creates its own again).
fn down_before_step7() -> String {
    let mut sql = String::new();
    for (table, constraint, columns) in NULLS_NOT_DISTINCT {
        let _ = write!(
            sql,
            r#"ALTER TABLE "{table}" DROP CONSTRAINT "{constraint}";
ALTER TABLE "{table}" ADD CONSTRAINT "{constraint}" UNIQUE ({cols});
"#,
            cols = quoted(columns)
        );
    }
    sql.push_str(
        r#"ALTER TABLE "Task" DROP CONSTRAINT "Task_orgId_fkey";
"#,
    );
    for (table, _) in POLICIES {
        let _ = writeln!(sql, r#"DROP POLICY "tenant_isolation" ON "{table}";"#);
    }
    sql
}

/// The second half of `down`: the composite keys and the children's "orgId" gone.
fn down_after_step7() -> String {
    let mut sql = String::new();
    for (table, col, _, _) in FOREIGN_KEYS.iter().rev() {
        let _ = writeln!(
            sql,
            r#"ALTER TABLE "{table}" DROP CONSTRAINT "{table}_orgId_{col}_fkey";"#
        );
    }
    for table in REFERENCED.iter().rev() {
        let _ = writeln!(
            sql,
            r#"ALTER TABLE "{table}" DROP CONSTRAINT "{table}_orgId_id_key";"#
        );
    }
    for (table, _, _) in CHILDREN.iter().rev() {
        let _ = writeln!(sql, r#"ALTER TABLE "{table}" DROP COLUMN "orgId";"#);
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_policy_of_this_step_holds_a_subquery() {
        let up = up_sql();
        let policies = &up[up.find("DROP POLICY").unwrap_or(0)..];
        assert!(!policies.contains("SELECT"), "{policies}");
        assert_eq!(up.matches("CREATE POLICY").count(), 25);
    }

    #[test]
    fn every_foreign_key_between_tenant_data_gets_its_twin() {
        let up = up_sql();
        assert_eq!(up.matches(r#"REFERENCES "Organization""#).count(), 6);
        assert_eq!(up.matches(r#"FOREIGN KEY ("orgId", ""#).count(), 31);
        assert_eq!(up.matches(r#"SET NULL (""#).count(), 9);
    }
}
