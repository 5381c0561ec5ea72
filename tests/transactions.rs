//! What an `Ok` from `TenantScope::transaction` promises: everything the closure did without an
//! error is stored. A statement the database refused aborts the transaction; a closure that
//! ignores the error cannot turn that into success. A scope clone kept past its transaction
//! fails, and holds no connection. All as the application role (row-level security applies).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flakeguard_db::entity::*;
use flakeguard_db::sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseConnection, DbBackend, Set, Statement,
};
use flakeguard_db::{Error, Operation, Rejection, TenantScope};
use support::tenants::{expect_busy, world};

fn case(repo: &str, id: &str, name: &str) -> fg_test_case::ActiveModel {
    fg_test_case::ActiveModel {
        id: Set(id.to_owned()),
        repo_id: Set(repo.to_owned()),
        suite: Set("unit".into()),
        name: Set(name.to_owned()),
        ..Default::default()
    }
}

/// How many test cases with `id` exist, as the superuser sees them.
async fn stored(admin: &DatabaseConnection, ids: &[&str]) -> i64 {
    let row = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            r#"SELECT count(*) AS n FROM "FGTestCase" WHERE id = ANY($1)"#,
            [ids.iter().map(|s| s.to_string()).collect::<Vec<_>>().into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

#[tokio::test]
async fn a_transaction_whose_closure_ignored_a_refused_statement_is_not_reported_as_stored() {
    let w = world().await;
    let s = w.scope(&w.a);
    let repo = w.a.key("FGRepository").to_owned();
    let result = s
        .transaction(|tx| {
            Box::pin(async move {
                tx.insert(case(&repo, "tx-first", "first")).await?;
                // The same primary key again: the database refuses it, and the closure looks away.
                let dup = tx.insert(case(&repo, "tx-first", "again")).await;
                assert_eq!(
                    dup.as_ref().err().and_then(Error::rejection),
                    Some(Rejection::Duplicate),
                    "{dup:?}"
                );
                Ok::<_, Error>("done")
            })
        })
        .await;
    match result {
        Err(Error::TransactionAborted { context, failed }) => {
            assert_eq!(context.operation, Operation::Transaction);
            assert_eq!(failed.operation, Operation::Insert);
            assert_eq!(failed.table, Some("FGTestCase"));
        }
        other => panic!("expected TransactionAborted, got {other:?}"),
    }
    assert_eq!(
        stored(&w.admin, &["tx-first"]).await,
        0,
        "nothing was stored"
    );

    // The pooled connection carries nothing of the aborted transaction.
    assert!(
        s.find_by_id::<fg_test_case::Entity, _>("tx-first")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_refused_statement_in_a_nested_transaction_leaves_the_rest_to_commit() {
    let w = world().await;
    let s = w.scope(&w.a);
    let repo = w.a.key("FGRepository").to_owned();
    s.transaction(|tx| {
        Box::pin(async move {
            tx.insert(case(&repo, "nest-1", "one")).await?;
            // Recovered: the statement that may fail runs under a savepoint of its own.
            let again = repo.clone();
            let dup = tx
                .transaction(|inner| {
                    Box::pin(async move { inner.insert(case(&again, "nest-1", "dup")).await })
                })
                .await;
            assert_eq!(
                dup.err().and_then(|e| e.rejection()),
                Some(Rejection::Duplicate)
            );
            // So does insert_many: a failed batch takes its own savepoint with it.
            let batch = tx
                .insert_many([case(&repo, "nest-2", "two"), case(&repo, "nest-1", "dup")])
                .await;
            assert!(batch.is_err(), "{batch:?}");
            tx.insert(case(&repo, "nest-3", "three")).await?;
            Ok::<_, Error>(())
        })
    })
    .await
    .unwrap();
    assert_eq!(stored(&w.admin, &["nest-1", "nest-3"]).await, 2);
    assert_eq!(
        stored(&w.admin, &["nest-2"]).await,
        0,
        "the failed batch left nothing"
    );
}

#[tokio::test]
async fn a_nested_transaction_that_ignored_its_error_is_rolled_back_alone() {
    let w = world().await;
    let s = w.scope(&w.a);
    let repo = w.a.key("FGRepository").to_owned();
    s.transaction(|tx| {
        Box::pin(async move {
            tx.insert(case(&repo, "outer-1", "one")).await?;
            let again = repo.clone();
            let nested = tx
                .transaction(|inner| {
                    Box::pin(async move {
                        inner.insert(case(&again, "inner-1", "kept?")).await?;
                        let _ = inner.insert(case(&again, "outer-1", "dup")).await;
                        Ok::<_, Error>(())
                    })
                })
                .await;
            assert!(
                matches!(nested, Err(Error::TransactionAborted { .. })),
                "{nested:?}"
            );
            Ok::<_, Error>(())
        })
    })
    .await
    .unwrap();
    assert_eq!(stored(&w.admin, &["outer-1"]).await, 1);
    assert_eq!(stored(&w.admin, &["inner-1"]).await, 0);
}

#[tokio::test]
async fn a_scope_clone_kept_past_its_transaction_fails_and_holds_no_connection() {
    let w = world().await;
    // One connection: a clone that kept it would starve every other operation.
    let mut opts = flakeguard_db::connect_options(&w.db.app_url().await.unwrap());
    opts.max_connections(1)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3));
    let pool = Database::connect(opts).await.unwrap();
    let s = TenantScope::new(pool.clone(), w.a.org.clone());
    let repo = w.a.key("FGRepository").to_owned();

    let kept: Arc<Mutex<Option<TenantScope>>> = Arc::default();
    let keep = Arc::clone(&kept);
    let result = s
        .transaction(|tx| {
            Box::pin(async move {
                *keep.lock().unwrap() = Some(tx.clone());
                Ok::<_, Error>(())
            })
        })
        .await;
    assert!(
        matches!(result, Err(Error::TransactionInUse { .. })),
        "{result:?}"
    );
    let clone = kept.lock().unwrap().take().unwrap();
    assert!(clone.in_transaction());

    // Every use of the clone now fails, before anything is sent.
    let write = clone.insert(case(&repo, "late", "late")).await;
    assert!(
        matches!(&write, Err(Error::TransactionEnded { context }) if context.table == Some("FGTestCase")),
        "{write:?}"
    );
    let read = clone.find::<fg_test_case::Entity>().count().await;
    assert!(
        matches!(read, Err(Error::TransactionEnded { .. })),
        "{read:?}"
    );
    let nested = clone
        .transaction(|_| Box::pin(async { Ok::<_, Error>(()) }))
        .await;
    assert!(
        matches!(nested, Err(Error::TransactionEnded { .. })),
        "{nested:?}"
    );

    // And the pool's only connection is free again, while the clone is still alive.
    let other = TenantScope::new(pool.clone(), w.a.org.clone());
    let n = tokio::time::timeout(
        Duration::from_secs(10),
        other.find::<fg_test_case::Entity>().count(),
    )
    .await
    .expect("the pool's connection was not returned")
    .unwrap();
    assert_eq!(n, 2);
    assert_eq!(stored(&w.admin, &["late"]).await, 0);
    drop(clone);
}

#[tokio::test]
async fn clones_used_and_dropped_inside_the_transaction_commit_with_it() {
    let w = world().await;
    let s = w.scope(&w.a);
    let repo = w.a.key("FGRepository").to_owned();
    s.transaction(|tx| {
        Box::pin(async move {
            let a = tx.clone();
            let b = tx.clone();
            let (x, y) = tokio::join!(
                a.insert(case(&repo, "par-1", "one")),
                b.insert(case(&repo, "par-2", "two"))
            );
            x?;
            y?;
            Ok::<_, Error>(())
        })
    })
    .await
    .unwrap();
    assert_eq!(stored(&w.admin, &["par-1", "par-2"]).await, 2);
}

#[tokio::test]
async fn read_only_reads_one_snapshot_and_refuses_writes() {
    let w = world().await;
    let s = w.scope(&w.a);
    let repo = w.a.key("FGRepository").to_owned();
    // Both reads see the tenant's rows; a write made meanwhile by another transaction is not
    // seen by the second read (one snapshot).
    let other = w.scope(&w.a);
    let (before, after) = s
        .read_only(|tx| {
            let (other, repo) = (other.clone(), repo.clone());
            Box::pin(async move {
                let before = tx.find::<fg_test_case::Entity>().count().await?;
                other.insert(case(&repo, "ro-1", "concurrent")).await?;
                let after = tx.find::<fg_test_case::Entity>().count().await?;
                Ok::<_, Error>((before, after))
            })
        })
        .await
        .unwrap();
    assert_eq!(before, 2);
    assert_eq!(after, 2, "the second read sees the first one's snapshot");
    assert_eq!(stored(&w.admin, &["ro-1"]).await, 1);

    // A write inside is refused by PostgreSQL, and nothing is stored.
    let refused = s
        .read_only(|tx| {
            let repo = repo.clone();
            Box::pin(async move { tx.insert(case(&repo, "ro-2", "refused")).await })
        })
        .await;
    let err = refused.expect_err("a write in a read-only transaction");
    assert_eq!(err.sql_state(), Some("25006"), "{err:?}");
    assert_eq!(stored(&w.admin, &["ro-2"]).await, 0);

    // Inside a transaction it is that transaction: it sees the transaction's own write.
    let seen = s
        .transaction(|tx| {
            let repo = repo.clone();
            Box::pin(async move {
                tx.insert(case(&repo, "ro-3", "inside")).await?;
                tx.read_only(|inner| {
                    Box::pin(async move {
                        inner
                            .count::<fg_test_case::Entity>(fg_test_case::Column::Id.eq("ro-3"))
                            .await
                    })
                })
                .await
            })
        })
        .await
        .unwrap();
    assert_eq!(seen, 1);
    assert_eq!(stored(&w.admin, &["ro-3"]).await, 1);
}

/// A statement through the outer scope while a nested transaction is open would run inside
/// that savepoint, and vanish with it if the nested transaction rolled back, while the outer
/// caller saw it succeed. So it is refused, and so is a second nested transaction at the same
/// time; nothing of the refused statements is sent.
#[tokio::test]
async fn the_outer_scope_is_refused_while_a_nested_transaction_is_open() {
    let w = world().await;
    let s = w.scope(&w.a);
    let repo = w.a.key("FGRepository").to_owned();
    let (outer, second) = s
        .transaction(|tx| {
            let repo = repo.clone();
            Box::pin(async move {
                let (nested, outer, second) = tokio::join!(
                    tx.transaction(|inner| {
                        let repo = repo.clone();
                        Box::pin(async move {
                            inner.insert(case(&repo, "nest-1", "inner")).await?;
                            // Let the outer statements try while this savepoint is open.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Err::<(), Box<dyn std::error::Error + Send + Sync>>(
                                "roll this savepoint back".into(),
                            )
                        })
                    }),
                    async {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        tx.insert(case(&repo, "nest-2", "outer")).await
                    },
                    async {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        tx.transaction(|other| {
                            let repo = repo.clone();
                            Box::pin(async move { other.insert(case(&repo, "nest-3", "x")).await })
                        })
                        .await
                    },
                );
                assert!(nested.is_err());
                // After the nested transaction, the outer scope works again.
                tx.insert(case(&repo, "nest-4", "after")).await?;
                Ok::<_, Error>((outer.map(drop), second.map(drop)))
            })
        })
        .await
        .unwrap();
    expect_busy(
        [
            ("outer statement", outer),
            ("second nested transaction", second),
        ],
        "nested transaction",
    );
    assert_eq!(stored(&w.admin, &["nest-1", "nest-2", "nest-3"]).await, 0);
    assert_eq!(stored(&w.admin, &["nest-4"]).await, 1);
}
