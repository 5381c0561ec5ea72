//! Storing one delivered JUnit report: one job of a CI run. In one transaction of the tenant:
//! the run (created by its first job's report), the job, the test cases (upserted by suite,
//! class and name) and one occurrence per test case.

use std::collections::HashMap;

use flakeguard_db::entity::{fg_job, fg_occurrence, fg_repository, fg_test_case, fg_workflow_run};
use flakeguard_db::sea_orm::{ColumnTrait, Set};
use flakeguard_db::{Error, TenantScope};
use uuid::Uuid;

use crate::junit::{TestResult, signature};

/// Reports with more test results than this go through the COPY path.
pub const COPY_FROM: usize = 1_000;

/// One delivery of a report: GitHub's delivery GUID, the repository, the CI run and job.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `X-GitHub-Delivery`: the same for every redelivery of one webhook.
    pub id: Uuid,
    /// The `FGRepository` it belongs to.
    pub repo_id: String,
    /// The CI system's run id.
    pub run_id: String,
    /// The job of the run that produced the report.
    pub job: String,
}

impl Delivery {
    /// The stored job's "id": the delivery GUID, so that a redelivery finds its job by key.
    pub fn job_key(&self) -> String {
        self.id.hyphenated().to_string()
    }
}

/// What storing a delivery did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Stored {
    /// The job's report was new: stored, with this many new test cases and occurrences.
    Stored {
        run: String,
        job: String,
        new_test_cases: usize,
        occurrences: u64,
    },
    /// The job's report was stored before (the same delivery again, or the same job of the
    /// same run under another delivery): nothing was written.
    AlreadyStored { run: String, job: String },
}

/// Why a delivery was not stored.
#[derive(Debug)]
pub enum Refused {
    /// The repository is not this tenant's (or does not exist).
    UnknownRepository,
    /// A test of the report is stored for this run already, by another job's report: the
    /// schema holds one occurrence per test and run.
    TestAlreadyInRun,
    /// The database refused or failed.
    Db(Error),
}

impl From<Error> for Refused {
    fn from(e: Error) -> Self {
        Refused::Db(e)
    }
}

/// Stores `results` of `delivery` for the tenant of `scope`, once: a redelivery (the same
/// GUID, or the same job of the same run) stores nothing and says so. Another job of a run
/// already stored adds its job and occurrences to that run.
pub async fn store(
    scope: &TenantScope,
    delivery: &Delivery,
    results: Vec<TestResult>,
) -> Result<Stored, Refused> {
    if let Some((run, job)) = stored_before(scope, delivery).await? {
        return Ok(Stored::AlreadyStored { run, job });
    }
    if scope
        .find_by_id::<fg_repository::Entity, _>(delivery.repo_id.clone())
        .await?
        .is_none()
    {
        return Err(Refused::UnknownRepository);
    }
    let d = delivery.clone();
    let stored = scope
        .transaction(|tx| Box::pin(async move { write(tx, &d, results).await }))
        .await;
    match stored {
        Ok(stored) => Ok(stored),
        // Another delivery of the same job won a race with this one, or another job of the
        // run holds one of this report's tests.
        Err(e) if e.is_unique_violation() => match stored_before(scope, delivery).await? {
            Some((run, job)) => Ok(Stored::AlreadyStored { run, job }),
            None if e.context().and_then(|c| c.table) == Some("FGOccurrence") => {
                Err(Refused::TestAlreadyInRun)
            }
            None => Err(Refused::Db(e)),
        },
        Err(e) => Err(Refused::Db(e)),
    }
}

/// The stored run and job of `delivery`, by its GUID or by the run's job name.
async fn stored_before(
    scope: &TenantScope,
    delivery: &Delivery,
) -> Result<Option<(String, String)>, Error> {
    if let Some(job) = scope
        .find_by_id::<fg_job::Entity, _>(delivery.job_key())
        .await?
    {
        return Ok(Some((job.run_id, job.id)));
    }
    let Some(run) = run_of(scope, delivery).await? else {
        return Ok(None);
    };
    let job = scope
        .find::<fg_job::Entity>()
        .filter(fg_job::Column::RunId.eq(run.id.clone()))
        .filter(fg_job::Column::JobId.eq(delivery.job.clone()))
        .one()
        .await?;
    Ok(job.map(|j| (run.id, j.id)))
}

/// The stored run of `delivery`'s repository and run id, if any.
async fn run_of(
    scope: &TenantScope,
    delivery: &Delivery,
) -> Result<Option<fg_workflow_run::Model>, Error> {
    scope
        .find::<fg_workflow_run::Entity>()
        .filter(fg_workflow_run::Column::RepoId.eq(delivery.repo_id.clone()))
        .filter(fg_workflow_run::Column::RunId.eq(delivery.run_id.clone()))
        .one()
        .await
}

/// The key of a test case: suite, class, name.
type CaseKey = (String, Option<String>, String);

async fn write(tx: &TenantScope, d: &Delivery, results: Vec<TestResult>) -> Result<Stored, Error> {
    let failed = results.iter().any(TestResult::failed);
    let conclusion = if failed { "failure" } else { "success" };
    // The run: created by its first job's report; a failed job makes it a failure.
    let run = match run_of(tx, d).await? {
        Some(run) if failed && run.conclusion.as_deref() != Some("failure") => {
            tx.update(fg_workflow_run::ActiveModel {
                id: Set(run.id.clone()),
                conclusion: Set(Some("failure".into())),
                ..Default::default()
            })
            .await?
        }
        Some(run) => run,
        None => {
            tx.insert(fg_workflow_run::ActiveModel {
                repo_id: Set(d.repo_id.clone()),
                run_id: Set(d.run_id.clone()),
                status: Set("completed".into()),
                conclusion: Set(Some(conclusion.into())),
                ..Default::default()
            })
            .await?
        }
    };
    let job = tx
        .insert(fg_job::ActiveModel {
            id: Set(d.job_key()),
            run_id: Set(run.id.clone()),
            job_id: Set(d.job.clone()),
            name: Set(d.job.clone()),
            status: Set("completed".into()),
            conclusion: Set(Some(conclusion.into())),
            ..Default::default()
        })
        .await?;

    // One result per test case: a test listed again (a retry) counts as another attempt, and
    // its last outcome stands.
    let mut latest: HashMap<CaseKey, (TestResult, i32)> = HashMap::new();
    let mut order = Vec::new();
    for r in results {
        let key = (r.suite.clone(), r.class_name.clone(), r.name.clone());
        match latest.get_mut(&key) {
            Some((last, attempts)) => {
                *last = r;
                *attempts += 1;
            }
            None => {
                order.push(key.clone());
                latest.insert(key, (r, 1));
            }
        }
    }

    // The repository's known test cases in one query; the new ones upserted (a concurrent
    // report may create the same test case).
    let mut ids: HashMap<CaseKey, String> = tx
        .find::<fg_test_case::Entity>()
        .filter(fg_test_case::Column::RepoId.eq(d.repo_id.clone()))
        .all()
        .await?
        .into_iter()
        .map(|c| ((c.suite, c.class_name, c.name), c.id))
        .collect();
    let mut new_test_cases = 0;
    for key in &order {
        if ids.contains_key(key) {
            continue;
        }
        let (r, _) = &latest[key];
        let case = tx
            .upsert(
                fg_test_case::ActiveModel {
                    repo_id: Set(d.repo_id.clone()),
                    suite: Set(key.0.clone()),
                    class_name: Set(key.1.clone()),
                    name: Set(key.2.clone()),
                    file: Set(r.file.clone()),
                    ..Default::default()
                },
                [
                    fg_test_case::Column::OrgId,
                    fg_test_case::Column::RepoId,
                    fg_test_case::Column::Suite,
                    fg_test_case::Column::ClassName,
                    fg_test_case::Column::Name,
                ],
            )
            .await?;
        ids.insert(key.clone(), case.id);
        new_test_cases += 1;
    }

    let occurrences: Vec<fg_occurrence::ActiveModel> = order
        .iter()
        .map(|key| {
            let (r, attempts) = &latest[key];
            fg_occurrence::ActiveModel {
                test_id: Set(ids[key].clone()),
                run_id: Set(run.id.clone()),
                job_id: Set(Some(job.id.clone())),
                status: Set(r.status.to_owned()),
                duration_ms: Set(r.duration_ms),
                failure_msg_signature: Set(r.message.as_deref().map(signature)),
                failure_message: Set(r.message.clone()),
                failure_stack_trace: Set(r.stack_trace.clone()),
                attempt: Set(*attempts),
                ..Default::default()
            }
        })
        .collect();
    let occurrences = if occurrences.len() > COPY_FROM {
        tx.insert_many_copy(occurrences).await?
    } else {
        tx.insert_many(occurrences).await?
    };
    Ok(Stored::Stored {
        run: run.id,
        job: job.id,
        new_test_cases,
        occurrences,
    })
}
