//! The throwaway Citus cluster of `flakeguard_db::testing` (a coordinator and two workers), and
//! the crate on it. Skipped, saying so, where Citus is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flakeguard_db::OrgId;
use flakeguard_db::entity::fg_test_case;
use flakeguard_db::sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use flakeguard_db::testing::{APP_ROLE, CITUS_WORKERS, CitusDatabase};

async fn scalar(db: &impl ConnectionTrait, sql: &str) -> String {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT ({sql})::text AS v"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "v").unwrap()
}

#[tokio::test]
async fn a_test_cluster_has_a_coordinator_and_two_workers_with_citus_and_the_roles() {
    let Some(db) = CitusDatabase::new_or_skip("the test cluster")
        .await
        .unwrap()
    else {
        return;
    };
    let admin = db.connect().await.unwrap();
    let workers = scalar(
        &admin,
        "SELECT count(*) FROM pg_dist_node WHERE groupid > 0 AND isactive AND noderole = 'primary'",
    )
    .await;
    assert_eq!(workers, CITUS_WORKERS.to_string());
    assert_eq!(
        scalar(&admin, "SELECT count(*) FROM seaql_migrations").await,
        "9",
        "every migration step ran on the coordinator"
    );
    let app_url = db.app_url().await.unwrap();
    let urls = db.worker_urls();
    assert_eq!(urls.len(), CITUS_WORKERS);
    for url in urls {
        let worker = Database::connect(&url).await.unwrap();
        let version = scalar(
            &worker,
            "SELECT extversion FROM pg_extension WHERE extname = 'citus'",
        )
        .await;
        assert!(version.starts_with("13."), "{url}: citus {version}");
        let role = scalar(
            &worker,
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{APP_ROLE}'"),
        )
        .await;
        assert_eq!(role, "1", "{url} has the application role");
        worker.close().await.unwrap();
    }

    // Before `distribute` the tables are the coordinator's own, and the crate works on them
    // as on a single server, row-level security included.
    let app = Database::connect(flakeguard_db::connect_options(&app_url))
        .await
        .unwrap();
    let a = support::tenants::seed(&app, &OrgId::new("org-a").unwrap(), 1).await;
    let b = support::tenants::seed(&app, &OrgId::new("org-b").unwrap(), 2).await;
    let scope = flakeguard_db::TenantScope::new(app.clone(), a.org.clone());
    let cases = scope.find::<fg_test_case::Entity>().all().await.unwrap();
    assert!(!cases.is_empty());
    assert!(
        cases.iter().all(|c| c.org_id == a.org.as_str()),
        "{cases:?}"
    );
    assert!(
        scope
            .find_by_id::<fg_test_case::Entity, _>(b.key("FGTestCase").to_owned())
            .await
            .unwrap()
            .is_none(),
        "another tenant's row is not found"
    );
}
