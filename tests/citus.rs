//! The throwaway Citus cluster of `flakeguard_db::testing` (a coordinator and two workers), and
//! the crate on it. Skipped, saying so, where Citus is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "../examples/quickstart.rs"]
#[allow(dead_code)]
mod quickstart;

use std::collections::{BTreeMap, BTreeSet};

use flakeguard_db::OrgId;
use flakeguard_db::entity::fg_test_case;
use flakeguard_db::migration::distribute::distribute;
use flakeguard_db::migration::isolate::{Node, isolate_tenant};
use flakeguard_db::migration::runner::MigrateError;
use flakeguard_db::sea_orm::{ConnectionTrait, Database, DbBackend, Set, Statement};
use flakeguard_db::testing::{APP_ROLE, CITUS_WORKERS, CitusDatabase};
use support::checks::{all_typed_violations, everything};

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

/// Runs `sql` as given (one simple query).
async fn exec(db: &impl ConnectionTrait, sql: &str) {
    db.execute_unprepared(sql).await.unwrap();
}

/// Table -> (partition method, replication model, co-location group) of `db`'s Citus tables.
async fn layout(admin: &impl ConnectionTrait) -> BTreeMap<String, (String, String, i64)> {
    let rows = admin
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT c.relname AS t, p.partmethod::text AS m, p.repmodel::text AS r, \
                    p.colocationid::int8 AS g \
             FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.try_get("", "t").unwrap(),
                (
                    r.try_get("", "m").unwrap(),
                    r.try_get("", "r").unwrap(),
                    r.try_get("", "g").unwrap(),
                ),
            )
        })
        .collect()
}

/// The port of the worker that holds `org`'s shard of FGTestCase.
async fn worker_of(admin: &impl ConnectionTrait, org: &OrgId) -> String {
    scalar(
        admin,
        &format!(
            "SELECT nodeport FROM pg_dist_shard_placement WHERE shardid = \
             get_shard_id_for_distribution_column('\"FGTestCase\"', '{org}')"
        ),
    )
    .await
}

#[tokio::test]
async fn distribute_shards_the_tenant_tables_by_org_keeps_every_row_and_both_locks_hold() {
    let Some(db) = CitusDatabase::new_or_skip("distribute").await.unwrap() else {
        return;
    };
    let admin = db.connect().await.unwrap();
    let app_url = db.app_url().await.unwrap();
    let app = Database::connect(flakeguard_db::connect_options(&app_url))
        .await
        .unwrap();
    let mut tenants = Vec::new();
    for (i, org) in ["org-a", "org-b", "org-c", "org-d"].iter().enumerate() {
        tenants.push(support::tenants::seed(&app, &OrgId::new(*org).unwrap(), i as i64 + 1).await);
    }
    app.close().await.unwrap();
    let before = everything(&admin).await;

    let done = distribute(&admin).await.unwrap();
    assert!(!done.nothing_to_do());
    for action in &done.actions {
        println!("  {action}");
    }

    // Every table with a NOT NULL "orgId" is hash-distributed, all in one co-location group;
    // the others are reference tables.
    let layout = layout(&admin).await;
    let reference = ["User", "IngestionJob", "Organization", "Task"];
    let mut groups = BTreeSet::new();
    for (table, _) in support::tenants::SCOPED_TABLES.iter() {
        let (method, model, group) = layout.get(*table).unwrap_or_else(|| panic!("{table}"));
        if reference.contains(table) {
            assert_eq!((method.as_str(), model.as_str()), ("n", "t"), "{table}");
        } else {
            assert_eq!(method, "h", "{table} is distributed");
            groups.insert(*group);
        }
    }
    for table in reference {
        assert_eq!(layout[table].1, "t", "{table} is a reference table");
    }
    assert_eq!(groups.len(), 1, "one co-location group: {layout:?}");
    assert_eq!(layout.len(), 27, "every table of the schema: {layout:?}");

    // Nothing was lost.
    assert_eq!(everything(&admin).await, before);

    // The tenants' shards are on both workers, so that what follows crosses both.
    let mut ports = BTreeSet::new();
    for t in &tenants {
        ports.insert(worker_of(&admin, &t.org).await);
    }
    assert_eq!(ports.len(), CITUS_WORKERS, "the tenants' shards: {ports:?}");

    // A second run does nothing.
    assert!(distribute(&admin).await.unwrap().nothing_to_do());

    // Both locks on the cluster, through the coordinator: the application role (row-level
    // security on the workers, reached by SET LOCAL) and the superuser (the Rust lock alone).
    // The pool is opened after `distribute`: citus.propagate_set_commands applies to new
    // sessions.
    let app = Database::connect(flakeguard_db::connect_options(&app_url))
        .await
        .unwrap();
    for pair in tenants.chunks(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let v = all_typed_violations(&app, a, b).await;
        assert!(v.is_empty(), "application role: {v:#?}");
        let v = all_typed_violations(&admin, a, b).await;
        assert!(v.is_empty(), "superuser (the Rust lock alone): {v:#?}");
    }
    assert_eq!(
        everything(&admin).await,
        before,
        "the checks changed nothing"
    );

    // Row-level security alone, on every worker: raw SQL without a tenant predicate sees
    // exactly the tenant's rows, because SET LOCAL reached the workers; set_config does not
    // reach them, and the workers then see no tenant and return nothing.
    for t in &tenants {
        let scope = flakeguard_db::TenantScope::new(app.clone(), t.org.clone());
        let rows = scope
            .query_raw(Statement::from_string(
                DbBackend::Postgres,
                r#"SELECT "orgId" FROM "FGOccurrence""#,
            ))
            .await
            .unwrap();
        assert_eq!(rows.len(), t.rows["FGOccurrence"].len(), "{}", t.org);
        for row in rows {
            assert_eq!(row.try_get::<String>("", "orgId").unwrap(), t.org.as_str());
        }
    }
    let via_set_config = flakeguard_db::sea_orm::TransactionTrait::begin(&app)
        .await
        .unwrap();
    exec(
        &via_set_config,
        &format!(
            "SELECT set_config('app.current_tenant_id', '{}', true)",
            tenants[0].org
        ),
    )
    .await;
    let n = scalar(&via_set_config, r#"SELECT count(*) FROM "FGOccurrence""#).await;
    assert_eq!(n, "0", "set_config does not reach the workers");
    via_set_config.rollback().await.unwrap();

    // Writes: a row inserted through a scope lands on its tenant's shard, seen by that tenant
    // only.
    let (a, b) = (&tenants[0], &tenants[1]);
    let scope_a = flakeguard_db::TenantScope::new(app.clone(), a.org.clone());
    let repo = a.key("FGRepository").to_owned();
    let case = scope_a
        .insert(fg_test_case::ActiveModel {
            repo_id: Set(repo),
            suite: Set("citus".into()),
            class_name: Set(Some("Cluster".into())),
            name: Set("lands on its shard".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(case.org_id, a.org.as_str());
    let scope_b = flakeguard_db::TenantScope::new(app.clone(), b.org.clone());
    assert!(
        scope_b
            .find_by_id::<fg_test_case::Entity, _>(case.id.clone())
            .await
            .unwrap()
            .is_none()
    );
    let shard_port = worker_of(&admin, &a.org).await;
    let worker = Database::connect(
        db.worker_urls()
            .into_iter()
            .find(|u| u.contains(&format!(":{shard_port}/")))
            .unwrap(),
    )
    .await
    .unwrap();
    let on_worker = scalar(
        &worker,
        &format!(
            "SELECT count(*) FROM \"FGTestCase\" WHERE id = '{}'",
            case.id
        ),
    )
    .await;
    assert_eq!(
        on_worker, "1",
        "the row is on the worker of its tenant's shard"
    );
    worker.close().await.unwrap();

    // `validate` recognises the distributed variant: it passes as distributed, and names what
    // is wrong when something is.
    let report = flakeguard_db::migration::validate::validate(&admin)
        .await
        .unwrap();
    assert!(report.is_ok(), "{:#?}", report.problems);
    assert!(
        report
            .checked
            .iter()
            .any(|(what, n)| what.contains("Citus") && *n == 27),
        "{:?}",
        report.checked
    );
    exec(
        &admin,
        &format!(
            "ALTER DATABASE {} RESET citus.propagate_set_commands",
            db.name()
        ),
    )
    .await;
    exec(
        &admin,
        r#"ALTER TABLE "FGOccurrence" DROP CONSTRAINT "FGOccurrence_orgId_jobId_fkey""#,
    )
    .await;
    let report = flakeguard_db::migration::validate::validate(&admin)
        .await
        .unwrap();
    let problems = report.problems.join("\n");
    assert!(problems.contains("propagate_set_commands"), "{problems}");
    assert!(
        problems.contains("FGOccurrence_orgId_jobId_fkey"),
        "{problems}"
    );
    assert_eq!(report.problems.len(), 2, "{problems}");
    exec(
        &admin,
        &format!(
            "ALTER DATABASE {} SET citus.propagate_set_commands = 'local'",
            db.name()
        ),
    )
    .await;
    exec(
        &admin,
        r#"ALTER TABLE "FGOccurrence" ADD CONSTRAINT "FGOccurrence_orgId_jobId_fkey"
           FOREIGN KEY ("orgId", "jobId") REFERENCES "FGJob"("orgId", id)"#,
    )
    .await;
    let report = flakeguard_db::migration::validate::validate(&admin)
        .await
        .unwrap();
    assert!(report.is_ok(), "{:#?}", report.problems);

    // `down` and its kin refuse, changing nothing.
    for result in [
        flakeguard_db::migration::runner::down(&admin, None).await,
        flakeguard_db::migration::runner::reset(&admin).await,
        flakeguard_db::migration::runner::refresh(&admin).await,
        flakeguard_db::migration::runner::fresh(&admin).await,
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, MigrateError::Distributed(_)), "{err}");
    }
    assert_eq!(
        scalar(&admin, "SELECT count(*) FROM seaql_migrations").await,
        "9"
    );
}

#[tokio::test]
async fn distribute_refuses_without_citus_and_changes_nothing() {
    let db = flakeguard_db::testing::TestDatabase::new().await.unwrap();
    let admin = db.connect().await.unwrap();
    let before = support::read_catalog(&admin).await;
    let err = distribute(&admin).await.unwrap_err();
    assert!(matches!(err, MigrateError::NotCitus(_)), "{err}");
    assert!(
        err.to_string().contains("citus extension is not installed"),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    let err = isolate_tenant(&admin, "default-org-id", None)
        .await
        .unwrap_err();
    assert!(matches!(err, MigrateError::Isolate(_)), "{err}");
    assert!(err.to_string().contains("not distributed"), "{err}");
    assert_eq!(support::read_catalog(&admin).await, before);
}

#[tokio::test]
async fn distribute_interrupted_part_way_resumes_when_run_again() {
    let Some(db) = CitusDatabase::new_or_skip("distribute, interrupted")
        .await
        .unwrap()
    else {
        return;
    };
    let admin = db.connect().await.unwrap();
    let app = Database::connect(flakeguard_db::connect_options(&db.app_url().await.unwrap()))
        .await
        .unwrap();
    support::tenants::seed(&app, &OrgId::new("org-a").unwrap(), 1).await;
    app.close().await.unwrap();
    let before = everything(&admin).await;
    // Citus refuses to distribute a table with a trigger of its own: the run stops there,
    // after the keys and some tables are done.
    exec(
        &admin,
        r#"CREATE FUNCTION fg_test_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
           CREATE TRIGGER fg_test_noop BEFORE INSERT ON "FGOccurrence" FOR EACH ROW EXECUTE FUNCTION fg_test_noop()"#,
    )
    .await;
    let err = distribute(&admin).await.unwrap_err();
    let MigrateError::Distribute { step, partly, .. } = &err else {
        panic!("{err}");
    };
    assert!(*partly, "{err}");
    assert!(step.contains("FGOccurrence"), "{err}");
    assert!(
        err.to_string()
            .contains("run `flakeguard-migration distribute` again"),
        "{err}"
    );
    let partial = layout(&admin).await;
    assert_eq!(partial["User"].1, "t", "{partial:?}");
    assert_ne!(partial["FGOccurrence"].0, "h", "{partial:?}");
    assert_eq!(everything(&admin).await, before, "nothing lost part-way");

    exec(&admin, r#"DROP TRIGGER fg_test_noop ON "FGOccurrence""#).await;
    let done = distribute(&admin).await.unwrap();
    assert!(
        done.actions.iter().any(|a| a.contains("FGOccurrence")),
        "{:?}",
        done.actions
    );
    assert_eq!(layout(&admin).await.len(), 27);
    assert_eq!(everything(&admin).await, before);
    assert!(distribute(&admin).await.unwrap().nothing_to_do());
}

/// A distributed database with organizations `orgs` seeded in every table first (through a
/// scope, before `distribute`), or `None` where Citus is not installed (the skip is printed):
/// the database, its superuser pool, the application role's URL and the tenants.
/// A fresh database on the cluster, distributed, with the superuser's pool; `None` (the skip
/// printed) where Citus is not installed.
async fn distributed(
    test: &str,
) -> Option<(CitusDatabase, flakeguard_db::sea_orm::DatabaseConnection)> {
    let db = CitusDatabase::new_or_skip(test).await.unwrap()?;
    let admin = db.connect().await.unwrap();
    distribute(&admin).await.unwrap();
    Some((db, admin))
}

async fn distributed_with(
    test: &str,
    orgs: &[&str],
) -> Option<(
    CitusDatabase,
    flakeguard_db::sea_orm::DatabaseConnection,
    String,
    Vec<support::tenants::Tenant>,
)> {
    let db = CitusDatabase::new_or_skip(test).await.unwrap()?;
    let admin = db.connect().await.unwrap();
    let app_url = db.app_url().await.unwrap();
    let seeding = Database::connect(flakeguard_db::connect_options(&app_url))
        .await
        .unwrap();
    let mut tenants = Vec::new();
    for (i, org) in orgs.iter().enumerate() {
        let org = OrgId::new(*org).unwrap();
        tenants.push(support::tenants::seed(&seeding, &org, i as i64 + 1).await);
    }
    seeding.close().await.unwrap();
    distribute(&admin).await.unwrap();
    Some((db, admin, app_url, tenants))
}

/// The number of tasks (shards) Citus's plan of `stmt` runs.
async fn task_count(admin: &impl ConnectionTrait, stmt: &Statement) -> usize {
    let explain = Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("EXPLAIN {}", stmt.sql),
        stmt.values.clone().map(|v| v.0).unwrap_or_default(),
    );
    let rows = admin.query_all_raw(explain).await.unwrap();
    let plan: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "QUERY PLAN").unwrap())
        .collect();
    plan.iter()
        .find_map(|l| l.trim().strip_prefix("Task Count: "))
        .unwrap_or_else(|| panic!("no Task Count in {plan:#?}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn every_scope_operation_runs_on_one_shard() {
    use flakeguard_db::entity::{fg_flake_score, fg_occurrence};
    use flakeguard_db::sea_orm::ColumnTrait;

    let Some((_db, admin, app_url, tenants)) =
        distributed_with("single-shard routing", &["org-a", "org-b"]).await
    else {
        return;
    };
    let a = &tenants[0];

    // Every statement that would run on more than one shard fails on this pool: Citus raises
    // an error instead of fanning out.
    let url = format!("{app_url}?options=-c%20citus.multi_task_query_log_level%3Derror");
    let app = flakeguard_db::connect(&url).await.unwrap();
    let fan_out = app
        .scope(a.org.clone())
        .query_raw(Statement::from_string(
            DbBackend::Postgres,
            r#"SELECT count(*) AS n FROM "FGTestCase""#,
        ))
        .await
        .unwrap_err();
    assert!(
        fan_out.to_string().contains("multi-task query"),
        "raw SQL without the tenant predicate fans out, and this pool refuses that: {fan_out}"
    );

    let s = app.scope(a.org.clone());
    let repo = a.key("FGRepository").to_owned();
    let run = a.key("FGWorkflowRun").to_owned();
    let test = a.key("FGTestCase").to_owned();

    // Reads: the statements the scope builds, explained, touch one shard; run, they succeed.
    let filtered = s
        .find::<fg_occurrence::Entity>()
        .filter(fg_occurrence::Column::Status.ne("skipped"))
        .inner_join::<fg_test_case::Entity>()
        .filter(fg_test_case::Column::RepoId.eq(&repo));
    assert_eq!(task_count(&admin, &filtered.statement().unwrap()).await, 1);
    filtered.all().await.unwrap();
    let listed = s
        .find::<fg_test_case::Entity>()
        .filter(fg_test_case::Column::RepoId.eq(&repo));
    assert_eq!(task_count(&admin, &listed.statement().unwrap()).await, 1);
    s.find::<fg_occurrence::Entity>()
        .all_with::<fg_test_case::Entity>()
        .await
        .unwrap();
    assert!(
        s.find_by_id::<fg_test_case::Entity, _>(test.clone())
            .await
            .unwrap()
            .is_some()
    );
    assert!(s.find::<fg_test_case::Entity>().count().await.unwrap() > 0);
    s.find::<fg_test_case::Entity>().page(0, 10).await.unwrap();

    // Writes.
    let case = |name: &str| fg_test_case::ActiveModel {
        repo_id: Set(repo.clone()),
        suite: Set("routing".into()),
        class_name: Set(Some("Shard".into())),
        name: Set(name.to_owned()),
        ..Default::default()
    };
    let one = s.insert(case("one")).await.unwrap();
    assert_eq!(
        s.insert_many([case("two"), case("three")]).await.unwrap(),
        2
    );
    let mut changed: fg_test_case::ActiveModel = one.clone().into();
    changed.file = Set(Some("src/shard.rs".into()));
    s.update(changed).await.unwrap();
    let values = fg_test_case::ActiveModel {
        file: Set(Some("src/many.rs".into())),
        ..Default::default()
    };
    assert_eq!(
        s.update_many(values, fg_test_case::Column::Suite.eq("routing"))
            .await
            .unwrap(),
        3
    );
    s.upsert(
        case("one"),
        [
            fg_test_case::Column::OrgId,
            fg_test_case::Column::RepoId,
            fg_test_case::Column::Suite,
            fg_test_case::Column::ClassName,
            fg_test_case::Column::Name,
        ],
    )
    .await
    .unwrap();
    let occurrence = |test: &str| fg_occurrence::ActiveModel {
        test_id: Set(test.to_owned()),
        run_id: Set(run.clone()),
        status: Set("passed".into()),
        ..Default::default()
    };
    let routed: Vec<fg_test_case::Model> = s
        .find::<fg_test_case::Entity>()
        .filter(fg_test_case::Column::Suite.eq("routing"))
        .all()
        .await
        .unwrap();
    assert_eq!(
        s.insert_many_copy(routed.iter().map(|c| occurrence(&c.id)))
            .await
            .unwrap(),
        3,
        "the COPY path"
    );
    assert_eq!(
        s.delete_many::<fg_occurrence::Entity>(
            fg_occurrence::Column::TestId.is_in(routed.iter().map(|c| c.id.clone()))
        )
        .await
        .unwrap(),
        3
    );
    s.delete::<fg_test_case::Entity, _>(one.id.clone())
        .await
        .unwrap();

    // A transaction of several statements.
    let row = case("in a transaction");
    s.transaction(|tx| {
        Box::pin(async move {
            let n = tx.find::<fg_test_case::Entity>().count().await?;
            let case = tx.insert(row).await?;
            tx.find_by_id::<fg_test_case::Entity, _>(case.id).await?;
            assert_eq!(tx.find::<fg_test_case::Entity>().count().await?, n + 1);
            Ok::<_, flakeguard_db::Error>(())
        })
    })
    .await
    .unwrap();

    // An upsert on a unique constraint that leads with "orgId" only on Citus: the same call as
    // on one server, outside a transaction and inside one.
    let score = |value: f64| fg_flake_score::ActiveModel {
        test_id: Set(test.clone()),
        score: Set(value),
        window_n: Set(10),
        ..Default::default()
    };
    let stored = s
        .upsert(score(0.25), [fg_flake_score::Column::TestId])
        .await
        .unwrap();
    assert_eq!(stored.score, 0.25);
    let row = score(0.75);
    let stored = s
        .transaction(|tx| {
            Box::pin(async move {
                let stored = tx.upsert(row, [fg_flake_score::Column::TestId]).await?;
                tx.find::<fg_test_case::Entity>().count().await?;
                Ok::<_, flakeguard_db::Error>(stored)
            })
        })
        .await
        .unwrap();
    assert_eq!(stored.score, 0.75);
    let scores = s
        .find::<fg_flake_score::Entity>()
        .filter(fg_flake_score::Column::TestId.eq(&test))
        .all()
        .await
        .unwrap();
    assert_eq!(scores.len(), 1, "one score, updated in place: {scores:?}");
    assert_eq!(scores[0].score, 0.75);
}

#[tokio::test]
async fn deleting_a_parent_nulls_the_references_that_were_on_delete_set_null() {
    use flakeguard_db::entity::{fg_job, fg_occurrence};
    use flakeguard_db::sea_orm::ColumnTrait;

    let Some((_db, admin, app_url, tenants)) =
        distributed_with("ON DELETE SET NULL on Citus", &["org-a"]).await
    else {
        return;
    };
    let a = &tenants[0];
    let app = flakeguard_db::connect(&app_url).await.unwrap();
    let s = app.scope(a.org.clone());
    let run = a.key("FGWorkflowRun").to_owned();

    let job = |n: i64| fg_job::ActiveModel {
        run_id: Set(run.clone()),
        job_id: Set(format!("set-null-{n}")),
        name: Set(format!("job {n}")),
        status: Set("completed".into()),
        ..Default::default()
    };
    let referencing =
        |job: &fg_job::Model, case: &fg_test_case::Model| fg_occurrence::ActiveModel {
            test_id: Set(case.id.clone()),
            run_id: Set(run.clone()),
            job_id: Set(Some(job.id.clone())),
            status: Set("failed".into()),
            ..Default::default()
        };
    let (one, two) = (
        s.insert(job(1)).await.unwrap(),
        s.insert(job(2)).await.unwrap(),
    );
    let new_case = |name: &str| fg_test_case::ActiveModel {
        repo_id: Set(a.key("FGRepository").to_owned()),
        suite: Set("set-null".into()),
        name: Set(name.to_owned()),
        ..Default::default()
    };
    let extra = s.insert(new_case("second")).await.unwrap();
    let first = s.insert(referencing(&one, &extra)).await.unwrap();
    let second_case = s.insert(new_case("third")).await.unwrap();
    let second = s.insert(referencing(&two, &second_case)).await.unwrap();

    // Around the crate, the key is NO ACTION on Citus: the delete is refused, nothing dangles.
    let raw = admin
        .execute_unprepared(&format!(
            r#"DELETE FROM "FGJob" WHERE "orgId" = '{}' AND id = '{}'"#,
            a.org, one.id
        ))
        .await;
    assert!(
        raw.as_ref()
            .is_err_and(|e| e.to_string().contains("foreign key")),
        "{raw:?}"
    );

    // Through the scope, the references are nulled first, as the single server's key does.
    s.delete::<fg_job::Entity, _>(one.id.clone()).await.unwrap();
    let stored = s
        .find_by_id::<fg_occurrence::Entity, _>(first.id.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.job_id, None,
        "deleting the job nulled its occurrence's jobId"
    );
    assert_eq!(
        s.delete_many::<fg_job::Entity>(fg_job::Column::Id.eq(&two.id))
            .await
            .unwrap(),
        1
    );
    let stored = s
        .find_by_id::<fg_occurrence::Entity, _>(second.id.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.job_id, None);
    assert!(
        s.find_by_id::<fg_job::Entity, _>(two.id.clone())
            .await
            .unwrap()
            .is_none()
    );
    // Deleting a job that is not there is NotFound, as for any table.
    let missing = s
        .delete::<fg_job::Entity, _>(one.id.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(missing, flakeguard_db::Error::NotFound { .. }),
        "{missing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_tasks_over_fifty_organizations_stay_isolated_on_the_cluster() {
    let Some((db, admin)) = distributed("the concurrency workload on Citus").await else {
        return;
    };
    let seed = support::workload::seed();
    // The coordinator adds a hop to every statement: transactions dropped half-way get more
    // time, so that some are dropped after their inserts ran, as on one server.
    let app_url = db.app_url().await.unwrap();
    support::workload::isolated_under_load(&admin, &app_url, 6, seed, 1000).await;
}

/// Port -> the shards of distributed tables it holds, and whether `org`'s shard of FGTestCase
/// holds that organization alone.
async fn placements(admin: &impl ConnectionTrait, org: &OrgId) -> (BTreeMap<String, i64>, bool) {
    let rows = admin
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT nodeport::text AS port, count(*) AS n FROM citus_shards \
             WHERE citus_table_type = 'distributed' GROUP BY 1",
        ))
        .await
        .unwrap();
    let by_port = rows
        .iter()
        .map(|r| (r.try_get("", "port").unwrap(), r.try_get("", "n").unwrap()))
        .collect();
    let alone = scalar(
        admin,
        &format!(
            "SELECT shardminvalue = shardmaxvalue FROM pg_dist_shard WHERE shardid = \
             get_shard_id_for_distribution_column('\"FGTestCase\"', '{org}')"
        ),
    )
    .await;
    (by_port, alone == "true")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_isolated_and_moved_under_load_loses_nothing_and_stays_walled_off() {
    let Some((db, admin)) = distributed("moving a tenant on Citus").await else {
        return;
    };
    let app_url = db.app_url().await.unwrap();
    let mut opts = flakeguard_db::connect_options(&app_url);
    opts.max_connections(8).min_connections(1);
    let pool = Database::connect(opts).await.unwrap();
    let orgs = support::workload::orgs(&pool, 20, "move").await;
    let moving = orgs[0].id.clone();
    let home = worker_of(&admin, &moving).await;
    let (layout_before, alone) = placements(&admin, &moving).await;
    assert!(!alone, "with 8 shards, 20 organizations share them");

    // Refusals change nothing.
    for (org, to, expected) in [
        ("no-such-org", None, "no organization"),
        (moving.as_str(), Some("127.0.0.1:1"), "not an active worker"),
    ] {
        let to: Option<Node> = to.map(|t| t.parse().unwrap());
        let err = isolate_tenant(&admin, org, to.as_ref()).await.unwrap_err();
        assert!(matches!(err, MigrateError::Isolate(_)), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
        assert!(err.to_string().contains("nothing was changed"), "{err}");
        assert_eq!(
            placements(&admin, &moving).await,
            (layout_before.clone(), false)
        );
    }

    // The workload runs for every organization before, during and after the move.
    let seed = support::workload::seed();
    eprintln!("workload seed {seed} (replay with FLAKEGUARD_SEED={seed})");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cfg = support::workload::Config {
        tasks: 40,
        ops_per_task: 4,
        seed,
        drop_within_ms: 1000,
    };
    let workload = tokio::spawn({
        let (pool, orgs, done) = (pool.clone(), orgs.clone(), done.clone());
        async move { support::workload::run_until(&pool, &orgs, cfg, true, Some(done)).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let moved = isolate_tenant(&admin, moving.as_str(), None).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let ledger = workload.await.unwrap();
    let moved = moved.unwrap();
    eprintln!("{:#?}", moved.actions);
    eprintln!("{}; errors: {:#?}", ledger.summary(), ledger.errors);

    // The tenant has a shard group of its own, on the other worker.
    assert_eq!(moved.actions.len(), 2, "{moved:?}");
    assert_eq!(moved.from.port.to_string(), home);
    assert_ne!(moved.to, moved.from);
    assert_eq!(worker_of(&admin, &moving).await, moved.to.port.to_string());
    let (layout_after, alone) = placements(&admin, &moving).await;
    assert!(alone, "{layout_after:?}");
    assert_ne!(layout_after, layout_before);

    // No committed row lost, none seen by another tenant, and every error in flight retriable.
    let violations = support::workload::violations(&admin, &ledger).await;
    assert!(violations.is_empty(), "seed {seed}: {violations:#?}");
    assert!(
        ledger.unretriable.is_empty(),
        "seed {seed}: errors not classified as retriable: {:#?}",
        ledger.unretriable
    );
    assert!(
        ledger.committed.values().any(|o| *o == moving),
        "seed {seed}: the workload committed nothing for the tenant moved"
    );
    for org in &orgs {
        let scope = flakeguard_db::TenantScope::new(pool.clone(), org.id.clone());
        let seen = scope.find::<fg_test_case::Entity>().all().await.unwrap();
        assert!(seen.iter().all(|r| r.org_id == org.id.as_str()));
        let stored = scalar(
            &admin,
            &format!(
                "SELECT count(*) FROM \"FGTestCase\" WHERE \"orgId\" = '{}'",
                org.id
            ),
        )
        .await;
        assert_eq!(seen.len().to_string(), stored, "{}", org.id);
    }

    // A second run has nothing to do; a named target moves it back, once.
    let again = isolate_tenant(&admin, moving.as_str(), None).await.unwrap();
    assert!(again.nothing_to_do(), "{again:?}");
    let back = isolate_tenant(&admin, moving.as_str(), Some(&moved.from))
        .await
        .unwrap();
    assert_eq!(back.actions.len(), 1, "{back:?}");
    assert_eq!(worker_of(&admin, &moving).await, home);
    let again = isolate_tenant(&admin, moving.as_str(), Some(&moved.from))
        .await
        .unwrap();
    assert!(again.nothing_to_do(), "{again:?}");
    pool.close().await.unwrap();
}

#[tokio::test]
async fn the_bad_input_cases_get_the_same_typed_errors_on_the_cluster_on_both_roles() {
    let Some((db, admin, app_url, tenants)) =
        distributed_with("bad input on Citus", &["org-a", "org-b"]).await
    else {
        return;
    };
    let app = Database::connect(flakeguard_db::connect_options(&app_url))
        .await
        .unwrap();
    let mut tenants = tenants.into_iter();
    let w = support::tenants::World {
        db,
        app,
        admin,
        a: tenants.next().unwrap(),
        b: tenants.next().unwrap(),
    };
    support::bad_writes::bad_writes_get_typed_errors_and_write_nothing(&w).await;
    support::bad_writes::errors_about_another_tenants_rows_say_nothing_about_them(&w).await;
    // The same on the superuser, whom row-level security does not apply to: the Rust lock and
    // the tenant keys alone.
    let bypassing = support::tenants::World {
        db: (),
        app: w.admin.clone(),
        admin: w.admin.clone(),
        a: w.a.clone(),
        b: w.b.clone(),
    };
    support::bad_writes::bad_writes_get_typed_errors_and_write_nothing(&bypassing).await;
    support::bad_writes::errors_about_another_tenants_rows_say_nothing_about_them(&bypassing).await;
}

#[tokio::test]
async fn the_quickstart_runs_on_the_cluster_as_the_application_role() {
    let Some((db, admin)) = distributed("the quickstart on Citus").await else {
        return;
    };
    let app = flakeguard_db::connect(&db.app_url().await.unwrap())
        .await
        .unwrap();
    quickstart::run(&app)
        .await
        .unwrap_or_else(|e| panic!("the quickstart failed on the cluster: {e}"));
    // Its two organizations' rows are on the cluster, each tenant's on its own shards.
    let orgs = scalar(
        &admin,
        r#"SELECT count(*) FROM "Organization" WHERE slug LIKE 'acme-%' OR slug LIKE 'globex-%'"#,
    )
    .await;
    assert_eq!(orgs, "2");
    let occurrences = scalar(&admin, r#"SELECT count(*) FROM "FGOccurrence""#).await;
    assert_eq!(occurrences, "4");
}
