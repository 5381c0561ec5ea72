//! The `flakeguard-migration` binary against a real PostgreSQL: concurrent migrators, validate,
//! adopt, and the usual subcommands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use flakeguard_db::testing::TestDatabase;

/// The migration steps there are.
const STEPS: usize = 9;
use flakeguard_migration::runner::MigrationLock;
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

fn migrator(url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flakeguard-migration"));
    cmd.args(args).env("DATABASE_URL", url);
    cmd
}

fn run(url: &str, args: &[&str]) -> (i32, String) {
    let Output {
        status,
        stdout,
        stderr,
        ..
    } = migrator(url, args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (status.code().unwrap_or(-1), text)
}

async fn connect(db: &TestDatabase) -> DatabaseConnection {
    Database::connect(db.url()).await.unwrap()
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap()
}

/// Two migrators started at once: one applies every step, the other waits for it, then finds
/// nothing to do; the database ends valid.
#[tokio::test]
async fn two_migrators_started_at_once_apply_each_step_once() {
    let db = TestDatabase::empty().await.unwrap();
    let conn = connect(&db).await;
    // Hold the lock while both start, so that they certainly overlap.
    let held = MigrationLock::acquire(&conn).await.unwrap();
    let spawn = || {
        migrator(db.url(), &["up"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (mut first, mut second) = (spawn(), spawn());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        first.try_wait().unwrap().is_none(),
        "first migrator did not wait for the lock"
    );
    assert!(
        second.try_wait().unwrap().is_none(),
        "second migrator did not wait for the lock"
    );
    assert_eq!(
        scalar(
            &conn,
            "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'"
        )
        .await,
        0
    );
    held.release().await;

    let outputs: Vec<String> = [first, second]
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect();
    let applied: Vec<usize> = outputs
        .iter()
        .map(|o| o.matches("applied m2024").count())
        .collect();
    let mut sorted = applied.clone();
    sorted.sort();
    assert_eq!(sorted, [0, STEPS], "{outputs:#?}");
    assert!(
        outputs.iter().any(|o| o.contains("nothing to do")),
        "{outputs:#?}"
    );
    assert_eq!(
        scalar(&conn, "SELECT count(*) AS n FROM seaql_migrations").await,
        STEPS as i64
    );
    let (code, out) = run(db.url(), &["validate"]);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn up_down_and_status_move_one_step_at_a_time() {
    let db = TestDatabase::empty().await.unwrap();
    let (code, out) = run(db.url(), &["up", "-n", "2"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("applied m2024").count(), 2, "{out}");
    let (_, status) = run(db.url(), &["status"]);
    assert_eq!(status.matches("applied ").count(), 2, "{status}");
    assert_eq!(status.matches("pending ").count(), STEPS - 2, "{status}");
    let (code, out) = run(db.url(), &["down"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("rolled back m20240824_000001_enhance_test_models_for_junit_ingestion"),
        "{out}"
    );
    let (_, status) = run(db.url(), &["status"]);
    assert_eq!(status.matches("applied ").count(), 1, "{status}");
    let (code, _) = run(db.url(), &["up"]);
    assert_eq!(code, 0);
    let (code, out) = run(db.url(), &["refresh"]);
    assert_eq!(
        (code, out.matches("applied m2024").count()),
        (0, STEPS),
        "{out}"
    );
    let (code, out) = run(db.url(), &["reset"]);
    assert_eq!(
        (code, out.matches("rolled back m2024").count()),
        (0, STEPS),
        "{out}"
    );
    let (code, out) = run(db.url(), &["fresh"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(db.url(), &["validate"]);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn validate_counts_what_it_checked_and_names_every_problem() {
    let db = TestDatabase::new().await.unwrap();
    let (code, out) = run(db.url(), &["validate"]);
    assert_eq!(code, 0, "{out}");
    for line in [
        "27 tables",
        "34 unique constraints",
        "154 indexes",
        "89 foreign keys",
        "3 enums",
        "25 tables under forced row-level security",
        "23 tenant and child tables without NULL",
        "3 extended statistics",
        "9 migration steps recorded",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }

    let conn = connect(&db).await;
    conn.execute_unprepared(
        r#"DROP INDEX "FGOccurrence_testId_status_idx";
           ALTER TABLE "FGJob" DISABLE ROW LEVEL SECURITY;
           REVOKE DELETE ON "AuditLog" FROM flakeguard_app;
           ALTER TABLE "FGFlakeScore" ALTER COLUMN "orgId" DROP NOT NULL;
           INSERT INTO "FGRepository" (id, "orgId", owner, name, "installationId", "updatedAt")
             VALUES ('r', 'default-org-id', 'o', 'n', 'i', now());
           INSERT INTO "FGTestCase" (id, "orgId", "repoId", suite, name, "updatedAt")
             VALUES ('t', 'default-org-id', 'r', 's', 'n', now());
           INSERT INTO "FGFlakeScore" (id, "orgId", "testId", "lastUpdatedAt") VALUES ('f', NULL, 't', now());
           DELETE FROM seaql_migrations WHERE version = 'm20240826_000002_fix_migration_inconsistencies';"#,
    )
    .await
    .unwrap();
    let (code, out) = run(db.url(), &["validate"]);
    assert_eq!(code, 1, "{out}");
    for problem in [
        "FGOccurrence: index FGOccurrence_testId_status_idx missing",
        "FGJob: row-level security must be enabled and forced",
        "AuditLog: flakeguard_app lacks DELETE",
        "FGFlakeScore: column orgId",
        "drift: FGFlakeScore.orgId is NOT NULL in the entity, nullable in the database",
        "FGFlakeScore: 1 rows with NULL \"orgId\"",
        "step m20240826_000002_fix_migration_inconsistencies not recorded",
    ] {
        assert!(out.contains(problem), "missing {problem:?} in:\n{out}");
    }
}

/// A database built by another tool from the same schema, with data and no history.
async fn foreign_database(steps: u32) -> (TestDatabase, DatabaseConnection) {
    let db = TestDatabase::empty().await.unwrap();
    let conn = connect(&db).await;
    flakeguard_migration::runner::up(&conn, Some(steps))
        .await
        .unwrap();
    conn.execute_unprepared(
        r#"DROP TABLE seaql_migrations;
           INSERT INTO "User" (id, email, "updatedAt") VALUES ('u1', 'a@example.com', now());"#,
    )
    .await
    .unwrap();
    (db, conn)
}

#[tokio::test]
async fn adopt_records_the_history_of_a_matching_database_without_touching_data() {
    let (db, conn) = foreign_database(STEPS as u32).await;
    let (code, out) = run(db.url(), &["validate"]);
    assert_eq!(code, 1, "no history yet:\n{out}");
    let (code, out) = run(db.url(), &["adopt"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.matches("recorded as applied: m2024").count(),
        STEPS,
        "{out}"
    );
    assert_eq!(
        scalar(&conn, "SELECT count(*) AS n FROM seaql_migrations").await,
        STEPS as i64
    );
    assert_eq!(
        scalar(
            &conn,
            r#"SELECT count(*) AS n FROM "User" WHERE email = 'a@example.com'"#
        )
        .await,
        1
    );
    let (code, out) = run(db.url(), &["validate"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(db.url(), &["adopt"]);
    assert_eq!(code, 1, "a second adopt is refused:\n{out}");
}

#[tokio::test]
async fn adopt_records_only_the_steps_a_database_matches() {
    let (db, conn) = foreign_database(6).await;
    let (code, out) = run(db.url(), &["adopt"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.matches("recorded as applied: m2024").count(),
        6,
        "{out}"
    );
    assert!(
        out.contains("m20240827_000000_add_row_level_security"),
        "{out}"
    );
    let (code, out) = run(db.url(), &["up"]);
    assert_eq!(
        (code, out.matches("applied m2024").count()),
        (0, STEPS - 6),
        "{out}"
    );
    let (code, out) = run(db.url(), &["validate"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        scalar(&conn, r#"SELECT count(*) AS n FROM "User""#).await,
        1
    );
}

#[tokio::test]
async fn adopt_refuses_a_database_that_differs_and_records_nothing() {
    let (db, conn) = foreign_database(7).await;
    conn.execute_unprepared(r#"DROP INDEX "Repository_orgId_fullName_idx""#)
        .await
        .unwrap();
    let (code, out) = run(db.url(), &["adopt"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Repository: index Repository_orgId_fullName_idx missing"),
        "{out}"
    );
    assert!(out.contains("nothing was recorded"), "{out}");
    assert_eq!(
        scalar(
            &conn,
            "SELECT count(*) AS n FROM pg_tables WHERE tablename = 'seaql_migrations'"
        )
        .await,
        0
    );
}
