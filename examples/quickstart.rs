//! Quickstart: two organizations, each with a repository, test cases, a workflow run and
//! occurrences, written and read back through `TenantScope`; then organization A tries to read
//! and write organization B's data and is refused.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Without DATABASE_URL it starts a throwaway PostgreSQL from the machine's binaries (removed
//! when it exits) and connects as a role subject to row-level security. With
//! DATABASE_URL=postgres://user:password@host/db it migrates that database and writes its rows
//! there, in two new organizations, so that it can run again.

use flakeguard_db::entity::{
    fg_occurrence, fg_repository, fg_test_case, fg_workflow_run, organization,
};
use flakeguard_db::sea_orm::{ColumnTrait, Set};
use flakeguard_db::testing::{expect_nothing, expect_refused};
use flakeguard_db::{OrgId, Result, TenantScope};

/// Exits non-zero on any error, and on any isolation breach ([`flakeguard_db::testing::Breach`]).
#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // `_throwaway` keeps the throwaway database alive until the end of `main`.
    let (db, _throwaway) = flakeguard_db::testing::connect_example().await?;
    run(&db).await
}

/// The quickstart on `db`, a handle for a migrated database (tests/citus.rs runs it on a Citus
/// cluster, as the application role).
pub async fn run(db: &flakeguard_db::Db) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let acme = db.scope(OrgId::generate());
    let globex = db.scope(OrgId::generate());
    let acme_data = seed(&acme, "Acme").await?;
    let globex_data = seed(&globex, "Globex").await?;

    println!("\nreading back, each through its own scope:");
    for (scope, _) in [(&acme, &acme_data), (&globex, &globex_data)] {
        let org = scope.organization().await?;
        let cases = scope
            .find::<fg_test_case::Entity>()
            .order_by_asc(fg_test_case::Column::Name)
            .all()
            .await?;
        let failed = scope
            .count::<fg_occurrence::Entity>(fg_occurrence::Column::Status.eq("failed"))
            .await?;
        let occurrences = scope.find::<fg_occurrence::Entity>().count().await?;
        println!(
            "  {}: test cases {:?}, {occurrences} occurrences, {failed} failed",
            org.map(|o| o.name).unwrap_or_default(),
            cases.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        );
    }

    println!("\nAcme tries to reach Globex's data:");
    let by_id = acme
        .find_by_id::<fg_test_case::Entity, _>(globex_data.test_case.clone())
        .await?;
    expect_nothing("find Globex's test case by id", &by_id, by_id.is_none())?;
    let by_filter = acme
        .find::<fg_occurrence::Entity>()
        .filter(fg_occurrence::Column::OrgId.eq(globex.org_id().as_str()))
        .all()
        .await?;
    expect_nothing(
        "occurrences filtered on Globex's orgId",
        by_filter.len(),
        by_filter.is_empty(),
    )?;
    let write = acme
        .insert(fg_occurrence::ActiveModel {
            test_id: Set(globex_data.test_case.clone()),
            run_id: Set(acme_data.run.clone()),
            status: Set("failed".to_owned()),
            ..Default::default()
        })
        .await;
    expect_refused("record an occurrence of Globex's test", write)?;
    let named = acme
        .insert(fg_repository::ActiveModel {
            org_id: Set(globex.org_id().to_string()),
            owner: Set("globex".to_owned()),
            name: Set("stolen".to_owned()),
            installation_id: Set("inst-1".to_owned()),
            ..Default::default()
        })
        .await;
    expect_refused("create a repository in Globex's name", named)?;
    println!("\ndone");
    Ok(())
}

/// Ids worth keeping from an organization's data.
struct Seeded {
    test_case: String,
    run: String,
}

/// The organization itself, a repository, two test cases, a workflow run and an occurrence of
/// each test in that run; "orgId" is filled in by the scope.
async fn seed(scope: &TenantScope, name: &str) -> Result<Seeded> {
    let org = scope
        .insert(organization::ActiveModel {
            name: Set(name.to_owned()),
            slug: Set(format!("{}-{}", name.to_lowercase(), scope.org_id())),
            ..Default::default()
        })
        .await?;
    println!("\norganization {} ({})", org.name, org.id);
    let repo = scope
        .insert(fg_repository::ActiveModel {
            owner: Set(name.to_lowercase()),
            name: Set("web".to_owned()),
            installation_id: Set("inst-1".to_owned()),
            ..Default::default()
        })
        .await?;
    println!("  repository {}/{} ({})", repo.owner, repo.name, repo.id);
    let run = scope
        .insert(fg_workflow_run::ActiveModel {
            repo_id: Set(repo.id.clone()),
            run_id: Set("1001".to_owned()),
            status: Set("completed".to_owned()),
            conclusion: Set(Some("failure".to_owned())),
            ..Default::default()
        })
        .await?;
    println!("  workflow run {} ({})", run.run_id, run.id);
    let mut last_case = String::new();
    for (test, status) in [("adds", "passed"), ("divides", "failed")] {
        let case = scope
            .insert(fg_test_case::ActiveModel {
                repo_id: Set(repo.id.clone()),
                suite: Set("unit".to_owned()),
                class_name: Set(Some("Math".to_owned())),
                name: Set(test.to_owned()),
                ..Default::default()
            })
            .await?;
        let occ = scope
            .insert(fg_occurrence::ActiveModel {
                test_id: Set(case.id.clone()),
                run_id: Set(run.id.clone()),
                status: Set(status.to_owned()),
                duration_ms: Set(Some(12)),
                ..Default::default()
            })
            .await?;
        println!(
            "  test case Math.{test} ({}), occurrence {} {status}",
            case.id, occ.id
        );
        last_case = case.id;
    }
    Ok(Seeded {
        test_case: last_case,
        run: run.id,
    })
}
