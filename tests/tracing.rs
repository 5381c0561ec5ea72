//! The tracing spans of scoped operations: one `flakeguard.operation` span per operation, with
//! tenant, table, operation, rows and outcome, `flakeguard.begin` and `flakeguard.commit`
//! beneath, and never a value of a row in any field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flakeguard_db::entity::*;
use flakeguard_db::sea_orm::Set;
use flakeguard_db::{Error, TenantScope};
use support::spans::{Capture, Closed};
use support::tenants::world;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test]
async fn every_scoped_operation_runs_in_a_span_with_counts_and_no_row_contents() {
    let w = world().await;
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = w.scope(&w.a);
    let secret = "a test name that must never be traced";
    let repo = w.a.key("FGRepository").to_owned();
    let stored = s
        .insert(fg_test_case::ActiveModel {
            repo_id: Set(repo.clone()),
            suite: Set("unit".into()),
            name: Set(secret.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let all = s.find::<fg_test_case::Entity>().all().await.unwrap();
    let missing = TenantScope::new(w.app.clone(), w.b.org.clone())
        .delete::<fg_test_case::Entity, _>(stored.id.clone())
        .await;
    assert!(matches!(missing, Err(Error::NotFound { .. })));
    s.transaction(|tx| {
        Box::pin(async move {
            tx.find::<fg_test_case::Entity>().count().await?;
            Ok::<_, Error>(())
        })
    })
    .await
    .unwrap();
    drop(_guard);

    let spans: Vec<Closed> = capture
        .closed()
        .into_iter()
        .filter(|c| c.target.starts_with("flakeguard_db"))
        .collect();
    let ops: Vec<&Closed> = spans
        .iter()
        .filter(|c| c.name == "flakeguard.operation")
        .collect();
    let field = |c: &Closed, k: &str| c.fields.get(k).cloned().unwrap_or_default();
    let summary: Vec<[String; 5]> = ops
        .iter()
        .map(|c| ["tenant", "table", "operation", "rows", "outcome"].map(|k| field(c, k)))
        .collect();
    let row = |t: &str, op: &str, rows: &str, outcome: &str| {
        [t, "FGTestCase", op, rows, outcome].map(String::from)
    };
    let n = all.len().to_string();
    assert_eq!(
        summary,
        vec![
            row("org-a", "insert", "1", "ok"),
            row("org-a", "find", &n, "ok"),
            row("org-b", "delete", "", "not_found"),
            row("org-a", "count", &n, "ok"),
        ],
        "{spans:#?}"
    );
    // The last operation ran inside the transaction's span.
    assert_eq!(ops[3].parents, ["flakeguard.transaction"]);
    let tx = spans
        .iter()
        .find(|c| c.name == "flakeguard.transaction")
        .expect("a transaction span");
    assert_eq!(field(tx, "outcome"), "ok");
    // Begin and commit spans beneath the operations and the transaction.
    let begins = spans
        .iter()
        .filter(|c| c.name == "flakeguard.begin")
        .count();
    let commits: Vec<&Closed> = spans
        .iter()
        .filter(|c| c.name == "flakeguard.commit")
        .collect();
    assert_eq!(begins, 4, "one per transaction opened: {spans:#?}");
    assert_eq!(
        commits.len(),
        2,
        "the insert and the transaction: {spans:#?}"
    );
    assert!(commits.iter().all(|c| !c.parents.is_empty()));
    // Nothing a row holds appears in any field.
    for c in &spans {
        for (k, v) in &c.fields {
            assert!(
                !v.contains(secret),
                "{}.{k} carries row contents: {v}",
                c.name
            );
            assert!(
                !v.contains(&stored.id),
                "{}.{k} carries a row's id: {v}",
                c.name
            );
            assert!(
                !v.contains(&repo),
                "{}.{k} carries a row's value: {v}",
                c.name
            );
        }
    }
}
