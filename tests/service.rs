//! The example service (examples/service) over real HTTP, against a throwaway PostgreSQL, as
//! the application role: reports stored once, read back as JSON, another organization's
//! resources answered with 404, malformed input with 400 and nothing written, missing or
//! unknown tokens with 401, and one span per request naming the organization.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "../examples/service/app.rs"]
mod app;
#[path = "../examples/service/ingest.rs"]
mod ingest;
#[path = "../examples/service/junit.rs"]
mod junit;

use std::collections::HashMap;
use std::sync::Arc;

use flakeguard_db::entity::{fg_job, fg_occurrence, fg_repository, fg_test_case, fg_workflow_run};
use flakeguard_db::sea_orm::sea_query::Expr;
use flakeguard_db::sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, Set, Statement};
use flakeguard_db::testing::TestDatabase;
use flakeguard_db::{Db, OrgId};
use serde_json::Value;
use support::spans::{Capture, Closed};
use uuid::Uuid;

/// A running service with two organizations keyed by UUID, each with a repository.
struct Service {
    base: String,
    db: TestDatabase,
    app: Db,
    a: Org,
    b: Org,
    http: reqwest::Client,
}

struct Org {
    id: OrgId,
    token: String,
    repo: String,
}

async fn org(app: &Db, name: &str) -> Org {
    let id = OrgId::from(Uuid::new_v4());
    let s = app.scope(id.clone());
    s.insert(flakeguard_db::entity::organization::ActiveModel {
        name: Set(name.into()),
        slug: Set(id.to_string()),
        ..Default::default()
    })
    .await
    .unwrap();
    let repo = s
        .insert(fg_repository::ActiveModel {
            owner: Set(name.into()),
            name: Set("web".into()),
            installation_id: Set(format!("inst-{id}")),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    Org {
        id,
        token: Uuid::new_v4().simple().to_string(),
        repo,
    }
}

async fn start() -> Service {
    let db = TestDatabase::new().await.unwrap();
    let app = Db::new(db.connect_as_app().await.unwrap());
    let (a, b) = (org(&app, "Acme").await, org(&app, "Globex").await);
    let tokens = HashMap::from([
        (a.token.clone(), a.id.clone()),
        (b.token.clone(), b.id.clone()),
    ]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = app::router(Arc::new(app::AppState {
        db: app.clone(),
        tokens,
    }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    Service {
        base,
        db,
        app,
        a,
        b,
        http: reqwest::Client::new(),
    }
}

impl Service {
    fn post(
        &self,
        org: &Org,
        repo: &str,
        run: &str,
        delivery: &str,
        xml: String,
    ) -> reqwest::RequestBuilder {
        self.post_job(org, repo, run, "unit", delivery, xml)
    }

    /// A report of job `job` of run `run`.
    fn post_job(
        &self,
        org: &Org,
        repo: &str,
        run: &str,
        job: &str,
        delivery: &str,
        xml: String,
    ) -> reqwest::RequestBuilder {
        self.http
            .post(format!(
                "{}/repos/{repo}/runs/{run}/junit?job={job}",
                self.base
            ))
            .bearer_auth(&org.token)
            .header("X-GitHub-Delivery", delivery)
            .body(xml)
    }

    async fn get(&self, org: &Org, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&org.token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// Rows of every table the service writes, as the superuser sees them.
    async fn counts(&self) -> Vec<i64> {
        let admin = self.db.connect().await.unwrap();
        let mut out = Vec::new();
        for table in ["FGWorkflowRun", "FGJob", "FGTestCase", "FGOccurrence"] {
            let row = admin
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    format!(r#"SELECT count(*) AS n FROM "{table}""#),
                ))
                .await
                .unwrap()
                .unwrap();
            out.push(row.try_get::<i64>("", "n").unwrap());
        }
        out
    }
}

async fn send(r: reqwest::RequestBuilder) -> (u16, Value) {
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A report of `n` test cases `t0..tn` of suite `unit`, class `C`; every third one failed.
fn report(n: usize) -> String {
    named_report("t", n)
}

/// [`report`] with the test cases named `<prefix>0..<prefix>n`.
fn named_report(prefix: &str, n: usize) -> String {
    let mut xml = String::from(r#"<?xml version="1.0"?><testsuites><testsuite name="unit">"#);
    for i in 0..n {
        if i % 3 == 0 {
            xml.push_str(&format!(
                r#"<testcase classname="C" name="{prefix}{i}" time="0.25"><failure message="expected {i} got 0">trace {i}</failure></testcase>"#
            ));
        } else {
            xml.push_str(&format!(
                r#"<testcase classname="C" name="{prefix}{i}" time="0.5"/>"#
            ));
        }
    }
    xml.push_str("</testsuite></testsuites>");
    xml
}

#[tokio::test]
async fn a_report_is_stored_once_and_read_back() {
    let s = start().await;
    let delivery = Uuid::new_v4().to_string();
    let (status, body) = send(s.post(&s.a, &s.a.repo, "1001", &delivery, report(6))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["outcome"], "stored");
    assert_eq!(body["new_test_cases"], 6);
    assert_eq!(body["occurrences"], 6);
    assert_eq!(s.counts().await, [1, 1, 6, 6]);

    // The same delivery again, and the same run under another delivery: stored once.
    let (status, again) = send(s.post(&s.a, &s.a.repo, "1001", &delivery, report(6))).await;
    assert_eq!(
        (status, &again["outcome"]),
        (200, &Value::from("already_stored"))
    );
    assert_eq!(again["run"], body["run"]);
    let other = Uuid::new_v4().to_string();
    let (status, _) = send(s.post(&s.a, &s.a.repo, "1001", &other, report(6))).await;
    assert_eq!(status, 200);
    assert_eq!(s.counts().await, [1, 1, 6, 6]);

    // A second run reuses the test cases.
    let (status, body) = send(s.post(&s.a, &s.a.repo, "1002", &other, report(7))).await;
    assert_eq!((status, &body["new_test_cases"]), (201, &Value::from(1)));
    assert_eq!(s.counts().await, [2, 2, 7, 13]);

    // What was stored, through the scope.
    let scope = s.app.scope(s.a.id.clone());
    let job = scope
        .find_by_id::<fg_job::Entity, _>(delivery.clone())
        .await
        .unwrap()
        .expect("the job is keyed by its delivery GUID");
    let run = scope
        .find_by_id::<fg_workflow_run::Entity, _>(job.run_id.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (run.run_id.as_str(), run.conclusion.as_deref()),
        ("1001", Some("failure"))
    );
    let jobs = scope.find::<fg_job::Entity>().count().await.unwrap();
    assert_eq!(jobs, 2);
    let failed = scope
        .count::<fg_occurrence::Entity>(fg_occurrence::Column::Status.eq("failed"))
        .await
        .unwrap();
    assert_eq!(failed, 2 + 3);
    let t0 = scope
        .find::<fg_occurrence::Entity>()
        .filter(fg_occurrence::Column::JobId.eq(delivery.clone()))
        .filter(fg_occurrence::Column::FailureMessage.eq("expected 0 got 0"))
        .one()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        t0.failure_msg_signature.as_deref(),
        Some("expected <n> got <n>")
    );
    assert_eq!(
        (t0.duration_ms, t0.failure_stack_trace.as_deref()),
        (Some(250), Some("trace 0"))
    );

    // The read paths as JSON.
    let (status, rates) = s
        .get(&s.a, &format!("/repos/{}/failure-rates?days=7", s.a.repo))
        .await;
    assert_eq!(status, 200, "{rates}");
    let rates = rates.as_array().unwrap();
    assert_eq!(rates.len(), 7);
    let t0 = rates.iter().find(|r| r["name"] == "t0").unwrap();
    assert_eq!(
        (&t0["runs"], &t0["failures"], &t0["rate"]),
        (&2.into(), &2.into(), &1.0.into())
    );
    let t1 = rates.iter().find(|r| r["name"] == "t1").unwrap();
    assert_eq!((&t1["runs"], &t1["rate"]), (&2.into(), &0.0.into()));
    assert!(
        rates
            .windows(2)
            .all(|w| w[0]["rate"].as_f64() >= w[1]["rate"].as_f64())
    );
    for path in [
        format!("/repos/{}/flakiest?limit=5", s.a.repo),
        format!("/repos/{}/clusters", s.a.repo),
        "/quarantines/expiring?days=30".to_owned(),
    ] {
        let (status, body) = s.get(&s.a, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.is_array(), "{path}: {body}");
    }
    let (status, repo) = s.get(&s.a, &format!("/repos/{}", s.a.repo)).await;
    assert_eq!((status, &repo["id"]), (200, &Value::from(s.a.repo.clone())));
    let (status, _) = s
        .get(&s.a, &format!("/repos/{}/flakiest?limit=0", s.a.repo))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn another_organizations_resources_are_404_and_nothing_is_written() {
    let s = start().await;
    let (status, _) =
        send(s.post(&s.b, &s.b.repo, "7", &Uuid::new_v4().to_string(), report(3))).await;
    assert_eq!(status, 201);
    let before = s.counts().await;
    for path in [
        format!("/repos/{}", s.b.repo),
        format!("/repos/{}/failure-rates", s.b.repo),
        format!("/repos/{}/flakiest", s.b.repo),
        format!("/repos/{}/clusters", s.b.repo),
        "/repos/no-such-repo".to_owned(),
    ] {
        let (status, body) = s.get(&s.a, &path).await;
        assert_eq!(
            (status, &body["error"]),
            (404, &Value::from("not found")),
            "{path}"
        );
    }
    // A's report into B's repository, and into B's run's delivery.
    let (status, _) =
        send(s.post(&s.a, &s.b.repo, "8", &Uuid::new_v4().to_string(), report(3))).await;
    assert_eq!(status, 404);
    assert_eq!(s.counts().await, before);
    // B's expiring quarantines and test cases stay B's: A sees none of them.
    let a = s.app.scope(s.a.id.clone());
    assert_eq!(
        a.count::<fg_test_case::Entity>(Expr::val(true))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_malformed_request_is_400_and_writes_nothing() {
    let s = start().await;
    let before = s.counts().await;
    let guid = || Uuid::new_v4().to_string();
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "not XML",
            s.post(&s.a, &s.a.repo, "1", &guid(), "{\"json\": true}".into()),
        ),
        (
            "unclosed",
            s.post(
                &s.a,
                &s.a.repo,
                "1",
                &guid(),
                "<testsuites><testsuite>".into(),
            ),
        ),
        (
            "another root",
            s.post(&s.a, &s.a.repo, "1", &guid(), "<html/>".into()),
        ),
        (
            "a bad time",
            s.post(
                &s.a,
                &s.a.repo,
                "1",
                &guid(),
                r#"<testsuite name="s"><testcase name="a" time="-3"/></testsuite>"#.into(),
            ),
        ),
        (
            "a bad GUID",
            s.post(&s.a, &s.a.repo, "1", "not-a-guid", report(2)),
        ),
        (
            "no GUID",
            s.http
                .post(format!("{}/repos/{}/runs/1/junit", s.base, s.a.repo))
                .bearer_auth(&s.a.token)
                .body(report(2)),
        ),
        (
            "not UTF-8",
            s.http
                .post(format!("{}/repos/{}/runs/1/junit", s.base, s.a.repo))
                .bearer_auth(&s.a.token)
                .header("X-GitHub-Delivery", guid())
                .body(vec![0xff, 0xfe, 0x3c]),
        ),
    ];
    for (what, request) in cases {
        let (status, body) = send(request).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert!(body["error"].is_string(), "{what}: {body}");
    }
    assert_eq!(s.counts().await, before);
}

#[tokio::test]
async fn a_missing_or_unknown_token_is_401() {
    let s = start().await;
    let url = format!("{}/repos/{}", s.base, s.a.repo);
    for request in [
        s.http.get(&url),
        s.http.get(&url).bearer_auth("not-a-token"),
        s.http
            .get(&url)
            .header("Authorization", format!("Basic {}", s.a.token)),
        s.http
            .post(format!("{url}/runs/1/junit"))
            .header("X-GitHub-Delivery", Uuid::new_v4().to_string())
            .body(report(1)),
    ] {
        let (status, _) = send(request).await;
        assert_eq!(status, 401);
    }
    assert_eq!(s.counts().await, [0, 0, 0, 0]);
}

#[tokio::test]
async fn a_large_report_goes_through_the_copy_path_in_one_transaction() {
    let s = start().await;
    let n = ingest::COPY_FROM * 3 + 1;
    let (status, body) = send(s.post(
        &s.a,
        &s.a.repo,
        "big",
        &Uuid::new_v4().to_string(),
        report(n),
    ))
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["occurrences"], n);
    assert_eq!(s.counts().await, [1, 1, n as i64, n as i64]);
}

/// The process-wide capture of closed spans, installed on first use. (A subscriber set for one
/// thread only misses spans whose callsites other tests' threads registered first.)
fn capture() -> Capture {
    use tracing_subscriber::layer::SubscriberExt;
    static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Capture::default();
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(capture.clone()),
            )
            .expect("no other subscriber in this test binary");
            capture
        })
        .clone()
}

#[tokio::test]
async fn each_request_has_a_span_with_its_organization_and_the_scopes_spans_beneath() {
    let capture = capture();
    let s = start().await;
    let (status, _) =
        send(s.post(&s.a, &s.a.repo, "1", &Uuid::new_v4().to_string(), report(2))).await;
    assert_eq!(status, 201);
    let (status, _) = s.get(&s.b, &format!("/repos/{}", s.b.repo)).await;
    assert_eq!(status, 200);
    // The server's spans close after the response is sent.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Other tests of this binary run at the same time: only the spans of this test's
    // organizations count.
    let ours = |c: &Closed| {
        [s.a.id.as_str(), s.b.id.as_str()].iter().any(|o| {
            c.fields
                .get("org")
                .or(c.fields.get("tenant"))
                .is_some_and(|v| v == o)
        })
    };
    let spans: Vec<Closed> = capture.closed().into_iter().filter(|c| ours(c)).collect();
    eprintln!(
        "{:#?}",
        spans
            .iter()
            .map(|c| (c.name, &c.parents))
            .collect::<Vec<_>>()
    );
    let requests: Vec<&Closed> = spans.iter().filter(|c| c.name == "request").collect();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].fields["org"], s.a.id.as_str());
    assert_eq!(requests[0].fields["status"], "201");
    assert_eq!(requests[1].fields["org"], s.b.id.as_str());
    let beneath: Vec<&Closed> = spans
        .iter()
        .filter(|c| c.name == "flakeguard.operation" && c.parents.contains(&"request"))
        .collect();
    assert!(beneath.len() >= 5, "{beneath:?}");
    for op in &beneath {
        assert!(
            [s.a.id.as_str(), s.b.id.as_str()].contains(&op.fields["tenant"].as_str()),
            "{op:?}"
        );
    }
    assert!(
        spans
            .iter()
            .any(|c| c.name == "flakeguard.transaction" && c.parents.contains(&"request")),
        "the report's transaction runs beneath its request"
    );
}

#[tokio::test]
async fn each_job_of_a_run_adds_its_results_once() {
    let s = start().await;
    let guid = || Uuid::new_v4().to_string();
    let (status, unit) = send(s.post_job(&s.a, &s.a.repo, "5", "unit", &guid(), report(3))).await;
    assert_eq!(status, 201, "{unit}");
    // Another job of the same run, with tests of its own: the same run, a second job.
    // The integration job, under a delivery of its own each time it is sent.
    let integration_job = || {
        s.post_job(
            &s.a,
            &s.a.repo,
            "5",
            "integration",
            &guid(),
            named_report("i", 4),
        )
    };
    let (status, integration) = send(integration_job()).await;
    assert_eq!(status, 201, "{integration}");
    assert_eq!(integration["run"], unit["run"]);
    assert_ne!(integration["job"], unit["job"]);
    assert_eq!(s.counts().await, [1, 2, 7, 7]);
    // The same job again under a new delivery: stored once.
    let (status, again) = send(integration_job()).await;
    assert_eq!((status, &again["job"]), (200, &integration["job"]));
    // A third job reporting tests the run holds already: refused, nothing written.
    let (status, body) = send(s.post_job(&s.a, &s.a.repo, "5", "e2e", &guid(), report(3))).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(s.counts().await, [1, 2, 7, 7]);
}
