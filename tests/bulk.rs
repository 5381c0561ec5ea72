//! `TenantScope::insert_many_copy`, the COPY path for large batches: rows arrive with the tenant
//! filled in and defaults kept, values survive COPY's text format, another tenant's foreign key
//! is refused before anything is written, and a failure anywhere writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use flakeguard_db::entity::enums::FgQuarantineState;
use flakeguard_db::entity::{
    fg_occurrence, fg_quarantine_decision, fg_repository, fg_test_case, fg_workflow_run,
    organization,
};
use flakeguard_db::sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseConnection, DbBackend, NotSet, Set, Statement,
};
use flakeguard_db::testing::TestDatabase;
use flakeguard_db::{Error, OrgId, TenantScope};
use futures_util::StreamExt as _;

/// One organization with a repository, three test cases and a workflow run.
struct Tenant {
    scope: TenantScope,
    tests: Vec<String>,
    run: String,
}

async fn tenant(app: &DatabaseConnection, org: &str) -> Tenant {
    let scope = TenantScope::new(app.clone(), OrgId::new(org).unwrap());
    scope
        .insert(organization::ActiveModel {
            name: Set(org.to_uppercase()),
            slug: Set(org.to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    let repo = scope
        .insert(fg_repository::ActiveModel {
            owner: Set(org.to_owned()),
            name: Set("web".into()),
            installation_id: Set("inst".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    let mut tests = Vec::new();
    for name in ["adds", "divides", "rounds"] {
        let case = scope
            .insert(fg_test_case::ActiveModel {
                repo_id: Set(repo.clone()),
                suite: Set("unit".into()),
                name: Set(name.into()),
                ..Default::default()
            })
            .await
            .unwrap();
        tests.push(case.id);
    }
    let run = scope
        .insert(fg_workflow_run::ActiveModel {
            repo_id: Set(repo),
            run_id: Set("1".into()),
            status: Set("completed".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    Tenant { scope, tests, run }
}

struct World {
    db: TestDatabase,
    admin: DatabaseConnection,
    acme: Tenant,
    globex: Tenant,
}

async fn world() -> World {
    let db = TestDatabase::new().await.unwrap();
    let app = db.connect_as_app().await.unwrap();
    let admin = db.connect().await.unwrap();
    let acme = tenant(&app, "acme").await;
    let globex = tenant(&app, "globex").await;
    World {
        db,
        admin,
        acme,
        globex,
    }
}

fn occurrence(test: &str, run: &str, status: &str) -> fg_occurrence::ActiveModel {
    fg_occurrence::ActiveModel {
        test_id: Set(test.to_owned()),
        run_id: Set(run.to_owned()),
        status: Set(status.to_owned()),
        ..Default::default()
    }
}

/// The rows of `table` of all organizations, counted past row-level security.
async fn rows_in(admin: &DatabaseConnection, table: &str) -> i64 {
    admin
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(r#"SELECT count(*) AS n FROM "{table}""#),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap()
}

async fn all_occurrences(admin: &DatabaseConnection) -> i64 {
    rows_in(admin, "FGOccurrence").await
}

/// Text that COPY's text format must escape.
const AWKWARD: &str = "tab\there, line\nbreak, cr\r, back\\slash, \\N, \\., é, \"quoted\"";

#[tokio::test]
async fn rows_arrive_with_the_tenant_filled_in_and_defaults_kept() {
    let w = world().await;
    let (s, t, run) = (&w.acme.scope, &w.acme.tests, &w.acme.run);
    let mut failed = occurrence(&t[1], run, "failed");
    failed.failure_message = Set(Some(AWKWARD.to_owned()));
    failed.duration_ms = Set(Some(-7));
    failed.failure_stack_trace = Set(None);
    let mut retried = occurrence(&t[2], run, "passed");
    retried.attempt = Set(3);
    let rows = vec![occurrence(&t[0], run, "passed"), failed, retried];

    assert_eq!(s.insert_many_copy(rows).await.unwrap(), 3);

    let stored = s.find::<fg_occurrence::Entity>().all().await.unwrap();
    assert_eq!(stored.len(), 3);
    for row in &stored {
        assert_eq!(row.org_id, "acme", "orgId filled in");
        assert!(!row.id.is_empty() && row.id != row.test_id, "id generated");
        let age = chrono::Utc::now() - row.created_at;
        assert!(age.num_seconds().abs() < 60, "createdAt defaulted");
    }
    let by_test = |id: &str| stored.iter().find(|r| r.test_id == id).unwrap();
    assert_eq!(
        by_test(&t[0]).attempt,
        1,
        "an unset column gets its default"
    );
    assert_eq!(by_test(&t[0]).duration_ms, None);
    assert_eq!(by_test(&t[1]).failure_message.as_deref(), Some(AWKWARD));
    assert_eq!(by_test(&t[1]).duration_ms, Some(-7));
    assert_eq!(by_test(&t[1]).failure_stack_trace, None);
    assert_eq!(by_test(&t[2]).attempt, 3);
    assert_eq!(all_occurrences(&w.admin).await, 3);
    assert_eq!(
        w.globex
            .scope
            .count::<fg_occurrence::Entity>(fg_occurrence::Column::Id.is_not_null())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn another_tenants_foreign_key_is_refused_and_nothing_is_written() {
    let w = world().await;
    let (s, t, run) = (&w.acme.scope, &w.acme.tests, &w.acme.run);
    let rows = vec![
        occurrence(&t[0], run, "passed"),
        occurrence(&w.globex.tests[0], run, "passed"), // globex's test case
        occurrence(&t[1], run, "passed"),
    ];
    let err = s.insert_many_copy(rows).await.unwrap_err();
    assert!(matches!(err, Error::TenantDenied { .. }), "{err:?}");
    assert!(err.to_string().contains("testId"), "{err}");

    // Another tenant's run, and a run that does not exist at all.
    for run in [w.globex.run.clone(), "no-such-run".to_owned()] {
        let err = s
            .insert_many_copy(vec![occurrence(&t[0], &run, "passed")])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TenantDenied { .. }), "{err:?}");
    }
    assert_eq!(all_occurrences(&w.admin).await, 0);
}

#[tokio::test]
async fn a_row_naming_another_organization_is_refused() {
    let w = world().await;
    let (s, t, run) = (&w.acme.scope, &w.acme.tests, &w.acme.run);
    let mut theirs = occurrence(&t[1], run, "passed");
    theirs.org_id = Set("globex".into());
    let err = s
        .insert_many_copy(vec![occurrence(&t[0], run, "passed"), theirs])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TenantDenied { .. }), "{err:?}");
    assert_eq!(all_occurrences(&w.admin).await, 0);
}

#[tokio::test]
async fn a_failing_batch_writes_nothing_and_leaves_the_connection_clean() {
    let w = world().await;
    // One connection, so that every check sees the connection the copy used.
    let mut opts = flakeguard_db::connect_options(&w.db.app_url().await.unwrap());
    opts.max_connections(1).min_connections(1);
    let pool = Database::connect(opts).await.unwrap();
    let s = TenantScope::new(pool.clone(), OrgId::new("acme").unwrap());
    let (t, run) = (&w.acme.tests, &w.acme.run);

    // The same (orgId, runId, testId) twice breaks a unique constraint in the INSERT.
    let rows = vec![
        occurrence(&t[0], run, "passed"),
        occurrence(&t[1], run, "passed"),
        occurrence(&t[0], run, "failed"),
    ];
    let err = s.insert_many_copy(rows).await.unwrap_err();
    assert!(err.is_unique_violation(), "{err:?}");
    assert_eq!(all_occurrences(&w.admin).await, 0);

    // A value the column refuses fails in the COPY itself.
    let mut bad = occurrence(&t[2], run, "passed");
    bad.id = Set("nul\0byte".into());
    let err = s
        .insert_many_copy(vec![occurrence(&t[1], run, "passed"), bad])
        .await
        .unwrap_err();
    assert_eq!(
        err.rejection(),
        Some(flakeguard_db::Rejection::InvalidValue),
        "{err:?}"
    );
    assert_eq!(all_occurrences(&w.admin).await, 0);

    // On the connection the scope's transactions use (the pipelined pool's).
    let leftovers = flakeguard_db::testing::query_pooled(
        &flakeguard_db::Db::new(pool.clone()),
        "SELECT current_setting('app.current_tenant_id', true) AS tenant, \
                to_regclass('pg_temp._flakeguard_copy_stage')::text AS stage",
    )
    .await
    .unwrap()
    .unwrap();
    let tenant: Option<String> = leftovers.try_get("", "tenant").unwrap();
    assert!(tenant.unwrap_or_default().is_empty(), "no tenant left set");
    let stage: Option<String> = leftovers.try_get("", "stage").unwrap();
    assert_eq!(stage, None, "no staging table left");

    // The connection works for the next batch, staging table and all.
    let rows = vec![occurrence(&t[0], run, "passed")];
    assert_eq!(s.insert_many_copy(rows).await.unwrap(), 1);
    let rows = vec![occurrence(&t[1], run, "passed")];
    assert_eq!(s.insert_many_copy(rows).await.unwrap(), 1);
    assert_eq!(all_occurrences(&w.admin).await, 2);
}

#[tokio::test]
async fn inside_a_transaction_it_commits_and_rolls_back_with_it() {
    let w = world().await;
    let (t, run) = (w.acme.tests.clone(), w.acme.run.clone());
    let rows = vec![occurrence(&t[0], &run, "passed")];
    let result: Result<(), Error> = w
        .acme
        .scope
        .transaction(|tx| {
            Box::pin(async move {
                assert_eq!(tx.insert_many_copy(rows).await?, 1);
                Err(Error::Config("changed my mind".into()))
            })
        })
        .await;
    assert!(matches!(result, Err(Error::Config(_))), "{result:?}");
    assert_eq!(all_occurrences(&w.admin).await, 0);

    let rows = vec![occurrence(&t[0], &run, "passed")];
    w.acme
        .scope
        .transaction(|tx| {
            Box::pin(async move {
                tx.insert_many_copy(rows).await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap();
    assert_eq!(all_occurrences(&w.admin).await, 1);
}

#[tokio::test]
async fn enums_timestamps_and_json_survive_the_copy() {
    let w = world().await;
    let s = &w.acme.scope;
    let until = chrono::DateTime::parse_from_rfc3339("2031-02-03T04:05:06.789012+02:00")
        .unwrap()
        .to_utc();
    let decisions = vec![
        fg_quarantine_decision::ActiveModel {
            test_id: Set(w.acme.tests[0].clone()),
            state: Set(FgQuarantineState::Active),
            rationale: Set(AWKWARD.to_owned()),
            until: Set(Some(until)),
            ..Default::default()
        },
        fg_quarantine_decision::ActiveModel {
            test_id: Set(w.acme.tests[1].clone()),
            rationale: Set("proposed by default".into()),
            state: NotSet,
            ..Default::default()
        },
    ];
    assert_eq!(s.insert_many_copy(decisions).await.unwrap(), 2);
    let stored = s
        .find::<fg_quarantine_decision::Entity>()
        .order_by_desc(fg_quarantine_decision::Column::Rationale)
        .all()
        .await
        .unwrap();
    assert_eq!(stored[1].state, FgQuarantineState::Proposed, "enum default");
    assert_eq!(stored[0].state, FgQuarantineState::Active);
    assert_eq!(stored[0].rationale, AWKWARD);
    assert_eq!(stored[0].until, Some(until), "microseconds and zone kept");
    assert_eq!(stored[0].org_id, "acme");

    // The tenant root: the organization's own row, with JSON settings.
    let app = w.db.connect_as_app().await.unwrap();
    let initech = TenantScope::new(app, OrgId::new("initech").unwrap());
    let settings = serde_json::json!({ "retention": "90\tdays\n", "slack": ["#ci", "\\x"] });
    let org = organization::ActiveModel {
        name: Set("Initech".into()),
        slug: Set("initech".into()),
        settings: Set(settings.clone()),
        ..Default::default()
    };
    assert_eq!(initech.insert_many_copy(vec![org]).await.unwrap(), 1);
    let me = initech.organization().await.unwrap().unwrap();
    assert_eq!(me.id, "initech");
    assert_eq!(me.settings, settings);
    assert_eq!(me.plan, "free", "default kept");
}

#[tokio::test]
async fn nothing_to_insert_is_zero() {
    let w = world().await;
    let none: Vec<fg_occurrence::ActiveModel> = Vec::new();
    assert_eq!(w.acme.scope.insert_many_copy(none).await.unwrap(), 0);
}

/// The repository of `t`'s workflow run.
async fn repo_of(t: &Tenant) -> String {
    t.scope
        .find_by_id::<fg_workflow_run::Entity, _>(t.run.clone())
        .await
        .unwrap()
        .unwrap()
        .repo_id
}

fn run(repo: &str, n: usize) -> fg_workflow_run::ActiveModel {
    fg_workflow_run::ActiveModel {
        repo_id: Set(repo.to_owned()),
        run_id: Set(format!("stream-{n}")),
        status: Set("completed".into()),
        ..Default::default()
    }
}

async fn runs_of(admin: &DatabaseConnection) -> i64 {
    rows_in(admin, "FGWorkflowRun").await
}

#[tokio::test]
async fn a_stream_goes_in_chunks_and_a_refusal_in_the_last_chunk_writes_nothing() {
    let w = world().await;
    let (ours, theirs) = (repo_of(&w.acme).await, repo_of(&w.globex).await);
    let before = runs_of(&w.admin).await;
    let n = 2 * flakeguard_db::COPY_CHUNK_ROWS + 5;

    // The last row points at the other organization's repository: the chunks before it are
    // already in the database when it is found, and go back out with the transaction.
    let rows =
        futures_util::stream::iter(0..n).map(|i| run(if i == n - 1 { &theirs } else { &ours }, i));
    let err = w
        .acme
        .scope
        .insert_many_copy_stream(rows)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TenantDenied { .. }), "{err:?}");
    assert_eq!(runs_of(&w.admin).await, before, "nothing written");

    let rows = futures_util::stream::iter(0..n).map(|i| run(&ours, i));
    assert_eq!(
        w.acme.scope.insert_many_copy_stream(rows).await.unwrap(),
        n as u64
    );
    assert_eq!(runs_of(&w.admin).await, before + n as i64);
    let seen = w
        .acme
        .scope
        .find::<fg_workflow_run::Entity>()
        .filter(fg_workflow_run::Column::RunId.starts_with("stream-"))
        .count()
        .await
        .unwrap();
    assert_eq!(seen, n as u64, "every row is the tenant's");
}

#[tokio::test]
async fn inside_a_transaction_the_rows_go_through_copy_on_the_transactions_connection() {
    let w = world().await;
    let (t, run) = (w.acme.tests.clone(), w.acme.run.clone());
    let stage = w
        .acme
        .scope
        .transaction(|tx| {
            Box::pin(async move {
                tx.insert_many_copy(vec![occurrence(&t[0], &run, "passed")])
                    .await?;
                // A second batch into another table in the same transaction.
                let repo = tx
                    .find_by_id::<fg_workflow_run::Entity, _>(run.clone())
                    .await?
                    .map(|r| r.repo_id)
                    .unwrap_or_default();
                tx.insert_many_copy(vec![super_run(&repo)]).await?;
                tx.insert_many_copy(vec![occurrence(&t[1], &run, "failed")])
                    .await?;
                // The staging table lives in this transaction: the COPY path ran here, not
                // insert_many.
                let rows = tx
                    .query_raw(Statement::from_string(
                        DbBackend::Postgres,
                        "SELECT to_regclass('pg_temp._flakeguard_copy_stage')::text AS stage",
                    ))
                    .await?;
                let stage: Option<String> = rows[0]
                    .try_get("", "stage")
                    .map_err(|e| Error::Config(format!("stage column: {e}")))?;
                Ok::<_, Error>(stage)
            })
        })
        .await
        .unwrap();
    assert!(
        stage.is_some(),
        "the staging table exists inside the transaction"
    );
    assert_eq!(all_occurrences(&w.admin).await, 2);

    // A failed batch inside a transaction rolls back its own savepoint only.
    let (t, run) = (w.acme.tests.clone(), w.acme.run.clone());
    w.acme
        .scope
        .transaction(|tx| {
            Box::pin(async move {
                let dup = vec![
                    occurrence(&t[2], &run, "passed"),
                    occurrence(&t[2], &run, "failed"),
                ];
                let err = tx.insert_many_copy(dup).await.unwrap_err();
                assert!(err.is_unique_violation(), "{err:?}");
                tx.insert_many_copy(vec![occurrence(&t[2], &run, "passed")])
                    .await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap();
    assert_eq!(all_occurrences(&w.admin).await, 3);
}

fn super_run(repo: &str) -> fg_workflow_run::ActiveModel {
    run(repo, 999_999)
}
