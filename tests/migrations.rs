//! The six-step migration history: each step up and down, and data carried through upgrades.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use flakeguard_db::migration::{Migrator, MigratorTrait};
use flakeguard_db::testing::TestDatabase;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use support::{Schema, diff, read_catalog, report};

const STEPS: [&str; 7] = [
    "m20240824_000000_init",
    "m20240824_000001_enhance_test_models_for_junit_ingestion",
    "m20240825_000000_add_flakeguard_core_models",
    "m20240826_000000_add_organization_tables",
    "m20240826_000001_add_flakeguard_models",
    "m20240826_000002_fix_migration_inconsistencies",
    "m20240827_000000_add_row_level_security",
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
            // Tenant-optional: personal tasks keep a NULL organization.
            assert!(col.nullable);
            continue;
        }
        assert_eq!(n, 0, "{t} has rows outside the default organization");
        assert!(!col.nullable, "{t}.orgId is nullable");
        with_org += 1;
    }
    assert_eq!(with_org, 14, "tables given an organization in step 5");
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
