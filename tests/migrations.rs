//! The migration history, nine steps: each step up and down, and data carried through upgrades.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use flakeguard_db::migration::{Migrator, MigratorTrait};
use flakeguard_db::testing::TestDatabase;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use support::{Schema, diff, read_catalog, report};

const STEPS: [&str; 9] = [
    "m20240824_000000_init",
    "m20240824_000001_enhance_test_models_for_junit_ingestion",
    "m20240825_000000_add_flakeguard_core_models",
    "m20240826_000000_add_organization_tables",
    "m20240826_000001_add_flakeguard_models",
    "m20240826_000002_fix_migration_inconsistencies",
    "m20240827_000000_add_row_level_security",
    "m20240828_000000_add_tenant_keys",
    "m20240829_000000_add_tenant_statistics",
];

async fn applied(conn: &DatabaseConnection) -> Vec<String> {
    Migrator::get_applied_migrations(conn)
        .await
        .unwrap()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}

#[tokio::test]
async fn migrator_lists_the_steps_in_order() {
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    assert_eq!(names, STEPS);
}

/// Up one step at a time, then down one step at a time: after the down of step N the catalog is
/// exactly what it was after the up of step N-1, and after the last down nothing is left but
/// the migrator's own bookkeeping table.
#[tokio::test]
async fn every_step_goes_up_then_down_exactly() {
    let db = TestDatabase::empty().await.unwrap();
    let conn = db.connect().await.unwrap();
    let mut snapshots: Vec<Schema> = vec![read_catalog(&conn).await];
    assert!(snapshots[0].tables.is_empty());
    for (i, step) in STEPS.iter().enumerate() {
        Migrator::up(&conn, Some(1)).await.unwrap();
        assert_eq!(applied(&conn).await, STEPS[..=i], "after up of {step}");
        let snapshot = read_catalog(&conn).await;
        assert_ne!(snapshot, snapshots[i], "{step} changed nothing");
        snapshots.push(snapshot);
    }
    assert_eq!(snapshots[6].tables.len(), 27);
    let secured = snapshots[7]
        .security
        .values()
        .filter(|s| s.enabled && s.forced)
        .count();
    assert_eq!(secured, 25, "tables under forced row-level security");
    for i in (0..STEPS.len()).rev() {
        Migrator::down(&conn, Some(1)).await.unwrap();
        assert_eq!(
            applied(&conn).await,
            STEPS[..i],
            "after down of {}",
            STEPS[i]
        );
        let diffs = diff(&snapshots[i], &read_catalog(&conn).await);
        assert!(
            diffs.is_empty(),
            "down of {} did not restore the catalog of the step before:\n{}",
            STEPS[i],
            report(&diffs)
        );
    }
    let left: Vec<String> = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT tablename::text AS t FROM pg_tables WHERE schemaname = 'public'",
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "t").unwrap())
        .collect();
    assert_eq!(left, ["seaql_migrations"]);
}

/// Rows in every table that exists at step 3.
const STEP_3_ROWS: &str = r#"
INSERT INTO "User" (id, email, "updatedAt") VALUES ('u1', 'a@example.com', now()), ('u2', 'b@example.com', now());
INSERT INTO "Task" (id, title, "userId", "updatedAt") VALUES ('t1', 'triage', 'u1', now());
INSERT INTO "Installation" (id, "githubInstallationId", "accountLogin", "accountId", "accountType", events, "updatedAt")
  VALUES ('i1', 9000000001, 'acme', 42, 'Organization', '{push,check_run}', now());
INSERT INTO "Repository" (id, "githubId", "nodeId", name, "fullName", owner, "installationId", "updatedAt")
  VALUES ('r1', 5000000001, 'N1', 'web', 'acme/web', 'acme', 'i1', now()),
         ('r2', 5000000002, 'N2', 'api', 'acme/api', 'acme', 'i1', now());
INSERT INTO "WorkflowRun" (id, "githubId", "headBranch", "headSha", status, "workflowId", "workflowName", "repositoryId", "installationId", "updatedAt")
  VALUES ('wr1', 7000000001, 'main', 'abc', 'completed', 3000000001, 'ci', 'r1', 'i1', now());
INSERT INTO "CheckRun" (id, "githubId", name, "headSha", status, "repositoryId", "installationId", "workflowRunId", "updatedAt")
  VALUES ('cr1', 8000000001, 'tests', 'abc', 'completed', 'r1', 'i1', 'wr1', now());
INSERT INTO "WorkflowJob" (id, "githubId", name, status, "workflowRunId", "updatedAt")
  VALUES ('wj1', 6000000001, 'unit', 'completed', 'wr1', now());
INSERT INTO "Artifact" (id, "githubId", name, type, "sizeInBytes", url, "archiveDownloadUrl", "workflowRunId", "updatedAt", "expiresAt")
  VALUES ('a1', 4000000001, 'junit', 'zip', 5000000000, 'https://x/a', 'https://x/a.zip', 'wr1', now(), now() + interval '1 day');
INSERT INTO "TestSuite" (id, name, "repositoryId", "runId", "updatedAt") VALUES ('ts1', 'unit', 'r1', 'run-1', now());
INSERT INTO "TestResult" (id, name, suite, "testFullName", status, time, "runId", "repositoryId", "testSuiteId", "checkRunId", "workflowJobId", "updatedAt")
  VALUES ('tr1', 'adds', 'unit', 'math.adds', 'failed', 0.25, 'run-1', 'r1', 'ts1', 'cr1', 'wj1', now());
INSERT INTO "FlakeDetection" (id, "testName", "repositoryId", "installationId", "checkRunId", "testResultId", "updatedAt")
  VALUES ('fd1', 'math.adds', 'r1', 'i1', 'cr1', 'tr1', now());
INSERT INTO "IngestionJob" (id, "workflowRunId", "repositoryId", "updatedAt") VALUES ('ij1', 'wr1', 'r1', now());
INSERT INTO "FGRepository" (id, owner, name, "installationId", "updatedAt") VALUES ('fr1', 'acme', 'web', 'i1', now());
INSERT INTO "FGWorkflowRun" (id, "repoId", "runId", status, "updatedAt") VALUES ('fw1', 'fr1', 'run-1', 'completed', now());
INSERT INTO "FGJob" (id, "runId", "jobId", name, status, "updatedAt") VALUES ('fj1', 'fw1', 'job-1', 'unit', 'completed', now());
INSERT INTO "FGTestCase" (id, "repoId", suite, "className", name, "updatedAt")
  VALUES ('tc1', 'fr1', 'unit', 'Math', 'adds', now()), ('tc2', 'fr1', 'unit', 'Math', 'subtracts', now());
INSERT INTO "FGOccurrence" (id, "testId", "runId", "jobId", status, "durationMs", "failureMsgSignature")
  VALUES ('o1', 'tc1', 'fw1', 'fj1', 'failed', 12, 'sig-1'), ('o2', 'tc2', 'fw1', 'fj1', 'passed', 7, NULL);
INSERT INTO "FGFlakeScore" ("testId", score, "lastUpdatedAt") VALUES ('tc1', 0.5, now()), ('tc2', 0.0, now());
INSERT INTO "FGQuarantineDecision" (id, "testId", state, rationale, "updatedAt") VALUES ('q1', 'tc1', 'ACTIVE', 'flaky', now());
INSERT INTO "FGIssueLink" (id, "testId", url) VALUES ('l1', 'tc1', 'https://x/issues/1');
INSERT INTO "FGFailureCluster" (id, "repoId", "failureMsgSignature", "testIds", "updatedAt")
  VALUES ('fc1', 'fr1', 'sig-1', '{tc1}', now());
INSERT INTO "_FGFailureClusterToFGTestCase" ("A", "B") VALUES ('fc1', 'tc1');
"#;

/// Every row of every table, as JSON without the columns that later steps add.
async fn all_rows(conn: &DatabaseConnection, tables: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for t in tables {
        let sql = format!(
            r#"SELECT (to_jsonb(x) - 'orgId' - CASE WHEN '{t}' = 'FGFlakeScore' THEN 'id' ELSE '' END)::text AS j
               FROM "{t}" x ORDER BY 1"#
        );
        let rows = conn
            .query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
            .await
            .unwrap();
        out.insert(
            t.clone(),
            rows.iter()
                .map(|r| r.try_get::<String>("", "j").unwrap())
                .collect(),
        );
    }
    out
}

#[tokio::test]
async fn rows_created_at_step_3_survive_the_upgrade_to_the_latest_step_in_the_default_organization()
{
    let db = TestDatabase::empty().await.unwrap();
    let conn = db.connect().await.unwrap();
    Migrator::up(&conn, Some(3)).await.unwrap();
    conn.execute_unprepared(STEP_3_ROWS).await.unwrap();
    let tables: Vec<String> = read_catalog(&conn).await.tables.into_keys().collect();
    assert_eq!(tables.len(), 22, "tables at step 3: {tables:?}");
    let before = all_rows(&conn, &tables).await;
    for (t, rows) in &before {
        assert!(!rows.is_empty(), "no row seeded in {t}");
    }

    Migrator::up(&conn, None).await.unwrap();

    assert_eq!(
        all_rows(&conn, &tables).await,
        before,
        "rows changed by the upgrade"
    );
    let catalog = read_catalog(&conn).await;
    let mut with_org = 0;
    for t in &tables {
        let Some(col) = catalog.tables[t].columns.get("orgId") else {
            continue;
        };
        let sql = format!(
            r#"SELECT count(*) AS n FROM "{t}" WHERE "orgId" IS DISTINCT FROM 'default-org-id'"#
        );
        let row = conn
            .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
            .await
            .unwrap()
            .unwrap();
        let n: i64 = row.try_get("", "n").unwrap();
        if t == "Task" {
            // Tenant-optional: the personal task t1 keeps a NULL organization.
            assert!(col.nullable);
            assert_eq!(n, 1, "Task t1 was given an organization");
            continue;
        }
        assert_eq!(n, 0, "{t} has rows outside the default organization");
        assert!(!col.nullable, "{t}.orgId is nullable");
        with_org += 1;
    }
    assert_eq!(
        with_org, 19,
        "tables given an organization: 14 in step 5, the 5 child tables (from their parents) in step 8"
    );
    // FGFlakeScore was re-keyed: every row has a fresh, distinct id.
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            r#"SELECT count(DISTINCT id) AS n FROM "FGFlakeScore" WHERE id <> ''"#,
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<i64>("", "n").unwrap(), 2);
}

/// Tables that later migrations add are granted to flakeguard_app as they are created.
#[tokio::test]
async fn flakeguard_app_is_granted_tables_created_after_the_migrations() {
    let db = TestDatabase::new().await.unwrap();
    let conn = db.connect().await.unwrap();
    conn.execute_unprepared(r#"CREATE TABLE "LaterTable" (id text PRIMARY KEY)"#)
        .await
        .unwrap();
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            r#"SELECT has_table_privilege('flakeguard_app', '"LaterTable"', 'SELECT, INSERT, UPDATE, DELETE') AS granted,
                      has_table_privilege('flakeguard_app', '"FGOccurrence"', 'SELECT, INSERT, UPDATE, DELETE') AS existing,
                      has_table_privilege('flakeguard_app', 'seaql_migrations', 'INSERT') AS history"#,
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(row.try_get::<bool>("", "granted").unwrap());
    assert!(row.try_get::<bool>("", "existing").unwrap());
    assert!(
        !row.try_get::<bool>("", "history").unwrap(),
        "the app may not rewrite the history"
    );
}

/// Up all, down all, up all: the same catalog as a single up, and down all leaves nothing but
/// the migrator's own bookkeeping table.
#[tokio::test]
async fn up_down_up_round_trip_gives_the_catalog_of_a_single_up() {
    use flakeguard_db::migration::runner;
    let db = TestDatabase::empty().await.unwrap();
    let conn = db.connect().await.unwrap();
    runner::up(&conn, None).await.unwrap();
    let once = read_catalog(&conn).await;
    let undone = runner::reset(&conn).await.unwrap();
    assert_eq!(undone.len(), STEPS.len());
    let left: Vec<String> = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT c.relname::text AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'S', 'p')
             UNION ALL SELECT typname::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname = 'public' AND t.typtype = 'e'",
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "t").unwrap())
        .collect();
    assert_eq!(left, ["seaql_migrations"]);
    runner::up(&conn, None).await.unwrap();
    let diffs = diff(&once, &read_catalog(&conn).await);
    assert!(diffs.is_empty(), "{}", report(&diffs));
}

/// Rows for every table that exists after step `step` (1..=7), tagged `t` so that each step's
/// rows are distinct.
fn rows_at_step(step: usize, t: &str) -> String {
    const WITH_ORG_FROM_5: [&str; 14] = [
        "Installation",
        "Repository",
        "CheckRun",
        "WorkflowRun",
        "FlakeDetection",
        "TestSuite",
        "TestResult",
        "FGRepository",
        "FGWorkflowRun",
        "FGTestCase",
        "FGOccurrence",
        "FGFlakeScore",
        "FGQuarantineDecision",
        "FGFailureCluster",
    ];
    // (table, created at step, columns, values)
    let rows: [(&str, usize, &str, &str); 27] = [
        (
            "User",
            1,
            r#"id, email, "updatedAt""#,
            "'u{t}', 'u{t}@example.com', now()",
        ),
        (
            "Organization",
            4,
            r#"id, name, slug, "updatedAt""#,
            "'org{t}', 'Org {t}', 'org{t}', now()",
        ),
        (
            "Installation",
            1,
            r#"id, "githubInstallationId", "accountLogin", "accountId", "accountType", events, "updatedAt""#,
            "'i{t}', {n}, 'acme', {n}, 'Organization', '{push}', now()",
        ),
        (
            "Repository",
            1,
            r#"id, "githubId", "nodeId", name, "fullName", owner, "installationId", "updatedAt""#,
            "'r{t}', {n}, 'N{t}', 'web', 'acme/web{t}', 'acme', 'i{t}', now()",
        ),
        (
            "WorkflowRun",
            1,
            r#"id, "githubId", "headBranch", "headSha", status, "workflowId", "workflowName", "repositoryId", "installationId", "updatedAt""#,
            "'wr{t}', {n}, 'main', 'abc', 'completed', {n}, 'ci', 'r{t}', 'i{t}', now()",
        ),
        (
            "CheckRun",
            1,
            r#"id, "githubId", name, "headSha", status, "repositoryId", "installationId", "workflowRunId", output, "updatedAt""#,
            r#"'cr{t}', {n}, 'tests', 'abc', 'completed', 'r{t}', 'i{t}', 'wr{t}', '{"summary": "{t}"}', now()"#,
        ),
        (
            "WorkflowJob",
            1,
            r#"id, "githubId", name, status, "workflowRunId", "updatedAt""#,
            "'wj{t}', {n}, 'unit', 'completed', 'wr{t}', now()",
        ),
        (
            "Artifact",
            1,
            r#"id, "githubId", name, type, "sizeInBytes", url, "archiveDownloadUrl", "workflowRunId", "updatedAt", "expiresAt""#,
            "'a{t}', {n}, 'junit', 'zip', 5000000000, 'https://x/a', 'https://x/a.zip', 'wr{t}', now(), now()",
        ),
        (
            "TestSuite",
            2,
            r#"id, name, "repositoryId", "runId", "updatedAt""#,
            "'ts{t}', 'unit', 'r{t}', 'run{t}', now()",
        ),
        (
            "TestResult",
            2,
            r#"id, name, suite, "testFullName", status, time, "runId", "repositoryId", "testSuiteId", "checkRunId", "workflowJobId", "updatedAt""#,
            "'tr{t}', 'adds', 'unit', 'math.adds', 'failed', 0.25, 'run{t}', 'r{t}', 'ts{t}', 'cr{t}', 'wj{t}', now()",
        ),
        (
            "FlakeDetection",
            1,
            r#"id, "testName", "repositoryId", "installationId", "checkRunId", "updatedAt""#,
            "'fd{t}', 'math.adds', 'r{t}', 'i{t}', 'cr{t}', now()",
        ),
        (
            "Task",
            1,
            r#"id, title, "userId", "updatedAt""#,
            "'t{t}', 'triage', 'u{t}', now()",
        ),
        (
            "IngestionJob",
            2,
            r#"id, "workflowRunId", "repositoryId", "updatedAt""#,
            "'ij{t}', 'wr{t}', 'r{t}', now()",
        ),
        (
            "FGRepository",
            3,
            r#"id, owner, name, "installationId", "updatedAt""#,
            "'fr{t}', 'acme', 'web{t}', 'i{t}', now()",
        ),
        (
            "FGWorkflowRun",
            3,
            r#"id, "repoId", "runId", status, "updatedAt""#,
            "'fw{t}', 'fr{t}', 'run{t}', 'completed', now()",
        ),
        (
            "FGJob",
            3,
            r#"id, "runId", "jobId", name, status, "updatedAt""#,
            "'fj{t}', 'fw{t}', 'job', 'unit', 'completed', now()",
        ),
        (
            "FGTestCase",
            3,
            r#"id, "repoId", suite, "className", name, "updatedAt""#,
            "'tc{t}', 'fr{t}', 'unit', 'Math', 'adds', now()",
        ),
        (
            "FGOccurrence",
            3,
            r#"id, "testId", "runId", "jobId", status, "durationMs""#,
            "'o{t}', 'tc{t}', 'fw{t}', 'fj{t}', 'failed', 12",
        ),
        (
            "FGFlakeScore",
            3,
            r#""testId", score, "lastUpdatedAt""#,
            "'tc{t}', 0.5, now()",
        ),
        (
            "FGQuarantineDecision",
            3,
            r#"id, "testId", state, rationale, "updatedAt""#,
            "'q{t}', 'tc{t}', 'ACTIVE', 'flaky', now()",
        ),
        (
            "FGIssueLink",
            3,
            r#"id, "testId", url"#,
            "'l{t}', 'tc{t}', 'https://x/{t}'",
        ),
        (
            "FGFailureCluster",
            3,
            r#"id, "repoId", "failureMsgSignature", "testIds", "updatedAt""#,
            "'fc{t}', 'fr{t}', 'sig', ARRAY['tc{t}'], now()",
        ),
        (
            "_FGFailureClusterToFGTestCase",
            3,
            r#""A", "B""#,
            "'fc{t}', 'tc{t}'",
        ),
        (
            "OrganizationUser",
            4,
            r#"id, "orgId", "userId", "updatedAt""#,
            "'ou{t}', 'org{t}', 'u{t}', now()",
        ),
        (
            "Subscription",
            4,
            r#"id, "orgId", plan, status, "currentPeriodStart", "currentPeriodEnd", "updatedAt""#,
            "'s{t}', 'org{t}', 'team', 'active', now(), now(), now()",
        ),
        (
            "AuditLog",
            4,
            r#"id, "orgId", action, resource"#,
            "'al{t}', 'org{t}', 'create', 'Organization'",
        ),
        (
            "UsageMetric",
            4,
            r#"id, "orgId", "metricType", period, date, "updatedAt""#,
            "'um{t}', 'org{t}', 'runs', 'day', now(), now()",
        ),
    ];
    let n = (step as i64) * 1_000_000_000 + 7;
    let mut sql = String::new();
    for (table, from, cols, vals) in rows {
        if step < from {
            continue;
        }
        let (mut cols, mut vals) = (cols.to_owned(), vals.to_owned());
        if step >= 5 && WITH_ORG_FROM_5.contains(&table) {
            cols.push_str(r#", "orgId""#);
            vals.push_str(", 'org{t}'");
        }
        if step >= 5 && table == "FGFlakeScore" {
            cols.push_str(", id");
            vals.push_str(", 'fs{t}'");
        }
        if step >= 2 && table == "FlakeDetection" {
            cols.push_str(r#", "testResultId""#);
            vals.push_str(", 'tr{t}'");
        }
        let vals = vals.replace("{t}", t).replace("{n}", &n.to_string());
        sql.push_str(&format!(
            r#"INSERT INTO "{table}" ({cols}) VALUES ({vals});"#
        ));
        sql.push('\n');
    }
    sql
}

/// Every row of every table, as JSON without the columns later steps add; a multiset.
async fn every_row(conn: &DatabaseConnection) -> Vec<String> {
    let mut out = Vec::new();
    for t in read_catalog(conn).await.tables.keys() {
        out.extend(
            all_rows(conn, std::slice::from_ref(t))
                .await
                .into_iter()
                .flat_map(|(t, rows)| rows.into_iter().map(move |r| format!("{t} {r}"))),
        );
    }
    out.sort();
    out
}

/// A database that gets rows in every table at every step keeps every row and value through
/// the upgrade to the latest step; rows from before step 5 land in the default organization.
#[tokio::test]
async fn rows_written_at_every_step_survive_every_later_step() {
    use flakeguard_db::migration::runner;
    let db = TestDatabase::empty().await.unwrap();
    let conn = db.connect().await.unwrap();
    let mut written: Vec<Vec<String>> = Vec::new();
    for step in 1..=7 {
        runner::up(&conn, Some(1)).await.unwrap();
        conn.execute_unprepared(&rows_at_step(step, &format!("s{step}")))
            .await
            .unwrap_or_else(|e| panic!("rows at step {step}: {e}"));
        written.push(every_row(&conn).await);
    }
    let tables = read_catalog(&conn).await.tables.len();
    assert_eq!(tables, 27);
    let last = every_row(&conn).await;
    assert_eq!(
        last.len(),
        7 * 9 + 6 * 3 + 5 * 10 + 4 * 5 + 1,
        "rows written (with the default organization)"
    );
    for (i, rows) in written.iter().enumerate() {
        let missing: Vec<&String> = rows.iter().filter(|r| !last.contains(r)).collect();
        assert!(
            missing.is_empty(),
            "rows written at step {} lost or changed: {missing:#?}",
            i + 1
        );
    }
    let misplaced = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            r#"SELECT count(*) AS n FROM "FGOccurrence"
               WHERE ("orgId" = 'default-org-id') <> (id IN ('os3', 'os4'))"#,
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(misplaced.try_get::<i64>("", "n").unwrap(), 0);

    // Step 8 on the database populated up to step 7: every row kept, each child row in its
    // parent's organization (rows of different steps belong to different organizations).
    let step7 = read_catalog(&conn).await;
    runner::up(&conn, Some(1)).await.unwrap();
    assert_eq!(every_row(&conn).await, last, "step 8 lost or changed rows");
    for (child, col, parent) in CHILDREN {
        let row = conn
            .query_one_raw(Statement::from_string(
                conn.get_database_backend(),
                format!(
                    r#"SELECT count(*) AS n,
                              count(*) FILTER (WHERE c."orgId" IS DISTINCT FROM p."orgId") AS wrong
                       FROM "{child}" c LEFT JOIN "{parent}" p ON p."id" = c."{col}""#
                ),
            ))
            .await
            .unwrap()
            .unwrap();
        let (n, wrong): (i64, i64) = (
            row.try_get("", "n").unwrap(),
            row.try_get("", "wrong").unwrap(),
        );
        assert!(n >= 5, "{child}: {n} rows");
        assert_eq!(wrong, 0, "{child}: rows not in their parent's organization");
    }
    // And its down gives step 7 back exactly, keeping every row.
    runner::down(&conn, Some(1)).await.unwrap();
    let diffs = diff(&step7, &read_catalog(&conn).await);
    assert!(diffs.is_empty(), "down of step 8:\n{}", report(&diffs));
    assert_eq!(every_row(&conn).await, last, "down of step 8 lost rows");
}

/// The child tables and the parent each takes its "orgId" from.
const CHILDREN: [(&str, &str, &str); 5] = [
    ("WorkflowJob", "workflowRunId", "WorkflowRun"),
    ("Artifact", "workflowRunId", "WorkflowRun"),
    ("FGJob", "runId", "FGWorkflowRun"),
    ("FGIssueLink", "testId", "FGTestCase"),
    ("_FGFailureClusterToFGTestCase", "A", "FGFailureCluster"),
];

/// Step 8 never deletes or merges rows: tasks of a missing organization, and rows that would
/// be duplicates under NULLS NOT DISTINCT, make it refuse, naming them, and change nothing.
#[tokio::test]
async fn step_8_refuses_orphan_tasks_and_null_duplicates_naming_them() {
    use flakeguard_db::migration::runner;
    let db = TestDatabase::empty().await.unwrap();
    let conn = db.connect().await.unwrap();
    runner::up(&conn, Some(7)).await.unwrap();
    conn.execute_unprepared(&rows_at_step(7, "x"))
        .await
        .unwrap();
    let step7 = read_catalog(&conn).await;
    let rows = every_row(&conn).await;
    let refused = |what: &'static str| {
        let conn = conn.clone();
        async move {
            let err = runner::up(&conn, None).await.unwrap_err().to_string();
            assert_eq!(applied(&conn).await.len(), 7, "{what}: a step was recorded");
            err
        }
    };

    conn.execute_unprepared(
        r#"INSERT INTO "Task" (id, title, "userId", "orgId", "updatedAt")
           VALUES ('orphan-task', 'left behind', 'ux', 'no-such-org', now())"#,
    )
    .await
    .unwrap();
    let err = refused("orphan").await;
    assert!(
        err.contains("orphan-task")
            && err.contains("no-such-org")
            && err.contains("nothing was changed"),
        "{err}"
    );
    conn.execute_unprepared(r#"DELETE FROM "Task" WHERE id = 'orphan-task'"#)
        .await
        .unwrap();

    conn.execute_unprepared(
        r#"INSERT INTO "FGTestCase" (id, "orgId", "repoId", suite, "className", name, "updatedAt")
           VALUES ('dup-1', 'orgx', 'frx', 'unit', NULL, 'same', now()),
                  ('dup-2', 'orgx', 'frx', 'unit', NULL, 'same', now())"#,
    )
    .await
    .unwrap();
    let err = refused("duplicates").await;
    assert!(
        err.contains("dup-1, dup-2") && err.contains("NULLS NOT DISTINCT"),
        "{err}"
    );
    let diffs = diff(&step7, &read_catalog(&conn).await);
    assert!(
        diffs.is_empty(),
        "the refused step changed the schema:\n{}",
        report(&diffs)
    );
    let mut now = every_row(&conn).await;
    now.retain(|r| !r.contains("dup-"));
    assert_eq!(now, rows, "the refused step changed rows");

    // Once the duplicate is resolved, the step applies.
    conn.execute_unprepared(r#"DELETE FROM "FGTestCase" WHERE id = 'dup-2'"#)
        .await
        .unwrap();
    runner::up(&conn, None).await.unwrap();
    assert_eq!(applied(&conn).await, STEPS);
}

/// A step that fails part-way leaves the database as it was before that step, and the error
/// names the step.
#[tokio::test]
async fn a_failing_step_changes_nothing_and_is_named() {
    use flakeguard_db::migration::runner::{self, MigrateError};
    let db = TestDatabase::empty().await.unwrap();
    let conn = db.connect().await.unwrap();
    runner::up(&conn, Some(4)).await.unwrap();
    conn.execute_unprepared(&rows_at_step(4, "x"))
        .await
        .unwrap();
    // Step 5 creates this index after it has altered a dozen other tables.
    conn.execute_unprepared(
        r#"CREATE INDEX "FGFailureCluster_orgId_idx" ON "FGFailureCluster" ("repoId")"#,
    )
    .await
    .unwrap();
    let before = read_catalog(&conn).await;
    let rows = every_row(&conn).await;
    let err = runner::up(&conn, None).await.unwrap_err();
    match &err {
        MigrateError::Step {
            step, direction, ..
        } => {
            assert_eq!(
                (step.as_str(), *direction),
                ("m20240826_000001_add_flakeguard_models", "up")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("m20240826_000001_add_flakeguard_models"),
        "{err}"
    );
    let diffs = diff(&before, &read_catalog(&conn).await);
    assert!(
        diffs.is_empty(),
        "the failed step left changes:\n{}",
        report(&diffs)
    );
    assert_eq!(every_row(&conn).await, rows);
    assert_eq!(applied(&conn).await, STEPS[..4]);
    conn.execute_unprepared(r#"DROP INDEX "FGFailureCluster_orgId_idx""#)
        .await
        .unwrap();
    assert_eq!(runner::up(&conn, None).await.unwrap(), STEPS[4..]);
}

/// The entities and the migrated database agree column for column; a column missing on either
/// side, or a type or nullability that differs, is reported.
#[tokio::test]
async fn entities_and_the_migrated_database_do_not_drift() {
    use flakeguard_db::migration::validate::drift;
    let db = TestDatabase::new().await.unwrap();
    let conn = db.connect().await.unwrap();
    let problems = drift(&read_catalog(&conn).await);
    assert!(problems.is_empty(), "{problems:#?}");
    conn.execute_unprepared(
        r#"ALTER TABLE "FGOccurrence" DROP COLUMN "failureMessage";
           ALTER TABLE "Repository" ADD COLUMN "archived" boolean;
           ALTER TABLE "Artifact" ALTER COLUMN "sizeInBytes" TYPE integer;
           ALTER TABLE "FGJob" ALTER COLUMN "conclusion" SET NOT NULL"#,
    )
    .await
    .unwrap();
    let mut problems = drift(&read_catalog(&conn).await);
    problems.sort();
    assert_eq!(
        problems,
        [
            "drift: Artifact.sizeInBytes is bigint in the entity, integer in the database",
            "drift: FGJob.conclusion is nullable in the entity, NOT NULL in the database",
            "drift: FGOccurrence.failureMessage is in the entity but not in the database",
            "drift: Repository.archived is in the database but not in the entity",
        ]
    );
}

/// `validate` may pass a nullable-"orgId" check only when the role is refused a look past
/// row-level security (SQLSTATE 42501); any other failure of the count (here a lock it cannot
/// get, as a lost connection would) is a problem, not a pass.
#[tokio::test]
async fn validate_reports_a_failed_null_org_id_count_instead_of_passing() {
    let db = TestDatabase::new().await.unwrap();
    let admin = db.connect().await.unwrap();
    admin
        .execute_unprepared(&format!(
            r#"ALTER DATABASE "{}" SET lock_timeout = '200ms'"#,
            db.name()
        ))
        .await
        .unwrap();
    // An inheritance child of FGOccurrence, outside the public schema that validate reads,
    // held by a second session: counting FGOccurrence must read the child, and cannot.
    admin
        .execute_unprepared(
            r#"CREATE SCHEMA hold; CREATE TABLE hold.occ () INHERITS (public."FGOccurrence")"#,
        )
        .await
        .unwrap();
    let holder = db.connect().await.unwrap();
    let tx = flakeguard_db::sea_orm::TransactionTrait::begin(&holder)
        .await
        .unwrap();
    tx.execute_unprepared("LOCK TABLE hold.occ IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let validating = db.connect().await.unwrap();
    let report = flakeguard_db::migration::validate::validate(&validating)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    admin
        .execute_unprepared("DROP SCHEMA hold CASCADE")
        .await
        .unwrap();
    assert!(
        !report.is_ok(),
        "validate passed without counting FGOccurrence"
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.starts_with(r#"FGOccurrence: could not count NULL "orgId""#)),
        "{:?}",
        report.problems
    );
    // Without the lock the same database is valid.
    let report = flakeguard_db::migration::validate::validate(&validating)
        .await
        .unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}
