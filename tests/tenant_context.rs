//! The tenant reaches PostgreSQL per transaction, never per session: a connection goes back to
//! the pool carrying no tenant, whatever happened in the transaction.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flakeguard_db::entity::{fg_repository, organization};
use flakeguard_db::sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, Set, Statement,
};
use flakeguard_db::testing::TestDatabase;
use flakeguard_db::{Error, OrgId, TenantScope};

/// A pool of exactly one connection as the application role, so that every check sees the
/// connection the scope just used.
async fn one_connection(db: &TestDatabase) -> DatabaseConnection {
    let mut opts = flakeguard_db::connect_options(&db.app_url().await.unwrap());
    opts.max_connections(1).min_connections(1);
    Database::connect(opts).await.unwrap()
}

/// The tenant setting of the pool's connection, outside any scope ("" or NULL when unset).
async fn pooled_tenant(db: &DatabaseConnection) -> Option<String> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_setting('app.current_tenant_id', true) AS t",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<Option<String>>("", "t")
        .unwrap()
        .filter(|t| !t.is_empty())
}

async fn repositories(scope: &TenantScope) -> u64 {
    scope.find::<fg_repository::Entity>().count().await.unwrap()
}

fn repo(name: &str) -> fg_repository::ActiveModel {
    fg_repository::ActiveModel {
        owner: Set("acme".into()),
        name: Set(name.into()),
        installation_id: Set("inst".into()),
        ..Default::default()
    }
}

async fn setup() -> (TestDatabase, DatabaseConnection, TenantScope) {
    let db = TestDatabase::new().await.unwrap();
    let pool = one_connection(&db).await;
    let scope = TenantScope::new(pool.clone(), OrgId::new("acme").unwrap());
    scope
        .insert(organization::ActiveModel {
            name: Set("Acme".into()),
            slug: Set("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    (db, pool, scope)
}

#[tokio::test]
async fn inside_a_scope_the_tenant_is_set_and_after_it_the_connection_has_none() {
    let (_db, pool, scope) = setup().await;
    assert_eq!(pooled_tenant(&pool).await, None, "before any scope");
    let inside = scope
        .query_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_setting('app.current_tenant_id', true) AS t",
        ))
        .await
        .unwrap();
    assert_eq!(inside[0].try_get::<String>("", "t").unwrap(), "acme");
    scope.insert(repo("web")).await.unwrap();
    assert_eq!(pooled_tenant(&pool).await, None, "after a committed scope");
}

#[tokio::test]
async fn connection_carries_no_tenant_after_a_failed_statement() {
    let (_db, pool, scope) = setup().await;
    scope.insert(repo("web")).await.unwrap();
    // The same repository again breaks its unique constraint.
    let err = scope.insert(repo("web")).await.unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    assert_eq!(pooled_tenant(&pool).await, None);
    assert_eq!(repositories(&scope).await, 1);
}

#[tokio::test]
async fn connection_carries_no_tenant_after_a_transaction_fails() {
    let (_db, pool, scope) = setup().await;
    let result: Result<(), Error> = scope
        .transaction(|tx| {
            Box::pin(async move {
                tx.insert(repo("one")).await?;
                tx.insert(repo("one")).await?;
                Ok(())
            })
        })
        .await;
    assert!(result.unwrap_err().is_unique_violation());
    assert_eq!(pooled_tenant(&pool).await, None);
    assert_eq!(
        repositories(&scope).await,
        0,
        "the first insert was rolled back too"
    );
}

#[tokio::test]
async fn connection_carries_no_tenant_after_a_future_is_dropped_mid_transaction() {
    let (_db, pool, scope) = setup().await;
    scope.insert(repo("kept")).await.unwrap();
    let inserted = std::sync::Arc::new(tokio::sync::Notify::new());
    let signal = std::sync::Arc::clone(&inserted);
    let work = scope.transaction(|tx| {
        Box::pin(async move {
            tx.insert(repo("half-done")).await?;
            signal.notify_one();
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, Error>(())
        })
    });
    // The future is dropped while its transaction is open, after its insert, holding the only
    // connection.
    tokio::select! {
        _ = work => panic!("the transaction finished instead of waiting"),
        _ = inserted.notified() => {}
    }
    assert_eq!(pooled_tenant(&pool).await, None);
    assert_eq!(
        repositories(&scope).await,
        1,
        "only the committed row is there: the dropped transaction's insert is gone"
    );
    // And the connection works normally for the next tenant, who sees none of acme's rows.
    let other = TenantScope::new(pool.clone(), OrgId::new("globex").unwrap());
    assert_eq!(repositories(&other).await, 0);
    assert_eq!(repositories(&scope).await, 1);
    assert_eq!(pooled_tenant(&pool).await, None);
}

#[tokio::test]
async fn a_failing_nested_transaction_rolls_back_to_its_savepoint_only() {
    let (_db, pool, scope) = setup().await;
    scope
        .transaction(|tx| {
            Box::pin(async move {
                tx.insert(repo("kept")).await?;
                let inner: Result<(), Error> = tx
                    .transaction(|inner| {
                        Box::pin(async move {
                            inner.insert(repo("undone")).await?;
                            inner.insert(repo("kept")).await?; // duplicate: fails
                            Ok(())
                        })
                    })
                    .await;
                assert!(inner.unwrap_err().is_unique_violation());
                tx.insert(repo("after")).await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap();
    let mut names: Vec<String> = scope
        .find::<fg_repository::Entity>()
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    names.sort();
    assert_eq!(names, ["after", "kept"]);
    assert_eq!(pooled_tenant(&pool).await, None);
}

#[tokio::test]
async fn a_scope_kept_beyond_its_transaction_rolls_it_back() {
    let (_db, _pool, scope) = setup().await;
    let leaked = std::sync::Arc::new(std::sync::Mutex::new(None));
    let keep = leaked.clone();
    let result: Result<(), Error> = scope
        .transaction(move |tx| {
            Box::pin(async move {
                tx.insert(repo("escaped")).await?;
                *keep.lock().unwrap() = Some(tx.clone());
                Ok(())
            })
        })
        .await;
    assert!(
        matches!(result, Err(Error::TransactionInUse { .. })),
        "{result:?}"
    );
    leaked.lock().unwrap().take();
    assert_eq!(repositories(&scope).await, 0);
}
