//! FlakeGuard's read paths (`flakeguard_db::reports`): each gives exactly the tenant's
//! figures, on the application role (row-level security and the Rust lock) and on the
//! superuser (the Rust lock alone). B holds data of the same shape with other values, so that
//! any of B's rows in A's figures would change them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::{Duration, Utc};
use flakeguard_db::entity::enums::FgQuarantineState;
use flakeguard_db::entity::*;
use flakeguard_db::reports::{self, ClusterSummary};
use flakeguard_db::sea_orm::{ColumnTrait, Set};
use support::tenants::{Tenant, World, world};

/// Adds a run of `t` made `days_ago` days ago, with `adds` and `divides` of the given
/// statuses.
async fn run(w: &World, t: &Tenant, name: &str, days_ago: i64, statuses: [&str; 2]) {
    let s = w.scope(t);
    let at = Utc::now() - Duration::days(days_ago);
    let run = s
        .insert(fg_workflow_run::ActiveModel {
            repo_id: Set(t.key("FGRepository").to_owned()),
            run_id: Set(name.to_owned()),
            status: Set("completed".into()),
            created_at: Set(at),
            ..Default::default()
        })
        .await
        .unwrap();
    for (case, status) in w.cases(t).await.iter().zip(statuses) {
        s.insert(fg_occurrence::ActiveModel {
            test_id: Set(case.id.clone()),
            run_id: Set(run.id.clone()),
            status: Set(status.to_owned()),
            created_at: Set(at),
            ..Default::default()
        })
        .await
        .unwrap();
    }
}

async fn quarantine(w: &World, t: &Tenant, test: &str, state: FgQuarantineState, days: i64) {
    w.scope(t)
        .insert(fg_quarantine_decision::ActiveModel {
            test_id: Set(test.to_owned()),
            state: Set(state),
            rationale: Set(format!("{days} days")),
            until: Set(Some(Utc::now() + Duration::days(days))),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// A: the seeded run-1 (both failed, now), run-2 (now: adds passed, divides failed), run-3 (10
/// days ago: adds failed, divides passed); `adds` scored 0.9; a second cluster of 5
/// occurrences and no test case; quarantines active until in 3 and 20 days, one that ended
/// yesterday, one proposed for in 2 days. B: other statuses (a skipped one among them), scores
/// and quarantines.
async fn setup() -> World {
    let w = world().await;
    run(&w, &w.a, "run-2", 0, ["passed", "failed"]).await;
    run(&w, &w.a, "run-3", 10, ["failed", "passed"]).await;
    run(&w, &w.b, "run-2", 0, ["passed", "passed"]).await;
    run(&w, &w.b, "run-3", 1, ["skipped", "passed"]).await;
    for (t, score) in [(&w.a, 0.9), (&w.b, 0.1)] {
        let s = w.scope(t);
        let adds = &w.cases(t).await[0];
        let mut row: fg_flake_score::ActiveModel = s
            .find::<fg_flake_score::Entity>()
            .filter(fg_flake_score::Column::TestId.eq(adds.id.clone()))
            .one()
            .await
            .unwrap()
            .unwrap()
            .into();
        row.score = Set(score);
        s.update(row).await.unwrap();
        s.insert(fg_failure_cluster::ActiveModel {
            repo_id: Set(t.key("FGRepository").to_owned()),
            failure_msg_signature: Set("timeout".into()),
            test_ids: Set(Vec::new()),
            occurrence_count: Set(if score > 0.5 { 5 } else { 50 }),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let c = w.cases(&w.a).await;
    let (adds, divides) = (c[0].id.clone(), c[1].id.clone());
    quarantine(&w, &w.a, &adds, FgQuarantineState::Active, 3).await;
    quarantine(&w, &w.a, &divides, FgQuarantineState::Active, 20).await;
    quarantine(&w, &w.a, &divides, FgQuarantineState::Active, -1).await;
    quarantine(&w, &w.a, &adds, FgQuarantineState::Proposed, 2).await;
    let theirs = w.cases(&w.b).await[1].id.clone();
    quarantine(&w, &w.b, &theirs, FgQuarantineState::Active, 1).await;
    w
}

#[tokio::test]
async fn failure_rates_count_the_window_of_the_tenants_repository() {
    let w = setup().await;
    let repo = w.a.key("FGRepository");
    for (role, s) in w.both_roles(&w.a) {
        let week = reports::failure_rates(&s, repo, 7).await.unwrap();
        let got: Vec<(&str, i64, i64, f64)> = week
            .iter()
            .map(|r| (r.name.as_str(), r.runs, r.failures, r.rate))
            .collect();
        assert_eq!(got, [("divides", 2, 2, 1.0), ("adds", 2, 1, 0.5)], "{role}");
        assert!(week.iter().all(|r| r.suite == "unit"), "{role}");
        let month = reports::failure_rates(&s, repo, 30).await.unwrap();
        let got: Vec<(i64, i64)> = month.iter().map(|r| (r.runs, r.failures)).collect();
        assert_eq!(got, [(3, 2), (3, 2)], "{role}");
        // B's repository, from A's scope: nothing.
        let theirs = reports::failure_rates(&s, w.b.key("FGRepository"), 30)
            .await
            .unwrap();
        assert!(theirs.is_empty(), "{role}: {theirs:?}");
        // A skipped occurrence is not a run.
        let skipped = reports::failure_rates(&w.scope(&w.b), w.b.key("FGRepository"), 30)
            .await
            .unwrap();
        let got: Vec<(&str, i64, i64)> = skipped
            .iter()
            .map(|r| (r.name.as_str(), r.runs, r.failures))
            .collect();
        assert_eq!(
            got,
            [("adds", 2, 1), ("divides", 3, 1)],
            "{role}: B's rates"
        );
        // A window too long for the calendar is the whole history, not a panic.
        let all = reports::failure_rates(&s, repo, u32::MAX).await.unwrap();
        assert_eq!(all.len(), 2, "{role}");
        let all = reports::flakiest_tests(&s, repo, 10, u32::MAX)
            .await
            .unwrap();
        assert!(all.iter().all(|t| t.previous_rate.is_none()), "{role}");
    }
}

/// A ranked test as compared: name, score, recent and previous rates, trend.
type Ranked<'a> = (&'a str, f64, Option<f64>, Option<f64>, Option<f64>);

#[tokio::test]
async fn flakiest_tests_rank_by_score_with_their_trend() {
    let w = setup().await;
    let repo = w.a.key("FGRepository");
    for (role, s) in w.both_roles(&w.a) {
        let top = reports::flakiest_tests(&s, repo, 10, 7).await.unwrap();
        let got: Vec<Ranked> = top
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    t.score,
                    t.recent_rate,
                    t.previous_rate,
                    t.trend,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("adds", 0.9, Some(0.5), Some(1.0), Some(-0.5)),
                ("divides", 0.5, Some(1.0), Some(0.0), Some(1.0)),
            ],
            "{role}"
        );
        let one = reports::flakiest_tests(&s, repo, 1, 7).await.unwrap();
        assert_eq!(one.len(), 1, "{role}");
        // Over one day, the previous window (1-2 days ago) is empty: no trend.
        let day = reports::flakiest_tests(&s, repo, 10, 1).await.unwrap();
        assert!(day.iter().all(|t| t.trend.is_none()), "{role}: {day:?}");
        let theirs = reports::flakiest_tests(&s, w.b.key("FGRepository"), 10, 7)
            .await
            .unwrap();
        assert!(theirs.is_empty(), "{role}");
    }
}

#[tokio::test]
async fn failure_clusters_come_with_their_test_counts() {
    let w = setup().await;
    let repo = w.a.key("FGRepository");
    for (role, s) in w.both_roles(&w.a) {
        let clusters = reports::failure_clusters(&s, repo, 10).await.unwrap();
        let got: Vec<(&str, i32, i64)> = clusters
            .iter()
            .map(|c| {
                (
                    c.failure_msg_signature.as_str(),
                    c.occurrence_count,
                    c.test_count,
                )
            })
            .collect();
        assert_eq!(got, [("timeout", 5, 0), ("boom", 1, 2)], "{role}");
        let seeded: &ClusterSummary = &clusters[1];
        assert_eq!(seeded.id, w.a.key("FGFailureCluster"), "{role}");
        assert_eq!(
            reports::failure_clusters(&s, repo, 1).await.unwrap().len(),
            1,
            "{role}"
        );
        let theirs = reports::failure_clusters(&s, w.b.key("FGRepository"), 10)
            .await
            .unwrap();
        assert!(theirs.is_empty(), "{role}");
    }
}

#[tokio::test]
async fn expiring_quarantines_are_the_active_ones_ending_in_the_window() {
    let w = setup().await;
    let adds = w.cases(&w.a).await[0].id.clone();
    for (role, s) in w.both_roles(&w.a) {
        let week = reports::expiring_quarantines(&s, 7).await.unwrap();
        let got: Vec<(&str, &str, &str)> = week
            .iter()
            .map(|q| {
                (
                    q.test_id.as_str(),
                    q.test_name.as_str(),
                    q.rationale.as_str(),
                )
            })
            .collect();
        assert_eq!(got, [(adds.as_str(), "adds", "3 days")], "{role}");
        let month = reports::expiring_quarantines(&s, 30).await.unwrap();
        let got: Vec<&str> = month.iter().map(|q| q.rationale.as_str()).collect();
        assert_eq!(got, ["3 days", "20 days"], "{role}");
        assert!(month[0].until < month[1].until, "{role}");
        assert!(
            reports::expiring_quarantines(&s, 0)
                .await
                .unwrap()
                .is_empty(),
            "{role}"
        );
    }
}
