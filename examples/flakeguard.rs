//! FlakeGuard: from a repository to its test cases, their occurrences in CI runs, flake scores
//! and a quarantine decision, through one organization's `TenantScope`.
//!
//! ```text
//! cargo run --example flakeguard
//! ```
//!
//! It records a repository and twelve test cases, then 30 workflow runs, each with a job, and
//! the 360 occurrences of the tests in them, all in one transaction (`scope.transaction`). From
//! the occurrences it computes each test's failure rate and upserts it as the test's flake
//! score (keyed by "testId", so scoring again updates the same rows), lists the tests above a
//! score threshold (a join of FGTestCase on FGFlakeScore), proposes a quarantine for the
//! flakiest test and makes it ACTIVE, links an issue to it, groups the failures into failure
//! clusters linked to their test cases through the link table, and prints a summary.
//!
//! Without DATABASE_URL it starts a throwaway PostgreSQL from the machine's binaries (removed
//! when it exits) and connects as a role subject to row-level security. With
//! DATABASE_URL=postgres://user:password@host/db it migrates that database and writes its rows
//! there, in a new organization, so that it can run again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{TimeDelta, Utc};
use flakeguard_db::entity::enums::FgQuarantineState;
use flakeguard_db::entity::{
    fg_failure_cluster, fg_failure_cluster_to_fg_test_case, fg_flake_score, fg_issue_link, fg_job,
    fg_occurrence, fg_quarantine_decision, fg_repository, fg_test_case, fg_workflow_run,
    organization,
};
use flakeguard_db::sea_orm::{ActiveEnum, ColumnTrait, Condition, IntoActiveModel, Set};
use flakeguard_db::{Context, Error, Operation, OrgId, Result, TenantScope};

/// How many CI runs the example records.
const RUNS: usize = 30;

/// Tests scoring above this are listed as flaky.
const THRESHOLD: f64 = 0.2;

/// How a test fails, when it does.
#[derive(Clone, Copy)]
struct Failure {
    signature: &'static str,
    digest: &'static str,
    message: &'static str,
}

const TIMEOUT: Failure = Failure {
    signature: "TimeoutError: waiting for selector <*> exceeded <n>ms",
    digest: "st:4f1c9a0e",
    message: "TimeoutError: waiting for selector #pay-button exceeded 5000ms",
};
const CONN_RESET: Failure = Failure {
    signature: "ConnectionResetError: connection to <host> reset by peer",
    digest: "st:b7730d12",
    message: "ConnectionResetError: connection to db:5432 reset by peer",
};
const ROUNDING: Failure = Failure {
    signature: "AssertionError: expected <n> to equal <n>",
    digest: "st:19ee02c4",
    message: "AssertionError: expected 10.004 to equal 10.00",
};

/// The test cases: suite, class, name, file, owning team, and how often and how they fail.
const TESTS: [(&str, &str, &str, &str, &str, f64, Failure); 12] = [
    (
        "e2e",
        "CheckoutFlow",
        "pays_with_card",
        "e2e/checkout.spec.ts",
        "payments",
        0.45,
        TIMEOUT,
    ),
    (
        "e2e",
        "CheckoutFlow",
        "applies_coupon",
        "e2e/checkout.spec.ts",
        "payments",
        0.3,
        TIMEOUT,
    ),
    (
        "e2e",
        "LoginFlow",
        "redirects_after_login",
        "e2e/login.spec.ts",
        "identity",
        0.25,
        TIMEOUT,
    ),
    (
        "unit",
        "Cart",
        "adds_item",
        "src/cart.test.ts",
        "shop",
        0.0,
        ROUNDING,
    ),
    (
        "unit",
        "Cart",
        "removes_item",
        "src/cart.test.ts",
        "shop",
        0.0,
        ROUNDING,
    ),
    (
        "unit",
        "Cart",
        "computes_tax",
        "src/cart.test.ts",
        "shop",
        0.05,
        ROUNDING,
    ),
    (
        "unit",
        "Money",
        "rounds_half_even",
        "src/money.test.ts",
        "payments",
        0.1,
        ROUNDING,
    ),
    (
        "unit",
        "Money",
        "formats_currency",
        "src/money.test.ts",
        "payments",
        0.0,
        ROUNDING,
    ),
    (
        "integration",
        "OrdersApi",
        "creates_order",
        "it/orders.test.ts",
        "orders",
        0.3,
        CONN_RESET,
    ),
    (
        "integration",
        "OrdersApi",
        "lists_orders",
        "it/orders.test.ts",
        "orders",
        0.05,
        CONN_RESET,
    ),
    (
        "integration",
        "Inventory",
        "reserves_stock",
        "it/inventory.test.ts",
        "orders",
        0.0,
        CONN_RESET,
    ),
    (
        "integration",
        "Inventory",
        "releases_stock",
        "it/inventory.test.ts",
        "orders",
        0.15,
        CONN_RESET,
    ),
];

#[tokio::main]
async fn main() -> Result<()> {
    // `_throwaway` keeps the throwaway database alive until the end of `main`.
    let (db, _throwaway) = flakeguard_db::testing::connect_example().await?;
    let scope = db.scope(OrgId::generate());
    let org = scope
        .insert(organization::ActiveModel {
            name: Set("Acme".to_owned()),
            slug: Set(format!("acme-{}", scope.org_id())),
            ..Default::default()
        })
        .await?;
    println!("\norganization {} ({})", org.name, org.id);

    // ------------------------------------------------------------ repository, test cases
    println!("\n1. a repository and its test cases");
    let repo = scope
        .insert(fg_repository::ActiveModel {
            owner: Set("acme-corp".to_owned()),
            name: Set("shop".to_owned()),
            installation_id: Set("52114370".to_owned()),
            ..Default::default() // provider 'github'
        })
        .await?;
    println!(
        "  {} repository {}/{} ({})",
        repo.provider, repo.owner, repo.name, repo.id
    );
    let mut cases = Vec::new();
    for (suite, class, name, file, team, ..) in TESTS {
        let case = scope
            .insert(fg_test_case::ActiveModel {
                repo_id: Set(repo.id.clone()),
                suite: Set(suite.to_owned()),
                class_name: Set(Some(class.to_owned())),
                name: Set(name.to_owned()),
                file: Set(Some(file.to_owned())),
                owner_team: Set(Some(team.to_owned())),
                ..Default::default()
            })
            .await?;
        cases.push(case);
    }
    println!("  {} test cases, for example:", cases.len());
    for case in cases.iter().step_by(4) {
        println!("    {}", label(case));
    }

    // ------------------------------------------------------------ runs in one transaction
    println!("\n2. {RUNS} workflow runs, their jobs and occurrences, in one transaction");
    // Who fails in which run: decided up front from a fixed seed, so every run of the
    // example prints the same numbers.
    let mut rng = XorShift(0x5eed_f1a6_e6ad_0001);
    let outcomes: Vec<Vec<Option<Failure>>> = (0..RUNS)
        .map(|_| {
            TESTS
                .iter()
                .map(|t| (rng.next_f64() < t.5).then_some(t.6))
                .collect()
        })
        .collect();
    let durations: Vec<i32> = (0..RUNS * TESTS.len())
        .map(|_| 20 + (rng.next_f64() * 900.0) as i32)
        .collect();
    let test_ids: Vec<String> = cases.iter().map(|c| c.id.clone()).collect();
    let repo_id = repo.id.clone();
    let (runs, jobs, occurrences) = scope
        .transaction(move |tx| {
            Box::pin(async move {
                let mut rows = Vec::new();
                let mut jobs = 0;
                for (r, outcome) in outcomes.iter().enumerate() {
                    let failed = outcome.iter().any(Option::is_some);
                    let conclusion = if failed { "failure" } else { "success" };
                    let run = tx
                        .insert(fg_workflow_run::ActiveModel {
                            repo_id: Set(repo_id.clone()),
                            run_id: Set(format!("{}", 9_100_000 + r)),
                            status: Set("completed".to_owned()),
                            conclusion: Set(Some(conclusion.to_owned())),
                            ..Default::default()
                        })
                        .await?;
                    // FGJob is a child of FGWorkflowRun: no "orgId", its run's organization.
                    let job = tx
                        .insert(fg_job::ActiveModel {
                            run_id: Set(run.id.clone()),
                            job_id: Set(format!("{}-test", run.run_id)),
                            name: Set("test".to_owned()),
                            status: Set("completed".to_owned()),
                            conclusion: Set(Some(conclusion.to_owned())),
                            ..Default::default()
                        })
                        .await?;
                    jobs += 1;
                    for (t, (test_id, failure)) in test_ids.iter().zip(outcome).enumerate() {
                        rows.push(fg_occurrence::ActiveModel {
                            test_id: Set(test_id.clone()),
                            run_id: Set(run.id.clone()),
                            job_id: Set(Some(job.id.clone())),
                            status: Set(if failure.is_some() {
                                "failed"
                            } else {
                                "passed"
                            }
                            .to_owned()),
                            duration_ms: Set(durations.get(r * TESTS.len() + t).copied()),
                            failure_msg_signature: Set(failure.map(|f| f.signature.to_owned())),
                            failure_stack_digest: Set(failure.map(|f| f.digest.to_owned())),
                            failure_message: Set(failure.map(|f| f.message.to_owned())),
                            ..Default::default()
                        });
                    }
                }
                let occurrences = tx.insert_many(rows).await?;
                Ok::<_, Error>((outcomes.len(), jobs, occurrences))
            })
        })
        .await?;
    println!("  committed: {runs} runs, {jobs} jobs, {occurrences} occurrences");
    let failed_runs = scope
        .count::<fg_workflow_run::Entity>(fg_workflow_run::Column::Conclusion.eq("failure"))
        .await?;
    println!("  {failed_runs} of the runs failed");

    // ------------------------------------------------------------ flake scores
    println!("\n3. flake scores: each test's failure rate, upserted on testId");
    let scores = score_tests(&scope, &cases).await?;
    let stored = scope
        .count::<fg_flake_score::Entity>(Condition::all())
        .await?;
    println!("  {stored} scores stored");
    // A scheduled job scores again: the same rows are updated, none are added.
    let again = score_tests(&scope, &cases).await?;
    let same_rows = scores
        .iter()
        .all(|(test, s)| again.get(test).is_some_and(|a| a.id == s.id));
    let stored = scope
        .count::<fg_flake_score::Entity>(Condition::all())
        .await?;
    println!("  scored again: {stored} scores stored, the same rows: {same_rows}");

    println!("\n4. tests scoring above {THRESHOLD}, flakiest first");
    let flaky = scope
        .find::<fg_test_case::Entity>()
        .inner_join::<fg_flake_score::Entity>()
        .filter(fg_flake_score::Column::Score.gt(THRESHOLD))
        .order_by_desc(fg_flake_score::Column::Score)
        .all()
        .await?;
    for case in &flaky {
        let score = scores.get(&case.id).map(|s| s.score).unwrap_or_default();
        println!(
            "  {score:.3}  {:<40} {}",
            label(case),
            case.owner_team.as_deref().unwrap_or("-")
        );
    }
    let flakiest = flaky.first().ok_or_else(|| not_found("FGTestCase"))?;

    // ------------------------------------------------------------ quarantine, issue
    println!("\n5. a quarantine decision for {}", label(flakiest));
    let rate = scores
        .get(&flakiest.id)
        .map(|s| s.score)
        .unwrap_or_default();
    let proposed = scope
        .insert(fg_quarantine_decision::ActiveModel {
            test_id: Set(flakiest.id.clone()),
            rationale: Set(format!(
                "failed {:.0}% of the last {RUNS} runs, each time with a timeout",
                rate * 100.0
            )),
            ..Default::default() // state: PROPOSED
        })
        .await?;
    println!(
        "  {}: {} ({})",
        proposed.state.to_value(),
        proposed.rationale,
        proposed.id
    );
    let mut decision = proposed.into_active_model();
    decision.state = Set(FgQuarantineState::Active);
    decision.by_user = Set(Some("ada@acme.example".to_owned()));
    decision.until = Set(Some(Utc::now() + TimeDelta::days(14)));
    let active = scope.update(decision).await?;
    println!(
        "  {} by {} until {}",
        active.state.to_value(),
        active.by_user.as_deref().unwrap_or("-"),
        active
            .until
            .map(|t| t.date_naive().to_string())
            .unwrap_or_default()
    );

    println!("\n6. an issue linked to the quarantined test");
    // FGIssueLink is a child of FGTestCase: its organization is the test's.
    let issue = scope
        .insert(fg_issue_link::ActiveModel {
            test_id: Set(flakiest.id.clone()),
            url: Set("https://github.com/acme-corp/shop/issues/1412".to_owned()),
            ..Default::default() // provider 'github'
        })
        .await?;
    println!("  {} issue {}", issue.provider, issue.url);

    // ------------------------------------------------------------ failure clusters
    println!("\n7. failure clusters: the failures grouped by message signature");
    let failures = scope
        .find::<fg_occurrence::Entity>()
        .filter(fg_occurrence::Column::Status.eq("failed"))
        .order_by_asc(fg_occurrence::Column::Id)
        .all()
        .await?;
    let mut groups: BTreeMap<String, Vec<&fg_occurrence::Model>> = BTreeMap::new();
    for occ in &failures {
        if let Some(signature) = &occ.failure_msg_signature {
            groups.entry(signature.clone()).or_default().push(occ);
        }
    }
    let mut clusters = Vec::new();
    for (signature, occs) in &groups {
        let tests: BTreeSet<String> = occs.iter().map(|o| o.test_id.clone()).collect();
        let example = occs.first();
        let cluster = scope
            .insert(fg_failure_cluster::ActiveModel {
                repo_id: Set(repo.id.clone()),
                failure_msg_signature: Set(signature.clone()),
                failure_stack_digest: Set(example.and_then(|o| o.failure_stack_digest.clone())),
                test_ids: Set(tests.iter().cloned().collect()),
                example_message: Set(example.and_then(|o| o.failure_message.clone())),
                occurrence_count: Set(i32::try_from(occs.len()).unwrap_or(i32::MAX)),
                ..Default::default()
            })
            .await?;
        // The link table `_FGFailureClusterToFGTestCase` is a child of both sides.
        let links =
            scope
                .insert_many(tests.iter().map(|test| {
                    fg_failure_cluster_to_fg_test_case::ActiveModel {
                        a: Set(cluster.id.clone()),
                        b: Set(test.clone()),
                        ..Default::default()
                    }
                }))
                .await?;
        println!(
            "  {:>3} failures, {links} tests: {}",
            cluster.occurrence_count, cluster.failure_msg_signature
        );
        clusters.push(cluster);
    }
    let biggest = clusters
        .iter()
        .max_by_key(|c| c.occurrence_count)
        .ok_or_else(|| not_found("FGFailureCluster"))?;
    let members = scope
        .find::<fg_test_case::Entity>()
        .inner_join::<fg_failure_cluster::Entity>()
        .filter(fg_failure_cluster::Column::Id.eq(biggest.id.as_str()))
        .order_by_asc(fg_test_case::Column::Name)
        .all()
        .await?;
    println!("  the test cases of the biggest cluster, through the link table:");
    for case in &members {
        println!("    {}", label(case));
    }
    let of_flakiest = scope
        .find::<fg_failure_cluster::Entity>()
        .inner_join::<fg_test_case::Entity>()
        .filter(fg_test_case::Column::Id.eq(flakiest.id.as_str()))
        .all()
        .await?;
    println!(
        "  clusters {} belongs to: {:?}",
        label(flakiest),
        of_flakiest
            .iter()
            .map(|c| c.failure_msg_signature.as_str())
            .collect::<Vec<_>>()
    );

    // ------------------------------------------------------------ summary
    println!("\nsummary for {}:", org.name);
    let all = Condition::all;
    let rows = [
        (
            "FGRepository",
            scope.count::<fg_repository::Entity>(all()).await?,
        ),
        (
            "FGWorkflowRun",
            scope.count::<fg_workflow_run::Entity>(all()).await?,
        ),
        ("FGJob", scope.count::<fg_job::Entity>(all()).await?),
        (
            "FGTestCase",
            scope.count::<fg_test_case::Entity>(all()).await?,
        ),
        (
            "FGOccurrence",
            scope.count::<fg_occurrence::Entity>(all()).await?,
        ),
        (
            "FGFlakeScore",
            scope.count::<fg_flake_score::Entity>(all()).await?,
        ),
        (
            "FGQuarantineDecision",
            scope.count::<fg_quarantine_decision::Entity>(all()).await?,
        ),
        (
            "FGIssueLink",
            scope.count::<fg_issue_link::Entity>(all()).await?,
        ),
        (
            "FGFailureCluster",
            scope.count::<fg_failure_cluster::Entity>(all()).await?,
        ),
        (
            "_FGFailureClusterToFGTestCase",
            scope
                .count::<fg_failure_cluster_to_fg_test_case::Entity>(all())
                .await?,
        ),
    ];
    for (table, n) in rows {
        println!("  {table:<30} {n}");
    }
    let failed = scope
        .count::<fg_occurrence::Entity>(fg_occurrence::Column::Status.eq("failed"))
        .await?;
    let quarantined = scope
        .count::<fg_quarantine_decision::Entity>(
            fg_quarantine_decision::Column::State.eq(FgQuarantineState::Active),
        )
        .await?;
    println!(
        "  {failed} of {occurrences} occurrences failed; {} tests score above {THRESHOLD}; \
         {quarantined} quarantined",
        flaky.len()
    );
    println!("\ndone");
    Ok(())
}

/// Computes each test's failure rate over its occurrences and upserts it as the test's flake
/// score; returns the stored scores by test id.
async fn score_tests(
    scope: &TenantScope,
    cases: &[fg_test_case::Model],
) -> Result<HashMap<String, fg_flake_score::Model>> {
    let mut scores = HashMap::new();
    for case in cases {
        let of_test = fg_occurrence::Column::TestId.eq(case.id.as_str());
        let total = scope
            .count::<fg_occurrence::Entity>(of_test.clone())
            .await?;
        let failed = scope
            .count::<fg_occurrence::Entity>(
                Condition::all()
                    .add(of_test)
                    .add(fg_occurrence::Column::Status.eq("failed")),
            )
            .await?;
        let score = if total == 0 {
            0.0
        } else {
            failed as f64 / total as f64
        };
        let stored = scope
            .upsert(
                fg_flake_score::ActiveModel {
                    test_id: Set(case.id.clone()),
                    score: Set(score),
                    window_n: Set(i32::try_from(total).unwrap_or(i32::MAX)),
                    ..Default::default()
                },
                [fg_flake_score::Column::TestId],
            )
            .await?;
        scores.insert(case.id.clone(), stored);
    }
    Ok(scores)
}

/// `suite/Class.name`.
fn label(case: &fg_test_case::Model) -> String {
    format!(
        "{}/{}.{}",
        case.suite,
        case.class_name.as_deref().unwrap_or("-"),
        case.name
    )
}

/// A small deterministic generator (xorshift64), so that the example needs no extra crate.
struct XorShift(u64);

impl XorShift {
    /// A number in [0, 1).
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// The error for a row that the example has just written and cannot find again.
fn not_found(table: &'static str) -> Error {
    Error::NotFound {
        context: Context {
            operation: Operation::Find,
            tenant: None,
            table: Some(table),
        },
    }
}
