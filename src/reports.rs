//! FlakeGuard's everyday read paths, as typed functions over a [`TenantScope`]: a repository's
//! per-test failure rates, its flakiest tests with their trend, its failure clusters with
//! their test counts, and the quarantines about to expire.
//!
//! They are written with the scope's query shapes alone (no raw SQL), so every table they
//! touch carries the tenant predicate from the crate as well as from row-level security. They
//! also show the shapes at work: aggregates into a struct, an inner and a left join through a
//! link table, a second query keyed by the first one's rows.
//!
//! ```no_run
//! # async fn f(scope: flakeguard_db::TenantScope, repo: &str) -> flakeguard_db::Result<()> {
//! use flakeguard_db::reports;
//! for t in reports::failure_rates(&scope, repo, 7).await? {
//!     println!("{} failed {} of {} runs ({:.0}%)", t.name, t.failures, t.runs, t.rate * 100.0);
//! }
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! Each function is one statement, but [`flakiest_tests`], which is two, in one read-only
//! transaction ([`TenantScope::read_only`]): the top tests by score first (the
//! `("orgId", "score")` index), then the failure counts of just those tests over two windows. A
//! single statement would aggregate every test's occurrences before it could order by score. The benchmark compares each function with the same SQL written by
//! hand and sent without row-level security (examples/bench, `--only reports`).

use chrono::{DateTime, Datelike, Duration, Utc};
use flakeguard_entity::enums::FgQuarantineState;
use flakeguard_entity::{
    fg_failure_cluster, fg_failure_cluster_to_fg_test_case as cluster_test, fg_flake_score,
    fg_occurrence, fg_quarantine_decision, fg_test_case,
};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func};
use sea_orm::{ColumnTrait, Condition, FromQueryResult};
use serde::Serialize;

use crate::{Result, TenantScope};

/// One test's runs and failures over a window, from [`failure_rates`].
#[derive(Debug, Clone, PartialEq, FromQueryResult, Serialize)]
pub struct FailureRate {
    /// The test case ("FGTestCase"."id").
    pub test_id: String,
    /// Its suite.
    pub suite: String,
    /// Its class, if any.
    pub class_name: Option<String>,
    /// Its name.
    pub name: String,
    /// Its occurrences in the window that ran (skipped ones are not counted).
    pub runs: i64,
    /// Those that failed.
    pub failures: i64,
    /// `failures / runs`.
    pub rate: f64,
}

/// A test ranked by flake score, from [`flakiest_tests`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlakyTest {
    /// The test case.
    pub test_id: String,
    /// Its name.
    pub name: String,
    /// Its flake score ("FGFlakeScore"."score").
    pub score: f64,
    /// Its failure rate over the last window, `None` without runs there.
    pub recent_rate: Option<f64>,
    /// Its failure rate over the window before, `None` without runs there.
    pub previous_rate: Option<f64>,
    /// The change of the failure rate from the previous window to the last one (positive:
    /// failing more often); `None` unless both windows have runs.
    pub trend: Option<f64>,
}

/// A failure cluster with the number of its test cases, from [`failure_clusters`].
#[derive(Debug, Clone, PartialEq, FromQueryResult, Serialize)]
pub struct ClusterSummary {
    /// The cluster.
    pub id: String,
    /// The normalized failure message it groups.
    pub failure_msg_signature: String,
    /// One message of it, if kept.
    pub example_message: Option<String>,
    /// Its occurrences ("occurrenceCount").
    pub occurrence_count: i32,
    /// Its test cases, through the link table.
    pub test_count: i64,
}

/// An active quarantine that ends soon, from [`expiring_quarantines`].
#[derive(Debug, Clone, PartialEq, FromQueryResult, Serialize)]
pub struct ExpiringQuarantine {
    /// The decision ("FGQuarantineDecision"."id").
    pub id: String,
    /// The quarantined test case.
    pub test_id: String,
    /// Its name.
    pub test_name: String,
    /// Why it was quarantined.
    pub rationale: String,
    /// When the quarantine ends.
    pub until: DateTime<Utc>,
}

/// `now - days`; `None` when that is before the year 1, a window that holds every row there
/// is (and a time PostgreSQL may not hold).
fn days_ago(now: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    now.checked_sub_signed(Duration::days(i64::from(days)))
        .filter(|t| t.year() >= 1)
}

/// `now + days`; `None` after the year 9999, a window that holds every row there is.
fn days_ahead(now: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    now.checked_add_signed(Duration::days(i64::from(days)))
        .filter(|t| t.year() <= 9999)
}

/// `column >= since`, or no condition without `since`.
fn since(column: impl ColumnTrait, since: Option<DateTime<Utc>>) -> Condition {
    match since {
        Some(t) => Condition::all().add(column.gte(t)),
        None => Condition::all(),
    }
}

/// `SUM(CASE WHEN "FGOccurrence"."status" = 'failed' AND extra THEN 1 ELSE 0 END)`.
fn failures_where(extra: Option<Condition>) -> Expr {
    count_where(
        Condition::all()
            .add(fg_occurrence::Column::Status.eq("failed"))
            .add_option(extra),
    )
}

/// `SUM(CASE WHEN cond THEN 1 ELSE 0 END)`.
fn count_where(cond: Condition) -> Expr {
    Func::sum(Expr::case(cond, 1).finally(0)).into()
}

/// Repository `repo_id`'s tests with their runs and failures over the last `days` days, the
/// highest failure rate first (then by test id). A skipped occurrence is not a run; tests
/// without runs in the window are left out; a repository of another organization gives an
/// empty list.
pub async fn failure_rates(
    scope: &TenantScope,
    repo_id: &str,
    days: u32,
) -> Result<Vec<FailureRate>> {
    let start = days_ago(Utc::now(), days);
    let runs = Expr::col((fg_occurrence::Entity, fg_occurrence::Column::Id)).count();
    let rate = failures_where(None)
        .cast_as(Alias::new("float8"))
        .div(runs.clone());
    scope
        .find::<fg_occurrence::Entity>()
        .inner_join::<fg_test_case::Entity>()
        .filter(fg_test_case::Column::RepoId.eq(repo_id))
        .filter(since(fg_occurrence::Column::CreatedAt, start))
        .filter(fg_occurrence::Column::Status.ne("skipped"))
        .select_only()
        .column_as(fg_occurrence::Column::TestId, "test_id")
        .column(fg_test_case::Column::Suite)
        .column_as(fg_test_case::Column::ClassName, "class_name")
        .column(fg_test_case::Column::Name)
        .column_as(runs, "runs")
        .expr_as(failures_where(None), "failures")
        .expr_as(rate.clone(), "rate")
        .group_by(fg_occurrence::Column::TestId)
        .group_by(fg_test_case::Column::Suite)
        .group_by(fg_test_case::Column::ClassName)
        .group_by(fg_test_case::Column::Name)
        .order_by_desc(rate)
        .order_by_asc(fg_occurrence::Column::TestId)
        .into_model::<FailureRate>()
        .read_by_name()
        .all()
        .await
}

#[derive(FromQueryResult)]
struct Scored {
    test_id: String,
    name: String,
    score: f64,
}

#[derive(FromQueryResult)]
struct Windows {
    test_id: String,
    recent_runs: i64,
    recent_failures: i64,
    previous_runs: i64,
    previous_failures: i64,
}

/// Repository `repo_id`'s `limit` tests of the highest flake score (then by test id), each
/// with its failure rate over the last `days` days and over the `days` days before, whose
/// difference is its [`trend`](FlakyTest::trend).
pub async fn flakiest_tests(
    scope: &TenantScope,
    repo_id: &str,
    limit: u64,
    days: u32,
) -> Result<Vec<FlakyTest>> {
    let now = Utc::now();
    let (mid, start) = (days_ago(now, days), days_ago(now, days.saturating_mul(2)));
    let repo_id = repo_id.to_owned();
    // One snapshot for both statements, and no COMMIT to wait for.
    let (top, windows) = scope
        .read_only(|tx| Box::pin(async move { ranked(tx, &repo_id, limit, mid, start).await }))
        .await?;
    let rate = |failures: i64, runs: i64| (runs > 0).then(|| failures as f64 / runs as f64);
    Ok(top
        .into_iter()
        .map(|t| {
            let w = windows.iter().find(|w| w.test_id == t.test_id);
            let recent_rate = w.and_then(|w| rate(w.recent_failures, w.recent_runs));
            let previous_rate = w.and_then(|w| rate(w.previous_failures, w.previous_runs));
            FlakyTest {
                recent_rate,
                previous_rate,
                trend: recent_rate.zip(previous_rate).map(|(r, p)| r - p),
                test_id: t.test_id,
                name: t.name,
                score: t.score,
            }
        })
        .collect())
}

/// The top `limit` tests of `repo_id` by score, and their two windows' counts.
async fn ranked(
    tx: &TenantScope,
    repo_id: &str,
    limit: u64,
    mid: Option<DateTime<Utc>>,
    start: Option<DateTime<Utc>>,
) -> Result<(Vec<Scored>, Vec<Windows>)> {
    let recent = || since(fg_occurrence::Column::CreatedAt, mid);
    // Before `mid`; nothing when the last window already reaches back past the year 1.
    let previous = || match mid {
        Some(mid) => Condition::all().add(fg_occurrence::Column::CreatedAt.lt(mid)),
        None => Condition::all().add(Expr::val(false)),
    };
    let top = tx
        .find::<fg_flake_score::Entity>()
        .inner_join::<fg_test_case::Entity>()
        .filter(fg_test_case::Column::RepoId.eq(repo_id))
        .select_only()
        .column_as(fg_flake_score::Column::TestId, "test_id")
        .column(fg_test_case::Column::Name)
        .column(fg_flake_score::Column::Score)
        .order_by_desc(fg_flake_score::Column::Score)
        .order_by_asc(fg_flake_score::Column::TestId)
        .limit(limit)
        .into_model::<Scored>()
        .read_by_name()
        .all()
        .await?;
    if top.is_empty() {
        return Ok((top, Vec::new()));
    }
    let windows = tx
        .find::<fg_occurrence::Entity>()
        .filter(fg_occurrence::Column::TestId.is_in(top.iter().map(|t| t.test_id.clone())))
        .filter(since(fg_occurrence::Column::CreatedAt, start))
        .select_only()
        .column_as(fg_occurrence::Column::TestId, "test_id")
        .expr_as(count_where(recent()), "recent_runs")
        .expr_as(failures_where(Some(recent())), "recent_failures")
        .expr_as(count_where(previous()), "previous_runs")
        .expr_as(failures_where(Some(previous())), "previous_failures")
        .group_by(fg_occurrence::Column::TestId)
        .into_model::<Windows>()
        .read_by_name()
        .all()
        .await?;
    Ok((top, windows))
}

/// Repository `repo_id`'s `limit` failure clusters of the most occurrences (then by id), each
/// with the number of its test cases (clusters without any count 0).
pub async fn failure_clusters(
    scope: &TenantScope,
    repo_id: &str,
    limit: u64,
) -> Result<Vec<ClusterSummary>> {
    scope
        .find::<fg_failure_cluster::Entity>()
        .left_join::<cluster_test::Entity>()
        .filter(fg_failure_cluster::Column::RepoId.eq(repo_id))
        .select_only()
        .column(fg_failure_cluster::Column::Id)
        .column_as(
            fg_failure_cluster::Column::FailureMsgSignature,
            "failure_msg_signature",
        )
        .column_as(
            fg_failure_cluster::Column::ExampleMessage,
            "example_message",
        )
        .column_as(
            fg_failure_cluster::Column::OccurrenceCount,
            "occurrence_count",
        )
        .column_as(cluster_test::Column::B.count(), "test_count")
        .group_by(fg_failure_cluster::Column::Id)
        .order_by_desc(fg_failure_cluster::Column::OccurrenceCount)
        .order_by_asc(fg_failure_cluster::Column::Id)
        .limit(limit)
        .into_model::<ClusterSummary>()
        .read_by_name()
        .all()
        .await
}

/// The active quarantines that end within the next `days` days (and have not ended), the
/// soonest first (then by id), with their test's name.
pub async fn expiring_quarantines(
    scope: &TenantScope,
    days: u32,
) -> Result<Vec<ExpiringQuarantine>> {
    let now = Utc::now();
    let end = match days_ahead(now, days) {
        Some(end) => Condition::all().add(fg_quarantine_decision::Column::Until.lte(end)),
        None => Condition::all(),
    };
    scope
        .find::<fg_quarantine_decision::Entity>()
        .inner_join::<fg_test_case::Entity>()
        .filter(fg_quarantine_decision::Column::State.eq(FgQuarantineState::Active))
        .filter(fg_quarantine_decision::Column::Until.gte(now))
        .filter(end)
        .select_only()
        .column(fg_quarantine_decision::Column::Id)
        .column_as(fg_quarantine_decision::Column::TestId, "test_id")
        .column_as(fg_test_case::Column::Name, "test_name")
        .column(fg_quarantine_decision::Column::Rationale)
        .column(fg_quarantine_decision::Column::Until)
        .order_by_asc(fg_quarantine_decision::Column::Until)
        .order_by_asc(fg_quarantine_decision::Column::Id)
        .into_model::<ExpiringQuarantine>()
        .read_by_name()
        .all()
        .await
}
