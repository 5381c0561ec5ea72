//! Insert, find, update and delete through the entity of every table, against the migrated
//! schema: the entities' table and column names, types and enums agree with the database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, Utc};
use flakeguard_db::entity::enums::{FgQuarantineState, Priority, TaskStatus};
use flakeguard_db::entity::*;
use flakeguard_db::testing::TestDatabase;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

/// Inserts `$am` (id left unset unless given), finds it by id, updates `$field` to `$val`, finds
/// the update, and returns the updated model.
macro_rules! crud {
    ($conn:expr, $m:ident, $am:expr, $field:ident = $val:expr) => {{
        let inserted = $am.insert($conn).await.unwrap();
        let found = $m::Entity::find_by_id(inserted.id.clone())
            .one($conn)
            .await
            .unwrap();
        assert_eq!(
            found.as_ref(),
            Some(&inserted),
            "{} find after insert",
            stringify!($m)
        );
        // Let the clock move on, so that a refreshed timestamp is visibly later.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        let mut am: $m::ActiveModel = inserted.clone().into();
        am.$field = Set($val);
        let updated = am.update($conn).await.unwrap();
        assert_eq!(updated.$field, $val, "{} update", stringify!($m));
        let found = $m::Entity::find_by_id(inserted.id.clone())
            .one($conn)
            .await
            .unwrap();
        assert_eq!(
            found.as_ref(),
            Some(&updated),
            "{} find after update",
            stringify!($m)
        );
        (inserted, updated)
    }};
}

/// `crud!` for a table with a generated id and an update timestamp.
macro_rules! crud_stamped {
    ($conn:expr, $m:ident, $am:expr, $field:ident = $val:expr) => {{
        let (inserted, updated) = crud!($conn, $m, $am, $field = $val);
        assert!(
            cuid2::is_cuid2(&inserted.id),
            "{}: id {:?} is not a CUID2",
            stringify!($m),
            inserted.id
        );
        assert!(
            updated.updated_at > inserted.updated_at,
            "{}: updatedAt not refreshed",
            stringify!($m)
        );
        updated
    }};
}

async fn delete<E: EntityTrait>(conn: &DatabaseConnection, id: &str)
where
    <E::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType: From<String>,
{
    let res = E::delete_by_id(id.to_owned()).exec(conn).await.unwrap();
    assert_eq!(
        res.rows_affected,
        1,
        "delete from {}",
        E::default().table_name()
    );
    assert!(
        E::find_by_id(id.to_owned())
            .one(conn)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn every_table_round_trips_through_its_entity() {
    let db = TestDatabase::new().await.unwrap();
    let c = &db.connect().await.unwrap();
    let now = Utc::now();

    let user = crud_stamped!(
        c,
        user,
        user::ActiveModel {
            email: Set("ada@example.com".into()),
            ..Default::default()
        },
        name = Some("Ada".into())
    );
    assert_eq!(user.role, "user");

    let org = crud_stamped!(
        c,
        organization,
        organization::ActiveModel {
            name: Set("Acme".into()),
            slug: Set("acme".into()),
            ..Default::default()
        },
        plan = "team".to_owned()
    );
    assert_eq!(org.settings, serde_json::json!({}));

    let member = crud_stamped!(
        c,
        organization_user,
        organization_user::ActiveModel {
            org_id: Set(org.id.clone()),
            user_id: Set(user.id.clone()),
            ..Default::default()
        },
        role = "admin".to_owned()
    );

    let sub = crud_stamped!(
        c,
        subscription,
        subscription::ActiveModel {
            org_id: Set(org.id.clone()),
            plan: Set("team".into()),
            status: Set("active".into()),
            current_period_start: Set(now),
            current_period_end: Set(now + Duration::days(30)),
            ..Default::default()
        },
        cancel_at_period_end = true
    );

    let (audit, _) = crud!(
        c,
        audit_log,
        audit_log::ActiveModel {
            org_id: Set(org.id.clone()),
            user_id: Set(Some(user.id.clone())),
            action: Set("org.create".into()),
            resource: Set("Organization".into()),
            details: Set(serde_json::json!({"via": "test"})),
            ..Default::default()
        },
        action = "org.update".to_owned()
    );
    assert!(cuid2::is_cuid2(&audit.id));

    let metric = crud_stamped!(
        c,
        usage_metric,
        usage_metric::ActiveModel {
            org_id: Set(org.id.clone()),
            metric_type: Set("test_runs".into()),
            period: Set("day".into()),
            date: Set(now),
            ..Default::default()
        },
        value = 42
    );

    let task = crud_stamped!(
        c,
        task,
        task::ActiveModel {
            title: Set("triage".into()),
            user_id: Set(user.id.clone()),
            org_id: Set(Some(org.id.clone())),
            priority: Set(Priority::High),
            ..Default::default()
        },
        status = TaskStatus::InProgress
    );
    assert_eq!(task.priority, Priority::High);

    // Installation's id is GitHub's, supplied by the caller.
    let missing_id = installation::ActiveModel {
        org_id: Set(org.id.clone()),
        ..Default::default()
    }
    .insert(c)
    .await
    .unwrap_err();
    assert!(
        missing_id
            .to_string()
            .contains("Installation.id must be supplied"),
        "{missing_id}"
    );
    let (inst, inst2) = crud!(
        c,
        installation,
        installation::ActiveModel {
            id: Set("71234567".into()),
            org_id: Set(org.id.clone()),
            github_installation_id: Set(9_000_000_001),
            account_login: Set("acme".into()),
            account_id: Set(42),
            account_type: Set("Organization".into()),
            events: Set(vec!["push".into(), "check_run".into()]),
            ..Default::default()
        },
        sync_status = "suspended".to_owned()
    );
    assert_eq!(inst.events, ["push", "check_run"]);
    assert!(inst2.updated_at > inst.updated_at);

    let repo = crud_stamped!(
        c,
        repository,
        repository::ActiveModel {
            org_id: Set(org.id.clone()),
            github_id: Set(5_000_000_001),
            node_id: Set("R_1".into()),
            name: Set("web".into()),
            full_name: Set("acme/web".into()),
            owner: Set("acme".into()),
            installation_id: Set(inst.id.clone()),
            ..Default::default()
        },
        is_active = false
    );
    assert_eq!(repo.default_branch, "main");

    let run = crud_stamped!(
        c,
        workflow_run,
        workflow_run::ActiveModel {
            org_id: Set(org.id.clone()),
            github_id: Set(7_000_000_001),
            head_branch: Set("main".into()),
            head_sha: Set("abc".into()),
            status: Set("queued".into()),
            workflow_id: Set(3_000_000_001),
            workflow_name: Set("ci".into()),
            repository_id: Set(repo.id.clone()),
            installation_id: Set(inst.id.clone()),
            ..Default::default()
        },
        status = "completed".to_owned()
    );

    let check = crud_stamped!(
        c,
        check_run,
        check_run::ActiveModel {
            org_id: Set(org.id.clone()),
            github_id: Set(8_000_000_001),
            name: Set("tests".into()),
            head_sha: Set("abc".into()),
            status: Set("completed".into()),
            repository_id: Set(repo.id.clone()),
            installation_id: Set(inst.id.clone()),
            workflow_run_id: Set(Some(run.id.clone())),
            ..Default::default()
        },
        conclusion = Some("failure".into())
    );
    assert_eq!(check.actions, serde_json::json!([]));

    let job = crud_stamped!(
        c,
        workflow_job,
        workflow_job::ActiveModel {
            org_id: Set(org.id.clone()),
            github_id: Set(6_000_000_001),
            name: Set("unit".into()),
            status: Set("in_progress".into()),
            workflow_run_id: Set(run.id.clone()),
            ..Default::default()
        },
        status = "completed".to_owned()
    );

    let artifact = crud_stamped!(
        c,
        artifact,
        artifact::ActiveModel {
            org_id: Set(org.id.clone()),
            github_id: Set(4_000_000_001),
            name: Set("junit".into()),
            r#type: Set("zip".into()),
            size_in_bytes: Set(5_000_000_000),
            url: Set("https://example.com/a".into()),
            archive_download_url: Set("https://example.com/a.zip".into()),
            workflow_run_id: Set(run.id.clone()),
            expires_at: Set(now + Duration::days(90)),
            ..Default::default()
        },
        expired = true
    );
    assert_eq!(artifact.size_in_bytes, 5_000_000_000);

    let suite = crud_stamped!(
        c,
        test_suite,
        test_suite::ActiveModel {
            org_id: Set(org.id.clone()),
            name: Set("unit".into()),
            repository_id: Set(repo.id.clone()),
            run_id: Set(Some("run-1".into())),
            check_run_id: Set(Some(check.id.clone())),
            workflow_job_id: Set(Some(job.id.clone())),
            ..Default::default()
        },
        tests = 3
    );

    let result = crud_stamped!(
        c,
        test_result,
        test_result::ActiveModel {
            org_id: Set(org.id.clone()),
            name: Set("adds".into()),
            suite: Set("unit".into()),
            test_full_name: Set("math.adds".into()),
            status: Set("failed".into()),
            time: Set(0.25),
            run_id: Set("run-1".into()),
            repository_id: Set(repo.id.clone()),
            test_suite_id: Set(Some(suite.id.clone())),
            check_run_id: Set(Some(check.id.clone())),
            workflow_job_id: Set(Some(job.id.clone())),
            ..Default::default()
        },
        status = "passed".to_owned()
    );

    let detection = crud_stamped!(
        c,
        flake_detection,
        flake_detection::ActiveModel {
            org_id: Set(org.id.clone()),
            test_name: Set("math.adds".into()),
            repository_id: Set(repo.id.clone()),
            installation_id: Set(inst.id.clone()),
            check_run_id: Set(Some(check.id.clone())),
            test_result_id: Set(Some(result.id.clone())),
            ..Default::default()
        },
        is_flaky = true
    );

    let ingestion = crud_stamped!(
        c,
        ingestion_job,
        ingestion_job::ActiveModel {
            workflow_run_id: Set(run.id.clone()),
            repository_id: Set(repo.id.clone()),
            ..Default::default()
        },
        status = "completed".to_owned()
    );
    assert_eq!(ingestion.priority, "normal");

    let fg_repo = crud_stamped!(
        c,
        fg_repository,
        fg_repository::ActiveModel {
            org_id: Set(org.id.clone()),
            owner: Set("acme".into()),
            name: Set("web".into()),
            installation_id: Set(inst.id.clone()),
            ..Default::default()
        },
        name = "web-app".to_owned()
    );

    let fg_run = crud_stamped!(
        c,
        fg_workflow_run,
        fg_workflow_run::ActiveModel {
            org_id: Set(org.id.clone()),
            repo_id: Set(fg_repo.id.clone()),
            run_id: Set("run-1".into()),
            status: Set("queued".into()),
            ..Default::default()
        },
        status = "completed".to_owned()
    );

    let fg_job = crud_stamped!(
        c,
        fg_job,
        fg_job::ActiveModel {
            org_id: Set(org.id.clone()),
            run_id: Set(fg_run.id.clone()),
            job_id: Set("job-1".into()),
            name: Set("unit".into()),
            status: Set("queued".into()),
            ..Default::default()
        },
        status = "completed".to_owned()
    );

    let case = crud_stamped!(
        c,
        fg_test_case,
        fg_test_case::ActiveModel {
            org_id: Set(org.id.clone()),
            repo_id: Set(fg_repo.id.clone()),
            suite: Set("unit".into()),
            class_name: Set(Some("Math".into())),
            name: Set("adds".into()),
            ..Default::default()
        },
        owner_team = Some("core".into())
    );

    let (occ, _) = crud!(
        c,
        fg_occurrence,
        fg_occurrence::ActiveModel {
            org_id: Set(org.id.clone()),
            test_id: Set(case.id.clone()),
            run_id: Set(fg_run.id.clone()),
            job_id: Set(Some(fg_job.id.clone())),
            status: Set("failed".into()),
            ..Default::default()
        },
        status = "passed".to_owned()
    );
    assert!(cuid2::is_cuid2(&occ.id));
    assert_eq!(occ.attempt, 1);

    let (score, score2) = crud!(
        c,
        fg_flake_score,
        fg_flake_score::ActiveModel {
            org_id: Set(org.id.clone()),
            test_id: Set(case.id.clone()),
            ..Default::default()
        },
        score = 0.75
    );
    assert!(cuid2::is_cuid2(&score.id));
    assert_eq!(score.window_n, 50);
    assert!(
        score2.last_updated_at > score.last_updated_at,
        "lastUpdatedAt not refreshed"
    );

    let decision = crud_stamped!(
        c,
        fg_quarantine_decision,
        fg_quarantine_decision::ActiveModel {
            org_id: Set(org.id.clone()),
            test_id: Set(case.id.clone()),
            rationale: Set("fails one run in four".into()),
            ..Default::default()
        },
        state = FgQuarantineState::Active
    );

    let (link, _) = crud!(
        c,
        fg_issue_link,
        fg_issue_link::ActiveModel {
            org_id: Set(org.id.clone()),
            test_id: Set(case.id.clone()),
            url: Set("https://example.com/issues/1".into()),
            ..Default::default()
        },
        url = "https://example.com/issues/2".to_owned()
    );
    assert_eq!(link.provider, "github");

    let cluster = crud_stamped!(
        c,
        fg_failure_cluster,
        fg_failure_cluster::ActiveModel {
            org_id: Set(org.id.clone()),
            repo_id: Set(fg_repo.id.clone()),
            failure_msg_signature: Set("assertion failed".into()),
            test_ids: Set(vec![case.id.clone()]),
            ..Default::default()
        },
        occurrence_count = 2
    );

    // The link table: composite key, no id of its own.
    use fg_failure_cluster_to_fg_test_case as cluster_case;
    let pair = cluster_case::ActiveModel {
        a: Set(cluster.id.clone()),
        b: Set(case.id.clone()),
        org_id: Set(org.id.clone()),
    }
    .insert(c)
    .await
    .unwrap();
    let found = cluster_case::Entity::find_by_id((cluster.id.clone(), case.id.clone()))
        .one(c)
        .await
        .unwrap();
    assert_eq!(found, Some(pair));
    // The many-to-many relation reaches across it both ways.
    use sea_orm::ModelTrait;
    let cases = cluster
        .find_related(fg_test_case::Entity)
        .all(c)
        .await
        .unwrap();
    assert_eq!(cases.iter().map(|m| &m.id).collect::<Vec<_>>(), [&case.id]);
    let clusters = case
        .find_related(fg_failure_cluster::Entity)
        .all(c)
        .await
        .unwrap();
    assert_eq!(
        clusters.iter().map(|m| &m.id).collect::<Vec<_>>(),
        [&cluster.id]
    );
    let other_case = fg_test_case::ActiveModel {
        org_id: Set(org.id.clone()),
        repo_id: Set(fg_repo.id.clone()),
        suite: Set("unit".into()),
        name: Set("subtracts".into()),
        ..Default::default()
    }
    .insert(c)
    .await
    .unwrap();
    let moved = cluster_case::Entity::update_many()
        .col_expr(
            cluster_case::Column::B,
            sea_orm::sea_query::Expr::value(other_case.id.clone()),
        )
        .filter(cluster_case::Column::A.eq(cluster.id.clone()))
        .exec(c)
        .await
        .unwrap();
    assert_eq!(moved.rows_affected, 1);
    let res = cluster_case::Entity::delete_by_id((cluster.id.clone(), other_case.id.clone()))
        .exec(c)
        .await
        .unwrap();
    assert_eq!(res.rows_affected, 1);
    assert!(
        cluster_case::Entity::find()
            .all(c)
            .await
            .unwrap()
            .is_empty()
    );

    // Delete every row, children first.
    delete::<fg_failure_cluster::Entity>(c, &cluster.id).await;
    delete::<fg_issue_link::Entity>(c, &link.id).await;
    delete::<fg_quarantine_decision::Entity>(c, &decision.id).await;
    delete::<fg_flake_score::Entity>(c, &score.id).await;
    delete::<fg_occurrence::Entity>(c, &occ.id).await;
    delete::<fg_test_case::Entity>(c, &other_case.id).await;
    delete::<fg_test_case::Entity>(c, &case.id).await;
    delete::<fg_job::Entity>(c, &fg_job.id).await;
    delete::<fg_workflow_run::Entity>(c, &fg_run.id).await;
    delete::<fg_repository::Entity>(c, &fg_repo.id).await;
    delete::<ingestion_job::Entity>(c, &ingestion.id).await;
    delete::<flake_detection::Entity>(c, &detection.id).await;
    delete::<test_result::Entity>(c, &result.id).await;
    delete::<test_suite::Entity>(c, &suite.id).await;
    delete::<artifact::Entity>(c, &artifact.id).await;
    delete::<workflow_job::Entity>(c, &job.id).await;
    delete::<check_run::Entity>(c, &check.id).await;
    delete::<workflow_run::Entity>(c, &run.id).await;
    delete::<repository::Entity>(c, &repo.id).await;
    delete::<installation::Entity>(c, &inst.id).await;
    delete::<task::Entity>(c, &task.id).await;
    delete::<usage_metric::Entity>(c, &metric.id).await;
    delete::<audit_log::Entity>(c, &audit.id).await;
    delete::<subscription::Entity>(c, &sub.id).await;
    delete::<organization_user::Entity>(c, &member.id).await;
    delete::<organization::Entity>(c, &org.id).await;
    delete::<user::Entity>(c, &user.id).await;
}
