//! GitHub: the tables the GitHub App integration fills, written and read through one
//! organization's `TenantScope`.
//!
//! ```text
//! cargo run --example github
//! ```
//!
//! It records an installation (whose id the caller supplies: GitHub's installation id as text),
//! a repository, workflow runs with their jobs and artifacts (child tables, which belong to the
//! organization of their parent run), a check run, a JUnit test suite and its test results. Then
//! it queries them with filters and ordering, pages through the test results, completes the
//! check run, upserts a flake detection on (orgId, testName, repositoryId), reads jobs on their
//! own and paired with their runs, deletes an artifact and the results of an old run, and shows
//! that another organization cannot attach a job to this organization's run.
//!
//! Without DATABASE_URL it starts a throwaway PostgreSQL from the machine's binaries (removed
//! when it exits) and connects as a role subject to row-level security. With
//! DATABASE_URL=postgres://user:password@host/db it migrates that database and writes its rows
//! there, in new organizations with GitHub ids derived from the clock, so that it can run again.

use chrono::{TimeDelta, Utc};
use flakeguard_db::entity::{
    artifact, check_run, flake_detection, installation, organization, repository, test_result,
    test_suite, workflow_job, workflow_run,
};
use flakeguard_db::sea_orm::{ColumnTrait, Condition, IntoActiveModel, Set};
use flakeguard_db::testing::{expect_nothing, expect_refused};
use flakeguard_db::{Context, Error, Operation, OrgId};
use serde_json::json;

/// The test classes and methods the newest run reports: 24 results.
const CLASSES: [&str; 3] = ["CartTest", "CheckoutTest", "PaymentTest"];
const METHODS: [&str; 8] = [
    "adds_item",
    "removes_item",
    "applies_coupon",
    "rejects_expired_coupon",
    "computes_tax",
    "rounds_total",
    "handles_timeout",
    "retries_payment",
];

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // `_throwaway` keeps the throwaway database alive until the end of `main`.
    let (db, _throwaway) = flakeguard_db::testing::connect_example().await?;
    let acme = db.scope(OrgId::generate());
    let org = acme
        .insert(organization::ActiveModel {
            name: Set("Acme".to_owned()),
            slug: Set(format!("acme-{}", acme.org_id())),
            github_login: Set(Some("acme-corp".to_owned())),
            ..Default::default()
        })
        .await?;
    println!("\norganization {} ({})", org.name, org.id);

    // GitHub ids are unique across the whole database, whichever organization holds them:
    // derived from the clock, so that the example can run again against DATABASE_URL.
    let gh = Utc::now().timestamp_micros();
    let now = Utc::now();

    // ------------------------------------------------------------ installation, repository
    println!("\n1. the installation: its id is supplied, GitHub's installation id as text");
    let refused = acme
        .insert(installation::ActiveModel {
            github_installation_id: Set(gh),
            account_login: Set("acme-corp".to_owned()),
            account_id: Set(gh + 1),
            account_type: Set("Organization".to_owned()),
            ..Default::default()
        })
        .await;
    expect_refused("without an id", refused)?;
    let inst = acme
        .insert(installation::ActiveModel {
            id: Set(gh.to_string()),
            github_installation_id: Set(gh),
            account_login: Set("acme-corp".to_owned()),
            account_id: Set(gh + 1),
            account_type: Set("Organization".to_owned()),
            repository_selection: Set("all".to_owned()),
            permissions: Set(json!({ "checks": "write", "actions": "read", "metadata": "read" })),
            events: Set(vec![
                "check_run".to_owned(),
                "workflow_run".to_owned(),
                "workflow_job".to_owned(),
            ]),
            last_sync_at: Set(Some(now)),
            ..Default::default()
        })
        .await?;
    println!(
        "  installation {} on {} ({}), events {:?}, sync {}",
        inst.id, inst.account_login, inst.account_type, inst.events, inst.sync_status
    );

    println!("\n2. a repository of the installation");
    let repo = acme
        .insert(repository::ActiveModel {
            github_id: Set(gh),
            node_id: Set(format!("R_kgDO{gh}")),
            name: Set("shop".to_owned()),
            full_name: Set("acme-corp/shop".to_owned()),
            owner: Set("acme-corp".to_owned()),
            private: Set(true),
            installation_id: Set(inst.id.clone()),
            ..Default::default() // defaultBranch 'main', isActive true, settings {}
        })
        .await?;
    println!(
        "  {} ({}), default branch {}, private {}",
        repo.full_name, repo.id, repo.default_branch, repo.private
    );

    // ------------------------------------------------------------ runs, jobs, artifacts
    println!("\n3. three workflow runs, each with a build and a test job");
    let runs_spec = [
        ("main", "failure", 50),
        ("feature/coupons", "success", 26),
        ("main", "failure", 2),
    ];
    let mut runs = Vec::new();
    for (i, (branch, conclusion, hours_ago)) in (0_i64..).zip(runs_spec) {
        let run = acme
            .insert(workflow_run::ActiveModel {
                github_id: Set(gh + i),
                name: Set(Some("CI".to_owned())),
                head_branch: Set(branch.to_owned()),
                head_sha: Set(format!("{:040x}", gh + i)),
                status: Set("completed".to_owned()),
                conclusion: Set(Some(conclusion.to_owned())),
                workflow_id: Set(4_200_000),
                workflow_name: Set("CI".to_owned()),
                repository_id: Set(repo.id.clone()),
                installation_id: Set(inst.id.clone()),
                run_started_at: Set(Some(now - TimeDelta::hours(hours_ago))),
                ..Default::default()
            })
            .await?;
        for (j, job_name) in (0_i64..).zip(["build", "test"]) {
            // A child row: no "orgId"; the scope checks that its run belongs to this tenant.
            let job_conclusion = if job_name == "test" {
                conclusion
            } else {
                "success"
            };
            acme.insert(workflow_job::ActiveModel {
                github_id: Set(gh + 10 * i + j),
                name: Set(job_name.to_owned()),
                status: Set("completed".to_owned()),
                conclusion: Set(Some(job_conclusion.to_owned())),
                workflow_run_id: Set(run.id.clone()),
                started_at: Set(run.run_started_at),
                steps: Set(json!([
                    { "name": "checkout", "conclusion": "success" },
                    { "name": job_name, "conclusion": job_conclusion },
                ])),
                ..Default::default()
            })
            .await?;
        }
        println!(
            "  run {} on {}: {} ({})",
            run.github_id,
            run.head_branch,
            run.conclusion.as_deref().unwrap_or("-"),
            run.id
        );
        runs.push(run);
    }
    let (old_run, latest_run) = match runs.as_slice() {
        [first, .., last] => (first.clone(), last.clone()),
        _ => return Err(not_found("WorkflowRun").into()),
    };

    println!("\n4. artifacts of the latest run (child rows too)");
    let mut artifacts = Vec::new();
    for (k, (name, kind, size)) in (0_i64..).zip([
        ("junit-report", "junit", 48_213_i64),
        ("coverage", "coverage", 1_904_331),
    ]) {
        let a = acme
            .insert(artifact::ActiveModel {
                github_id: Set(gh + k),
                name: Set(name.to_owned()),
                r#type: Set(kind.to_owned()),
                size_in_bytes: Set(size),
                url: Set(format!(
                    "https://api.github.com/repos/acme-corp/shop/actions/artifacts/{}",
                    gh + k
                )),
                archive_download_url: Set(format!(
                    "https://api.github.com/repos/acme-corp/shop/actions/artifacts/{}/zip",
                    gh + k
                )),
                workflow_run_id: Set(latest_run.id.clone()),
                expires_at: Set(now + TimeDelta::days(90)),
                ..Default::default()
            })
            .await?;
        println!(
            "  {} ({}, {} bytes): {}",
            a.name, a.r#type, a.size_in_bytes, a.id
        );
        artifacts.push(a);
    }

    println!("\n5. a check run for the latest run, in progress");
    let check = acme
        .insert(check_run::ActiveModel {
            github_id: Set(gh),
            name: Set("FlakeGuard".to_owned()),
            head_sha: Set(latest_run.head_sha.clone()),
            status: Set("in_progress".to_owned()),
            started_at: Set(Some(now)),
            repository_id: Set(repo.id.clone()),
            installation_id: Set(inst.id.clone()),
            workflow_run_id: Set(Some(latest_run.id.clone())),
            ..Default::default()
        })
        .await?;
    println!(
        "  check run {} {:?}, conclusion {:?}",
        check.name, check.status, check.conclusion
    );

    // ------------------------------------------------------------ suite and results
    println!("\n6. the latest run's JUnit report: a test suite and its results (insert_many)");
    let latest_test_job = acme
        .find::<workflow_job::Entity>()
        .filter(
            Condition::all()
                .add(workflow_job::Column::WorkflowRunId.eq(latest_run.id.as_str()))
                .add(workflow_job::Column::Name.eq("test")),
        )
        .one()
        .await?
        .ok_or_else(|| not_found("WorkflowJob"))?;
    let statuses: Vec<&str> = (0..CLASSES.len() * METHODS.len())
        .map(|i| match i {
            _ if i % 5 == 3 => "failed",
            _ if i % 11 == 5 => "skipped",
            _ => "passed",
        })
        .collect();
    let failures = statuses.iter().filter(|s| **s == "failed").count();
    let skipped = statuses.iter().filter(|s| **s == "skipped").count();
    let suite = acme
        .insert(test_suite::ActiveModel {
            name: Set("shop.unit".to_owned()),
            package: Set(Some("shop".to_owned())),
            hostname: Set(Some("runner-7".to_owned())),
            tests: Set(as_int(statuses.len())),
            failures: Set(as_int(failures)),
            skipped: Set(as_int(skipped)),
            time: Set(Some(4.21)),
            run_id: Set(Some(latest_run.github_id.to_string())),
            job_name: Set(Some("test".to_owned())),
            repository_id: Set(repo.id.clone()),
            check_run_id: Set(Some(check.id.clone())),
            workflow_job_id: Set(Some(latest_test_job.id.clone())),
            properties: Set(json!({ "python": "3.12" })),
            ..Default::default()
        })
        .await?;
    println!(
        "  suite {}: {} tests, {} failures, {} skipped",
        suite.name, suite.tests, suite.failures, suite.skipped
    );
    let results = CLASSES
        .iter()
        .flat_map(|class| METHODS.iter().map(move |method| (*class, *method)))
        .zip(&statuses)
        .enumerate()
        .map(|(i, ((class, method), status))| test_result::ActiveModel {
            name: Set(method.to_owned()),
            suite: Set(suite.name.clone()),
            class: Set(Some(class.to_owned())),
            test_full_name: Set(format!("{class}.{method}")),
            file: Set(Some(format!("tests/test_{}.py", class.to_lowercase()))),
            status: Set((*status).to_owned()),
            time: Set(0.05 + 0.013 * i as f64),
            message: Set((*status == "failed").then(|| "AssertionError: 41 != 42".to_owned())),
            run_id: Set(latest_run.github_id.to_string()),
            job_name: Set(Some("test".to_owned())),
            repository_id: Set(repo.id.clone()),
            test_suite_id: Set(Some(suite.id.clone())),
            check_run_id: Set(Some(check.id.clone())),
            workflow_job_id: Set(Some(latest_test_job.id.clone())),
            ..Default::default()
        });
    let written = acme.insert_many(results).await?;
    println!("  {written} test results written");
    // The oldest run's report, of a suite since removed. (A result is unique per repository,
    // testFullName, file and suite, not per run: a later run of the same test updates its row.)
    let legacy =
        ["LegacyCartTest", "LegacyCouponTest"]
            .iter()
            .map(|class| test_result::ActiveModel {
                name: Set("smoke".to_owned()),
                suite: Set("shop.legacy".to_owned()),
                class: Set(Some((*class).to_owned())),
                test_full_name: Set(format!("{class}.smoke")),
                file: Set(Some("tests/legacy.py".to_owned())),
                status: Set("passed".to_owned()),
                time: Set(0.2),
                run_id: Set(old_run.github_id.to_string()),
                repository_id: Set(repo.id.clone()),
                ..Default::default()
            });
    let written = acme.insert_many(legacy).await?;
    println!("  {written} results of the oldest run written");

    // ------------------------------------------------------------ queries
    println!("\n7. find with filters and ordering");
    let failed_main = acme
        .find::<workflow_run::Entity>()
        .filter(
            Condition::all()
                .add(workflow_run::Column::HeadBranch.eq("main"))
                .add(workflow_run::Column::Conclusion.eq("failure")),
        )
        .order_by_desc(workflow_run::Column::RunStartedAt)
        .all()
        .await?;
    println!("  failed runs on main, newest first:");
    for run in &failed_main {
        println!(
            "    run {} started {}",
            run.github_id,
            run.run_started_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        );
    }
    let slowest_failures = acme
        .find::<test_result::Entity>()
        .filter(test_result::Column::Status.eq("failed"))
        .order_by_desc(test_result::Column::Time)
        .limit(3)
        .all()
        .await?;
    println!("  the three slowest failed tests:");
    for r in &slowest_failures {
        println!("    {:<32} {:.3}s", r.test_full_name, r.time);
    }
    let main_jobs = acme
        .find::<workflow_job::Entity>()
        .inner_join::<workflow_run::Entity>()
        .filter(workflow_run::Column::HeadBranch.eq("main"))
        .count()
        .await?;
    println!("  jobs of runs on main (inner join on WorkflowRun): {main_jobs}");

    println!("\n8. page through the latest run's results, 10 a page");
    let mut page = 0;
    loop {
        let p = acme
            .find::<test_result::Entity>()
            .filter(test_result::Column::RunId.eq(latest_run.github_id.to_string()))
            .order_by_asc(test_result::Column::TestFullName)
            .page(page, 10)
            .await?;
        if p.items.is_empty() {
            break;
        }
        let first = p.items.first().map(|r| r.test_full_name.as_str());
        let last = p.items.last().map(|r| r.test_full_name.as_str());
        println!(
            "  page {} of {} rows: {} rows, {} .. {}",
            p.page,
            p.total,
            p.items.len(),
            first.unwrap_or("-"),
            last.unwrap_or("-")
        );
        page += 1;
    }

    println!("\n9. complete the check run: update its conclusion");
    let mut done = check.into_active_model();
    done.status = Set("completed".to_owned());
    done.conclusion = Set(Some("failure".to_owned()));
    done.completed_at = Set(Some(Utc::now()));
    done.output = Set(json!({
        "title": format!("{failures} failing tests"),
        "summary": "1 test looks flaky: CheckoutTest.handles_timeout",
    }));
    let check = acme.update(done).await?;
    println!(
        "  check run {} {:?}, conclusion {:?}, output title {}",
        check.name, check.status, check.conclusion, check.output["title"]
    );

    println!("\n10. upsert a flake detection twice on (orgId, testName, repositoryId)");
    let flaky_result = acme
        .find::<test_result::Entity>()
        .filter(test_result::Column::TestFullName.eq("CheckoutTest.handles_timeout"))
        .one()
        .await?
        .ok_or_else(|| not_found("TestResult"))?;
    let key = [
        flake_detection::Column::OrgId,
        flake_detection::Column::TestName,
        flake_detection::Column::RepositoryId,
    ];
    let mut first_id = None;
    for (failed, total, confidence, action) in
        [(1, 3, 0.35, None), (4, 10, 0.86, Some("quarantine"))]
    {
        let d = acme
            .upsert(
                flake_detection::ActiveModel {
                    test_name: Set(flaky_result.test_full_name.clone()),
                    repository_id: Set(repo.id.clone()),
                    installation_id: Set(inst.id.clone()),
                    check_run_id: Set(Some(check.id.clone())),
                    test_result_id: Set(Some(flaky_result.id.clone())),
                    is_flaky: Set(confidence > 0.8),
                    confidence: Set(confidence),
                    failure_pattern: Set(Some("TimeoutError after 5000ms".to_owned())),
                    historical_failures: Set(failed),
                    total_runs: Set(total),
                    failure_rate: Set(f64::from(failed) / f64::from(total)),
                    last_failure_at: Set(Some(Utc::now())),
                    suggested_action: Set(action.map(str::to_owned)),
                    ..Default::default()
                },
                key,
            )
            .await?;
        let same = match &first_id {
            None => "",
            Some(id) if *id == d.id => " (the same row, updated)",
            Some(_) => " (A NEW ROW)",
        };
        println!(
            "  {}: flaky {}, confidence {:.2}, {}/{} failed, action {:?}, row {}{same}",
            d.test_name,
            d.is_flaky,
            d.confidence,
            d.historical_failures,
            d.total_runs,
            d.suggested_action,
            d.id
        );
        first_id.get_or_insert(d.id);
    }

    // ------------------------------------------------------------ child rows
    println!("\n11. child rows: WorkflowJob read on its own, then paired with its run");
    let failed_jobs = acme
        .find::<workflow_job::Entity>()
        .filter(workflow_job::Column::Conclusion.eq("failure"))
        .order_by_asc(workflow_job::Column::GithubId)
        .all()
        .await?;
    println!("  failed jobs: {}", failed_jobs.len());
    for job in &failed_jobs {
        println!(
            "    job {} {} (run row {})",
            job.github_id, job.name, job.workflow_run_id
        );
    }
    let pairs = acme
        .find::<workflow_job::Entity>()
        .order_by_asc(workflow_job::Column::GithubId)
        .all_with::<workflow_run::Entity>()
        .await?;
    println!("  every job with its run (all_with):");
    for (job, run) in &pairs {
        match run {
            Some(run) => println!(
                "    {:<5} {:<7} <- run {} on {} ({})",
                job.name,
                job.conclusion.as_deref().unwrap_or("-"),
                run.github_id,
                run.head_branch,
                run.conclusion.as_deref().unwrap_or("-")
            ),
            None => println!("    {:<5} <- no run visible", job.name),
        }
    }

    // ------------------------------------------------------------ deletes
    println!("\n12. delete the coverage artifact");
    let coverage = artifacts
        .iter()
        .find(|a| a.r#type == "coverage")
        .ok_or_else(|| not_found("Artifact"))?;
    acme.delete::<artifact::Entity, _>(coverage.id.clone())
        .await?;
    let left = acme
        .count::<artifact::Entity>(artifact::Column::WorkflowRunId.eq(latest_run.id.as_str()))
        .await?;
    println!(
        "  artifact {} deleted; {left} left on the latest run",
        coverage.name
    );

    println!("\n13. delete_many: the results of the oldest run");
    let deleted = acme
        .delete_many::<test_result::Entity>(
            test_result::Column::RunId.eq(old_run.github_id.to_string()),
        )
        .await?;
    let left = acme.count::<test_result::Entity>(Condition::all()).await?;
    println!("  {deleted} results deleted, {left} left");

    // ------------------------------------------------------------ another organization
    println!("\n14. another organization and Acme's child rows");
    let globex = db.scope(OrgId::generate());
    globex
        .insert(organization::ActiveModel {
            name: Set("Globex".to_owned()),
            slug: Set(format!("globex-{}", globex.org_id())),
            ..Default::default()
        })
        .await?;
    let jobs = globex
        .count::<workflow_job::Entity>(Condition::all())
        .await?;
    let artifacts = globex.count::<artifact::Entity>(Condition::all()).await?;
    expect_nothing(
        "Globex counts workflow jobs and artifacts",
        (jobs, artifacts),
        jobs == 0 && artifacts == 0,
    )?;
    let stolen = globex
        .insert(workflow_job::ActiveModel {
            github_id: Set(gh + 99),
            name: Set("exfiltrate".to_owned()),
            status: Set("queued".to_owned()),
            workflow_run_id: Set(latest_run.id.clone()),
            ..Default::default()
        })
        .await;
    expect_refused("Globex attaches a job to Acme's run", stolen)?;

    println!("\nsummary for {}:", org.name);
    for (table, n) in [
        (
            "Installation",
            acme.count::<installation::Entity>(Condition::all()).await?,
        ),
        (
            "Repository",
            acme.count::<repository::Entity>(Condition::all()).await?,
        ),
        (
            "WorkflowRun",
            acme.count::<workflow_run::Entity>(Condition::all()).await?,
        ),
        (
            "WorkflowJob",
            acme.count::<workflow_job::Entity>(Condition::all()).await?,
        ),
        (
            "Artifact",
            acme.count::<artifact::Entity>(Condition::all()).await?,
        ),
        (
            "CheckRun",
            acme.count::<check_run::Entity>(Condition::all()).await?,
        ),
        (
            "TestSuite",
            acme.count::<test_suite::Entity>(Condition::all()).await?,
        ),
        (
            "TestResult",
            acme.count::<test_result::Entity>(Condition::all()).await?,
        ),
        (
            "FlakeDetection",
            acme.count::<flake_detection::Entity>(Condition::all())
                .await?,
        ),
    ] {
        println!("  {table:<15} {n}");
    }
    println!("\ndone");
    Ok(())
}

/// A number of tests, for an `integer` column.
fn as_int(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
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
