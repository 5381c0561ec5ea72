//! The tenant reaches PostgreSQL per transaction, never per session: a connection goes back to
//! the pool carrying no tenant, whatever happened in the transaction. Every case runs on both
//! drivers, pipelined and sqlx, each on a pool of one connection, and checks the connection
//! that driver's transactions use ([`testing::pooled_tenant`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flakeguard_db::entity::{fg_repository, organization};
use flakeguard_db::sea_orm::{Database, DatabaseConnection, DbBackend, Set, Statement};
use flakeguard_db::testing::{self, TestDatabase};
use flakeguard_db::{Db, Error, OrgId, TenantScope};

/// A pool of exactly one connection as the application role, so that every check sees the
/// connection the scope just used.
async fn one_connection(db: &TestDatabase) -> DatabaseConnection {
    let mut opts = flakeguard_db::connect_options(&db.app_url().await.unwrap());
    opts.max_connections(1).min_connections(1);
    Database::connect(opts).await.unwrap()
}

/// The tenant setting of the pool's connection, outside any scope (`None` when unset).
async fn pooled_tenant(db: &Db) -> Option<String> {
    testing::pooled_tenant(db).await.unwrap()
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

/// A database, a handle on a pool of one connection (pipelined or not), and acme's scope on
/// it, with acme created.
async fn setup(pipelined: bool) -> (TestDatabase, Db, TenantScope) {
    let db = TestDatabase::new().await.unwrap();
    let pool = Db::new(one_connection(&db).await);
    let pool = if pipelined {
        pool
    } else {
        pool.without_pipelining()
    };
    assert_eq!(pool.is_pipelined(), pipelined);
    let scope = pool.scope(OrgId::new("acme").unwrap());
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

const DRIVERS: [bool; 2] = [true, false];

#[tokio::test]
async fn inside_a_scope_the_tenant_is_set_and_after_it_the_connection_has_none() {
    for pipelined in DRIVERS {
        let (_db, pool, scope) = setup(pipelined).await;
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
}

#[tokio::test]
async fn connection_carries_no_tenant_after_a_failed_statement() {
    for pipelined in DRIVERS {
        let (_db, pool, scope) = setup(pipelined).await;
        scope.insert(repo("web")).await.unwrap();
        // The same repository again breaks its unique constraint.
        let err = scope.insert(repo("web")).await.unwrap_err();
        assert!(err.is_unique_violation(), "{err}");
        assert_eq!(pooled_tenant(&pool).await, None);
        assert_eq!(repositories(&scope).await, 1);
    }
}

#[tokio::test]
async fn connection_carries_no_tenant_after_a_transaction_fails() {
    for pipelined in DRIVERS {
        let (_db, pool, scope) = setup(pipelined).await;
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
}

#[tokio::test]
async fn connection_carries_no_tenant_after_a_future_is_dropped_mid_transaction() {
    for pipelined in DRIVERS {
        let (_db, pool, scope) = setup(pipelined).await;
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
        let other = pool.scope(OrgId::new("globex").unwrap());
        assert_eq!(repositories(&other).await, 0);
        assert_eq!(repositories(&scope).await, 1);
        assert_eq!(pooled_tenant(&pool).await, None);
    }
}

#[tokio::test]
async fn a_failing_nested_transaction_rolls_back_to_its_savepoint_only() {
    for pipelined in DRIVERS {
        let (_db, pool, scope) = setup(pipelined).await;
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
}

#[tokio::test]
async fn a_scope_kept_beyond_its_transaction_rolls_it_back() {
    for pipelined in DRIVERS {
        let (_db, _pool, scope) = setup(pipelined).await;
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
}

/// A future dropped while a statement of its transaction is on its way: the transaction's
/// first (which carries the BEGIN on the pipelined driver), or one after an insert.
#[tokio::test]
async fn connection_carries_no_tenant_after_a_future_is_dropped_while_its_statement_runs() {
    for pipelined in DRIVERS {
        for insert_first in [false, true] {
            let (_db, pool, scope) = setup(pipelined).await;
            scope.insert(repo("kept")).await.unwrap();
            let work = scope.transaction(|tx| {
                Box::pin(async move {
                    if insert_first {
                        tx.insert(repo("half-done")).await?;
                    }
                    // Still running when the future is dropped: its answer never arrives.
                    tx.query_raw(Statement::from_string(
                        DbBackend::Postgres,
                        "SELECT 1 AS one FROM pg_sleep(3)",
                    ))
                    .await?;
                    tx.insert(repo("never")).await?;
                    Ok::<_, Error>(())
                })
            });
            let dropped = tokio::time::timeout(Duration::from_millis(500), work).await;
            assert!(
                dropped.is_err(),
                "the transaction finished instead of waiting"
            );
            let case = format!("pipelined: {pipelined}, insert first: {insert_first}");
            assert_eq!(pooled_tenant(&pool).await, None, "{case}");
            assert_eq!(
                repositories(&scope).await,
                1,
                "only the committed row is there ({case})"
            );
            let other = pool.scope(OrgId::new("globex").unwrap());
            assert_eq!(repositories(&other).await, 0, "{case}");
        }
    }
}
