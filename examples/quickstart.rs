//! Quickstart: two organizations, each with a repository, test cases, a workflow run and
//! occurrences, written and read back.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Without DATABASE_URL it starts a throwaway PostgreSQL from the machine's binaries (removed
//! when it exits). With DATABASE_URL=postgres://user:password@host/db it migrates that database
//! and writes its rows there, with fresh names so that it can run again.

use flakeguard_db::entity::{
    fg_occurrence, fg_repository, fg_test_case, fg_workflow_run, organization,
};
use flakeguard_db::sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};
use flakeguard_db::testing::TestDatabase;
use flakeguard_db::{Error, Result};

#[tokio::main]
async fn main() -> Result<()> {
    // Keep the throwaway database alive until the end of `main`.
    let (db, _throwaway) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => {
            println!("using DATABASE_URL");
            let db = flakeguard_db::connect(url.trim()).await?;
            flakeguard_db::migrate(&db).await?;
            (db, None)
        }
        _ => {
            println!("starting a throwaway PostgreSQL (set DATABASE_URL to use your own server)");
            let tmp = TestDatabase::new().await?;
            println!("  database: {}", tmp.url());
            (tmp.connect().await?, Some(tmp))
        }
    };
    println!("schema migrated");

    let suffix = flakeguard_db::entity::stamps::new_id();
    for name in ["Acme", "Globex"] {
        seed_organization(&db, name, &suffix).await?;
    }

    println!("\nreading back:");
    let orgs = organization::Entity::find()
        .filter(organization::Column::Slug.ends_with(format!("-{suffix}")))
        .order_by_asc(organization::Column::Name)
        .all(&db)
        .await
        .map_err(|e| Error::database("find organizations", e))?;
    for org in orgs {
        let failures = fg_occurrence::Entity::find()
            .filter(fg_occurrence::Column::OrgId.eq(&org.id))
            .filter(fg_occurrence::Column::Status.eq("failed"))
            .count(&db)
            .await
            .map_err(|e| Error::database("count occurrences", e))?;
        let cases = fg_test_case::Entity::find()
            .filter(fg_test_case::Column::OrgId.eq(&org.id))
            .order_by_asc(fg_test_case::Column::Name)
            .all(&db)
            .await
            .map_err(|e| Error::database("find test cases", e))?;
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        println!(
            "  {} ({}): test cases {:?}, {failures} failed occurrence(s)",
            org.name, org.id, names
        );
    }
    println!("\ndone");
    Ok(())
}

/// One organization with a repository, two test cases, a workflow run and an occurrence of
/// each test in that run.
async fn seed_organization(db: &DatabaseConnection, name: &str, suffix: &str) -> Result<()> {
    let org = organization::ActiveModel {
        name: Set(name.to_owned()),
        slug: Set(format!("{}-{suffix}", name.to_lowercase())),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(|e| Error::database("insert organization", e))?;
    println!("\norganization {} ({})", org.name, org.id);

    let repo = fg_repository::ActiveModel {
        org_id: Set(org.id.clone()),
        owner: Set(name.to_lowercase()),
        name: Set("web".to_owned()),
        installation_id: Set("inst-1".to_owned()),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(|e| Error::database("insert repository", e))?;
    println!("  repository {}/{} ({})", repo.owner, repo.name, repo.id);

    let run = fg_workflow_run::ActiveModel {
        org_id: Set(org.id.clone()),
        repo_id: Set(repo.id.clone()),
        run_id: Set("1001".to_owned()),
        status: Set("completed".to_owned()),
        conclusion: Set(Some("failure".to_owned())),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(|e| Error::database("insert workflow run", e))?;
    println!("  workflow run {} ({})", run.run_id, run.id);

    for (test, status) in [("adds", "passed"), ("divides", "failed")] {
        let case = fg_test_case::ActiveModel {
            org_id: Set(org.id.clone()),
            repo_id: Set(repo.id.clone()),
            suite: Set("unit".to_owned()),
            class_name: Set(Some("Math".to_owned())),
            name: Set(test.to_owned()),
            ..Default::default()
        }
        .insert(db)
        .await
        .map_err(|e| Error::database("insert test case", e))?;
        let occ = fg_occurrence::ActiveModel {
            org_id: Set(org.id.clone()),
            test_id: Set(case.id.clone()),
            run_id: Set(run.id.clone()),
            status: Set(status.to_owned()),
            duration_ms: Set(Some(12)),
            ..Default::default()
        }
        .insert(db)
        .await
        .map_err(|e| Error::database("insert occurrence", e))?;
        println!(
            "  test case Math.{test} ({}), occurrence {} {status}",
            case.id, occ.id
        );
    }
    Ok(())
}
