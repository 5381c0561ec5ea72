//! The migrated database against the contract, docs/SCHEMA.md, read from the catalog.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flakeguard_db::testing::TestDatabase;
use sea_orm::ConnectionTrait;
use support::{contract, diff, read_catalog, report, without_security};

/// The parser reads the contract and its addendum completely: the totals it finds are the ones
/// SCHEMA.md states (with the addendum of migration step 8).
#[test]
fn contract_parses_to_the_stated_totals() {
    let c = contract();
    assert_eq!(c.tables.len(), 27, "tables");
    assert_eq!(c.enums.len(), 3, "enums");
    assert_eq!(c.count(|t| t.uniques.len()), 22 + 12, "unique constraints");
    assert_eq!(c.count(|t| t.indexes.len()), 149 + 5, "plain indexes");
    assert_eq!(c.count(|t| t.foreign_keys.len()), 52 + 37, "foreign keys");
    assert_eq!(c.count(|t| t.primary_key.len()), 27, "primary keys");
    assert_eq!(
        c.enums["FGQuarantineState"],
        ["PROPOSED", "ACTIVE", "EXPIRED", "DISMISSED", "RESOLVED"]
    );
}

/// The in-repository copy of the contract is the shared one, followed by the addendum only,
/// when the shared one is at hand.
#[test]
fn contract_copy_matches_the_shared_contract() {
    let shared = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/SCHEMA.md");
    if let Ok(original) = std::fs::read_to_string(shared) {
        let copy = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/SCHEMA.md"))
            .unwrap();
        let rest = copy.strip_prefix(original.trim_end()).unwrap_or_else(|| {
            panic!("docs/SCHEMA.md does not start with {shared}: copy it again")
        });
        assert!(
            rest.trim_start().starts_with("## Addendum:"),
            "docs/SCHEMA.md adds something other than its addendum to {shared}"
        );
    }
}

#[tokio::test]
async fn migrated_database_matches_schema_md_item_for_item() {
    let db = TestDatabase::new().await.unwrap();
    let conn = db.connect().await.unwrap();
    let diffs = diff(&contract(), &without_security(read_catalog(&conn).await));
    assert!(
        diffs.is_empty(),
        "schema differs from SCHEMA.md:\n{}",
        report(&diffs)
    );
}

/// Breaks the migrated schema with `sql` and returns what the comparison then reports.
async fn differences_after(sql: &str) -> Vec<String> {
    let db = TestDatabase::new().await.unwrap();
    let conn = db.connect().await.unwrap();
    conn.execute_unprepared(sql).await.unwrap();
    diff(&contract(), &without_security(read_catalog(&conn).await))
}

#[tokio::test]
async fn comparison_catches_a_missing_index() {
    let diffs = differences_after(r#"DROP INDEX "FGOccurrence_testId_createdAt_idx""#).await;
    assert_eq!(
        diffs,
        ["FGOccurrence: index FGOccurrence_testId_createdAt_idx missing"]
    );
}

#[tokio::test]
async fn comparison_catches_a_misnamed_index() {
    let diffs = differences_after(
        r#"ALTER INDEX "Repository_orgId_fullName_idx" RENAME TO "Repository_org_fullName_idx""#,
    )
    .await;
    assert_eq!(
        diffs,
        [
            "Repository: index Repository_orgId_fullName_idx missing",
            "Repository: index Repository_org_fullName_idx not expected",
        ]
    );
}

#[tokio::test]
async fn comparison_catches_a_missing_foreign_key() {
    let diffs = differences_after(
        r#"ALTER TABLE "FGOccurrence" DROP CONSTRAINT "FGOccurrence_jobId_fkey""#,
    )
    .await;
    assert_eq!(
        diffs,
        ["FGOccurrence: foreign key FGOccurrence_jobId_fkey missing"]
    );
}

#[tokio::test]
async fn comparison_catches_a_misnamed_foreign_key() {
    let diffs = differences_after(
        r#"ALTER TABLE "CheckRun" RENAME CONSTRAINT "CheckRun_workflowRunId_fkey" TO "CheckRun_run_fkey""#,
    )
    .await;
    assert_eq!(
        diffs,
        [
            "CheckRun: foreign key CheckRun_workflowRunId_fkey missing",
            "CheckRun: foreign key CheckRun_run_fkey not expected",
        ]
    );
}

#[tokio::test]
async fn comparison_catches_a_wrong_on_delete_rule() {
    let diffs = differences_after(
        r#"ALTER TABLE "TestResult" DROP CONSTRAINT "TestResult_checkRunId_fkey";
           ALTER TABLE "TestResult" ADD CONSTRAINT "TestResult_checkRunId_fkey"
             FOREIGN KEY ("checkRunId") REFERENCES "CheckRun"("id") ON DELETE CASCADE"#,
    )
    .await;
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert!(diffs[0].starts_with("TestResult: foreign key TestResult_checkRunId_fkey: expected"));
}

#[tokio::test]
async fn comparison_catches_a_missing_not_null() {
    let diffs =
        differences_after(r#"ALTER TABLE "FGFlakeScore" ALTER COLUMN "orgId" DROP NOT NULL"#).await;
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert!(
        diffs[0].starts_with("FGFlakeScore: column orgId: expected"),
        "{diffs:?}"
    );
}

#[tokio::test]
async fn comparison_catches_a_wrong_default_and_type() {
    let diffs = differences_after(
        r#"ALTER TABLE "Organization" ALTER COLUMN "plan" SET DEFAULT 'pro';
           ALTER TABLE "Artifact" ALTER COLUMN "sizeInBytes" TYPE integer"#,
    )
    .await;
    assert_eq!(diffs.len(), 2, "{diffs:?}");
    assert!(
        diffs
            .iter()
            .any(|d| d.starts_with("Organization: column plan:"))
    );
    assert!(
        diffs
            .iter()
            .any(|d| d.starts_with("Artifact: column sizeInBytes:"))
    );
}

#[tokio::test]
async fn comparison_catches_a_unique_constraint_without_org_id() {
    let diffs = differences_after(
        r#"ALTER TABLE "FGWorkflowRun" DROP CONSTRAINT "FGWorkflowRun_orgId_repoId_runId_key";
           ALTER TABLE "FGWorkflowRun" ADD CONSTRAINT "FGWorkflowRun_orgId_repoId_runId_key"
             UNIQUE ("repoId", "runId")"#,
    )
    .await;
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert_eq!(
        diffs[0],
        r#"FGWorkflowRun: unique constraint FGWorkflowRun_orgId_repoId_runId_key: expected ["orgId", "repoId", "runId"], found ["repoId", "runId"]"#
    );
}
