//! The query shapes of a scope beyond filters: projections and aggregates, left joins,
//! `exists` and `distinct`, streams, keyset pages, eager loading.
//!
//! Two organizations hold the same shape of data (B with one status A never has), and every
//! shape runs twice for A: on the application role (row-level security and the Rust lock) and
//! on the superuser, which bypasses row-level security (the Rust lock alone). Each must return
//! exactly A's rows on both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use flakeguard_db::entity::*;
use flakeguard_db::sea_orm::sea_query::{Expr, ExprTrait, Func};
use flakeguard_db::sea_orm::{ColumnTrait, FromQueryResult, Set};
use flakeguard_db::testing::TripCounter;
use flakeguard_db::{Error, TenantScope};
use futures_util::{StreamExt, TryStreamExt};
use support::tenants::{Tenant, World, expect_busy, one_connection, world};

/// Adds to `t`'s data a second run (A: `adds` passed, `divides` failed; B: `adds` skipped,
/// `divides` failed) and a test case `multiplies` without occurrences.
async fn more(w: &World, t: &Tenant, adds: &str) {
    let s = w.scope(t);
    let repo = t.key("FGRepository");
    let run = s
        .insert(fg_workflow_run::ActiveModel {
            repo_id: Set(repo.to_owned()),
            run_id: Set("run-2".into()),
            status: Set("completed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    for (case, status) in w.cases(t).await.iter().zip([adds, "failed"]) {
        s.insert(fg_occurrence::ActiveModel {
            test_id: Set(case.id.clone()),
            run_id: Set(run.id.clone()),
            status: Set(status.to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    s.insert(fg_test_case::ActiveModel {
        repo_id: Set(repo.to_owned()),
        suite: Set("unit".into()),
        class_name: Set(Some("Math".into())),
        name: Set("multiplies".into()),
        ..Default::default()
    })
    .await
    .unwrap();
}

async fn setup() -> World {
    let w = world().await;
    more(&w, &w.a, "passed").await;
    more(&w, &w.b, "skipped").await;
    w
}

/// `SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END)`.
fn failures() -> Expr {
    Func::sum(Expr::case(fg_occurrence::Column::Status.eq("failed"), 1).finally(0)).into()
}

#[derive(Debug, PartialEq, FromQueryResult)]
struct Rate {
    test_id: String,
    name: String,
    runs: i64,
    failures: i64,
}

#[tokio::test]
async fn projections_and_aggregates_read_into_structs_and_tuples() {
    let w = setup().await;
    let ids: BTreeMap<String, String> = w
        .cases(&w.a)
        .await
        .into_iter()
        .map(|c| (c.name, c.id))
        .collect();
    for (role, s) in w.both_roles(&w.a) {
        let rates = s
            .find::<fg_occurrence::Entity>()
            .inner_join::<fg_test_case::Entity>()
            .select_only()
            // The struct's fields name the columns: "testId" is read as `test_id`.
            .column_as(fg_occurrence::Column::TestId, "test_id")
            .column(fg_test_case::Column::Name)
            .column_as(fg_occurrence::Column::Id.count(), "runs")
            .expr_as(failures(), "failures")
            .group_by(fg_occurrence::Column::TestId)
            .group_by(fg_test_case::Column::Name)
            .order_by_asc(fg_test_case::Column::Name)
            .into_model::<Rate>()
            .all()
            .await
            .unwrap();
        let expected = [("adds", 2, 1), ("divides", 2, 2)].map(|(name, runs, failures)| Rate {
            test_id: ids[name].clone(),
            name: name.to_owned(),
            runs,
            failures,
        });
        assert_eq!(rates, expected, "{role}");

        // HAVING keeps the groups with two failures.
        let flaky: Vec<(String, i64)> = s
            .find::<fg_occurrence::Entity>()
            .inner_join::<fg_test_case::Entity>()
            .select_only()
            .column(fg_test_case::Column::Name)
            .expr_as(failures(), "failures")
            .group_by(fg_test_case::Column::Name)
            .having(Expr::expr(failures()).gte(2))
            .into_tuple()
            .all()
            .await
            .unwrap();
        assert_eq!(flaky, [("divides".to_owned(), 2)], "{role}");

        // A tuple, first row only; a count over the whole tenant.
        let first: Option<(String, i64)> = s
            .find::<fg_occurrence::Entity>()
            .select_only()
            .column(fg_occurrence::Column::Status)
            .column_as(fg_occurrence::Column::Id.count(), "n")
            .group_by(fg_occurrence::Column::Status)
            .order_by_asc(fg_occurrence::Column::Status)
            .into_tuple()
            .one()
            .await
            .unwrap();
        assert_eq!(first, Some(("failed".to_owned(), 3)), "{role}");
    }
}

#[tokio::test]
async fn a_left_join_keeps_rows_without_a_match_and_carries_the_predicate_in_on() {
    let w = setup().await;
    for (role, s) in w.both_roles(&w.a) {
        let per_case: Vec<(String, i64)> = s
            .find::<fg_test_case::Entity>()
            .left_join::<fg_occurrence::Entity>()
            .select_only()
            .column(fg_test_case::Column::Name)
            .column_as(fg_occurrence::Column::Id.count(), "n")
            .group_by(fg_test_case::Column::Name)
            .order_by_asc(fg_test_case::Column::Name)
            .into_tuple()
            .all()
            .await
            .unwrap();
        let expected = [("adds", 2), ("divides", 2), ("multiplies", 0)]
            .map(|(n, c)| (n.to_owned(), c))
            .to_vec();
        assert_eq!(per_case, expected, "{role}");
    }
    // The joined table's predicate is in its ON, so that a case without occurrences stays.
    let sql = w
        .scope(&w.a)
        .find::<fg_test_case::Entity>()
        .left_join::<fg_occurrence::Entity>()
        .statement()
        .unwrap()
        .sql;
    let on = sql
        .split(r#"LEFT JOIN "FGOccurrence" ON "#)
        .nth(1)
        .expect("a left join of FGOccurrence");
    let on = on.split(" WHERE ").next().unwrap();
    assert!(on.contains(r#""FGOccurrence"."orgId" = $"#), "{sql}");

    // A many-to-many left join: each cluster with the number of its test cases, the link
    // table's predicate in its own ON.
    for (role, s) in w.both_roles(&w.a) {
        let clusters: Vec<(String, i64)> = s
            .find::<fg_failure_cluster::Entity>()
            .left_join::<fg_test_case::Entity>()
            .select_only()
            .column(fg_failure_cluster::Column::Id)
            .column_as(fg_test_case::Column::Id.count(), "n")
            .group_by(fg_failure_cluster::Column::Id)
            .into_tuple()
            .all()
            .await
            .unwrap();
        assert_eq!(
            clusters,
            [(w.a.key("FGFailureCluster").to_owned(), 2)],
            "{role}"
        );
    }
}

#[tokio::test]
async fn exists_and_distinct_see_only_the_tenant() {
    let w = setup().await;
    let theirs = w.b.key("FGTestCase").to_owned();
    for (role, s) in w.both_roles(&w.a) {
        let found = s
            .find::<fg_test_case::Entity>()
            .filter(fg_test_case::Column::Name.eq("multiplies"))
            .exists()
            .await
            .unwrap();
        assert!(found, "{role}");
        let found = s
            .find::<fg_test_case::Entity>()
            .filter(fg_test_case::Column::Id.eq(theirs.clone()))
            .exists()
            .await
            .unwrap();
        assert!(!found, "{role}: B's test case");
        let statuses: Vec<String> = s
            .find::<fg_occurrence::Entity>()
            .select_only()
            .column(fg_occurrence::Column::Status)
            .distinct()
            .order_by_asc(fg_occurrence::Column::Status)
            .into_tuple()
            .all()
            .await
            .unwrap();
        // B's "skipped" never shows.
        assert_eq!(statuses, ["failed", "passed"], "{role}");
    }
}

#[tokio::test]
async fn a_stream_yields_every_row_of_the_tenant_and_nothing_else() {
    let w = setup().await;
    let mine: Vec<String> = w.a.rows["FGOccurrence"].clone();
    for (role, s) in w.both_roles(&w.a) {
        let rows: Vec<fg_occurrence::Model> = s
            .find::<fg_occurrence::Entity>()
            .order_by_asc(fg_occurrence::Column::CreatedAt)
            .stream()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(rows.len(), 4, "{role}");
        assert!(rows.iter().all(|r| r.org_id == w.a.org.as_str()), "{role}");
        for id in &mine {
            assert!(rows.iter().any(|r| &r.id == id), "{role}: {id} missing");
        }
        // A projection streams too.
        let names: Vec<(String,)> = s
            .find::<fg_test_case::Entity>()
            .select_only()
            .column(fg_test_case::Column::Name)
            .order_by_asc(fg_test_case::Column::Name)
            .into_tuple()
            .stream()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(names.len(), 3, "{role}");
    }
    // Inside a transaction, the stream runs on the transaction's connection.
    let n = w
        .scope(&w.a)
        .transaction(|tx| {
            Box::pin(async move {
                let n = tx.find::<fg_occurrence::Entity>().stream().count().await;
                let after = tx.count::<fg_test_case::Entity>(Expr::val(true)).await?;
                Ok::<_, Error>((n, after))
            })
        })
        .await
        .unwrap();
    assert_eq!(n, (4, 3));
}

#[tokio::test]
async fn a_stream_dropped_half_way_leaves_its_connection_without_a_tenant() {
    let w = setup().await;
    let pool = one_connection(&w.db.app_url().await.unwrap()).await;
    let s = TenantScope::new(pool.clone(), w.a.org.clone());
    let mut rows = s.find::<fg_occurrence::Entity>().stream();
    let first = rows.next().await.unwrap().unwrap();
    assert_eq!(first.org_id, w.a.org.as_str());
    drop(rows);
    // The only connection of either driver (a stream of its own runs on sqlx; the scope's
    // other transactions are pipelined), outside any scope: no tenant, so row-level security
    // shows nothing.
    let db = flakeguard_db::Db::new(pool.clone());
    for db in [db.clone(), db.without_pipelining()] {
        let row = flakeguard_db::testing::query_pooled(
            &db,
            r#"SELECT coalesce(current_setting('app.current_tenant_id', true), '') AS t,
                      (SELECT count(*) FROM "FGOccurrence") AS n"#,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(row.try_get::<String>("", "t").unwrap(), "");
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 0);
    }
    // And B's scope on it sees B's rows.
    let b = TenantScope::new(pool, w.b.org.clone());
    let theirs = b.find::<fg_occurrence::Entity>().all().await.unwrap();
    assert_eq!(theirs.len(), 4);
    assert!(theirs.iter().all(|r| r.org_id == w.b.org.as_str()));
}

#[tokio::test]
async fn keyset_pages_cover_the_tenant_in_order() {
    let w = setup().await;
    let mut all: Vec<String> = w.cases(&w.a).await.into_iter().map(|c| c.id).collect();
    all.sort();
    for (role, s) in w.both_roles(&w.a) {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let cursor = s
                .find::<fg_test_case::Entity>()
                .cursor_by(fg_test_case::Column::Id);
            let cursor = match &after {
                Some(id) => cursor.after(id.clone()),
                None => cursor,
            };
            let page = cursor.first(2).all().await.unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 2, "{role}");
            after = page.last().map(|c| c.id.clone());
            seen.extend(page.into_iter().map(|c| c.id));
        }
        assert_eq!(seen, all, "{role}");
        // Backwards: the last two before the last row.
        let before = s
            .find::<fg_test_case::Entity>()
            .cursor_by(fg_test_case::Column::Id)
            .before(all[2].clone())
            .last(2)
            .all()
            .await
            .unwrap();
        let before: Vec<String> = before.into_iter().map(|c| c.id).collect();
        assert_eq!(before, all[..2], "{role}");
        // B's rows are not a cursor's to reach: after B's smallest id, only A's rows.
        let theirs = s
            .find::<fg_test_case::Entity>()
            .cursor_by(fg_test_case::Column::Id)
            .after(String::new())
            .first(100)
            .all()
            .await
            .unwrap();
        assert_eq!(theirs.len(), 3, "{role}");
    }
}

#[tokio::test]
async fn eager_loading_fetches_related_rows_for_every_parent_at_once() {
    let w = setup().await;
    for (role, s) in w.both_roles(&w.a) {
        let cases = s
            .find::<fg_test_case::Entity>()
            .order_by_asc(fg_test_case::Column::Name)
            .all()
            .await
            .unwrap();
        // 1:N.
        let occurrences = s
            .find::<fg_occurrence::Entity>()
            .load_many(&cases)
            .await
            .unwrap();
        let lens: Vec<usize> = occurrences.iter().map(Vec::len).collect();
        assert_eq!(lens, [2, 2, 0], "{role}");
        for (case, occ) in cases.iter().zip(&occurrences) {
            assert!(occ.iter().all(|o| o.test_id == case.id), "{role}");
        }
        // Filtered: the failed ones only.
        let failed = s
            .find::<fg_occurrence::Entity>()
            .filter(fg_occurrence::Column::Status.eq("failed"))
            .load_many(&cases)
            .await
            .unwrap();
        let lens: Vec<usize> = failed.iter().map(Vec::len).collect();
        assert_eq!(lens, [1, 2, 0], "{role}");
        // N:1.
        let all_occ = s.find::<fg_occurrence::Entity>().all().await.unwrap();
        let owners = s
            .find::<fg_test_case::Entity>()
            .load_one(&all_occ)
            .await
            .unwrap();
        for (o, case) in all_occ.iter().zip(&owners) {
            assert_eq!(case.as_ref().map(|c| &c.id), Some(&o.test_id), "{role}");
        }
        // M:N through the link table.
        let clusters = s.find::<fg_failure_cluster::Entity>().all().await.unwrap();
        assert_eq!(clusters.len(), 1, "{role}");
        let members = s
            .find::<fg_test_case::Entity>()
            .load_many(&clusters)
            .await
            .unwrap();
        let mut names: Vec<&str> = members[0].iter().map(|c| c.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["adds", "divides"], "{role}");
    }
    // B's models as parents load nothing of B's: every statement carries A's predicate.
    let s = TenantScope::new(w.admin.clone(), w.a.org.clone());
    let theirs = TenantScope::new(w.admin.clone(), w.b.org.clone())
        .find::<fg_test_case::Entity>()
        .all()
        .await
        .unwrap();
    let loaded = s
        .find::<fg_occurrence::Entity>()
        .load_many(&theirs)
        .await
        .unwrap();
    assert!(loaded.iter().all(Vec::is_empty), "{loaded:?}");
}

#[tokio::test]
async fn eager_loading_takes_the_same_round_trips_for_one_parent_or_many() {
    let w = setup().await;
    let proxy = TripCounter::start(&w.db.app_url().await.unwrap())
        .await
        .unwrap();
    let s = TenantScope::new(one_connection(&proxy.url()).await, w.a.org.clone());
    let cases = s.find::<fg_test_case::Entity>().all().await.unwrap();
    let clusters = s.find::<fg_failure_cluster::Entity>().all().await.unwrap();
    // The round trips of one operation, the pool's release ping let through first.
    macro_rules! trips {
        ($op:expr) => {{
            tokio::time::sleep(Duration::from_millis(100)).await;
            let before = proxy.count();
            $op.await.unwrap();
            proxy.count() - before
        }};
    }
    let occ = || s.find::<fg_occurrence::Entity>();
    let members = || s.find::<fg_test_case::Entity>();
    // Prepared once on the connection, then counted.
    occ().load_many(&cases[..1]).await.unwrap();
    occ().load_many(&cases).await.unwrap();
    members().load_many(&clusters).await.unwrap();
    let one = trips!(occ().load_many(&cases[..1]));
    let all = trips!(occ().load_many(&cases));
    let mn = trips!(members().load_many(&clusters));
    assert_eq!(one, all, "trips for one parent and for three");
    assert!(all <= 2, "1:N in {all} round trips");
    assert!(mn <= 2, "M:N in {mn} round trips");
}

#[tokio::test]
async fn raw_sql_in_any_shape_is_refused_before_anything_is_sent() {
    let w = setup().await;
    let s = TenantScope::new(w.admin.clone(), w.a.org.clone());
    let refused = |what: &str, r: Result<(), Error>| match r {
        Err(Error::InvalidInput { reason, .. }) => {
            assert!(reason.contains("nothing was sent"), "{what}: {reason}")
        }
        other => panic!("{what}: {other:?}"),
    };
    let cust = || Expr::cust("(SELECT count(*) FROM \"FGOccurrence\")");
    refused(
        "column_as",
        s.find::<fg_test_case::Entity>()
            .select_only()
            .column_as(cust(), "n")
            .into_tuple::<i64>()
            .all()
            .await
            .map(drop),
    );
    refused(
        "expr_as",
        s.find::<fg_test_case::Entity>()
            .select_only()
            .expr_as(cust(), "n")
            .into_tuple::<i64>()
            .one()
            .await
            .map(drop),
    );
    refused(
        "group_by",
        s.find::<fg_test_case::Entity>()
            .select_only()
            .column(fg_test_case::Column::Name)
            .group_by(cust())
            .into_tuple::<String>()
            .all()
            .await
            .map(drop),
    );
    refused(
        "having",
        s.find::<fg_test_case::Entity>()
            .select_only()
            .column(fg_test_case::Column::Name)
            .group_by(fg_test_case::Column::Name)
            .having(Expr::cust("true"))
            .into_tuple::<String>()
            .all()
            .await
            .map(drop),
    );
    refused(
        "exists",
        s.find::<fg_test_case::Entity>()
            .filter(Expr::cust("true"))
            .exists()
            .await
            .map(drop),
    );
    refused(
        "stream",
        s.find::<fg_test_case::Entity>()
            .filter(Expr::cust("true"))
            .stream()
            .try_collect::<Vec<_>>()
            .await
            .map(drop),
    );
    refused(
        "cursor",
        s.find::<fg_test_case::Entity>()
            .filter(Expr::cust("true"))
            .cursor_by(fg_test_case::Column::Id)
            .first(1)
            .all()
            .await
            .map(drop),
    );
    let cases = s.find::<fg_test_case::Entity>().all().await.unwrap();
    refused(
        "load_many",
        s.find::<fg_occurrence::Entity>()
            .filter(Expr::cust("true"))
            .load_many(&cases)
            .await
            .map(drop),
    );
    // A subquery written by the caller over B's rows, as a projection, is refused by the parse.
    let sub = flakeguard_db::sea_orm::sea_query::Query::select()
        .expr(Func::count(Expr::col(fg_occurrence::Column::Id)))
        .from(fg_occurrence::Entity)
        .to_owned();
    refused(
        "a subquery in the projection",
        s.find::<fg_test_case::Entity>()
            .select_only()
            .expr_as(Expr::SubQuery(None, Box::new(sub.into())), "n")
            .into_tuple::<i64>()
            .all()
            .await
            .map(drop),
    );
}

#[tokio::test]
async fn inside_a_transaction_an_open_stream_refuses_the_transactions_other_statements() {
    let w = setup().await;
    let done = tokio::time::timeout(
        Duration::from_secs(20),
        w.scope(&w.a).transaction(|tx| {
            Box::pin(async move {
                let mut rows = tx.find::<fg_occurrence::Entity>().stream();
                rows.next().await.unwrap()?;
                // The stream holds the connection: waiting for it here would wait forever.
                let during = tx.find::<fg_test_case::Entity>().all().await;
                let second = tx
                    .find::<fg_test_case::Entity>()
                    .stream()
                    .try_collect::<Vec<_>>()
                    .await;
                let nested = tx
                    .transaction(|inner| {
                        Box::pin(async move { inner.find::<fg_job::Entity>().count().await })
                    })
                    .await;
                drop(rows);
                let after = tx.find::<fg_test_case::Entity>().all().await?;
                Ok::<_, Error>((
                    during.map(drop),
                    second.map(drop),
                    nested.map(drop),
                    after.len(),
                ))
            })
        }),
    )
    .await
    .expect("a statement waited for the stream")
    .unwrap();
    let (during, second, nested, after) = done;
    expect_busy(
        [
            ("a statement while a stream is open", during),
            ("a second stream while a stream is open", second),
            ("a nested transaction while a stream is open", nested),
        ],
        "stream",
    );
    assert_eq!(after, 3);
}
