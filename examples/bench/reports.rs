//! The `reports` workloads: each of `flakeguard_db::reports`'s read paths through a scope
//! (application role, row-level security, the statements the query shapes build) against the
//! same SQL written by hand and sent as the superuser (no row-level security), on the
//! dashboard dataset (1,000,000 occurrences of 100 organizations).

use chrono::{Duration, Utc};
use flakeguard_db::reports::{self, ClusterSummary, ExpiringQuarantine, FailureRate};
use flakeguard_db::sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, FromQueryResult, QueryResult, Statement, Value,
};
use futures_util::future::BoxFuture;

use super::{Call, Config, Goal, Res, Workload, contender, dash_org, exec, scope};

/// Days of the failure-rate window and of each of the flakiest tests' two windows.
const DAYS: u32 = 7;
/// Tests of the flakiest list, clusters of the cluster list.
const TOP: u64 = 10;
/// Clusters per organization, each with [`CLUSTER_TESTS`] test cases.
const CLUSTERS: usize = 20;
const CLUSTER_TESTS: usize = 5;
/// Active quarantines per organization, ending one a day from 4 days ago: [`EXPIRING`] end in
/// the next [`DAYS`].
const QUARANTINES: usize = 30;

/// Adds to the dashboard dataset what the reports read: a flake score per test, clusters with
/// their test cases, active quarantines.
pub async fn seed(raw: &DatabaseConnection, orgs: &str, tests: usize) -> Res {
    exec(
        raw,
        &format!(
            r#"INSERT INTO "FGFlakeScore" (id, "orgId", "testId", score, "windowN", "lastUpdatedAt")
               SELECT 'fs-' || o || '-' || g, o, 'tc-' || o || '-' || g,
                      (g % 20) / 20.0 + g / 100000.0, 50, now()
               FROM {orgs}, generate_series(1, {tests}) g"#
        ),
    )
    .await?;
    exec(
        raw,
        &format!(
            r#"INSERT INTO "FGFailureCluster" (id, "orgId", "repoId", "failureMsgSignature",
                                               "testIds", "exampleMessage", "occurrenceCount",
                                               "updatedAt")
               SELECT 'fc-' || o || '-' || c, o, 'repo-' || o, 'signature ' || c,
                      ARRAY(SELECT 'tc-' || o || '-' || (c * {CLUSTER_TESTS} - k)
                            FROM generate_series(0, {CLUSTER_TESTS} - 1) k),
                      'AssertionError ' || c, c * 13 % 97 + 1, now()
               FROM {orgs}, generate_series(1, {CLUSTERS}) c"#
        ),
    )
    .await?;
    exec(
        raw,
        &format!(
            r#"INSERT INTO "_FGFailureClusterToFGTestCase" ("A", "B", "orgId")
               SELECT 'fc-' || o || '-' || c, 'tc-' || o || '-' || (c * {CLUSTER_TESTS} - k), o
               FROM {orgs}, generate_series(1, {CLUSTERS}) c,
                    generate_series(0, {CLUSTER_TESTS} - 1) k"#
        ),
    )
    .await?;
    exec(
        raw,
        &format!(
            r#"INSERT INTO "FGQuarantineDecision" (id, "orgId", "testId", state, rationale, until,
                                                   "updatedAt")
               SELECT 'qd-' || o || '-' || k, o, 'tc-' || o || '-' || k, 'ACTIVE', 'flaky',
                      now() + ((k - 5) || ' days')::interval + interval '1 hour', now()
               FROM {orgs}, generate_series(1, {QUARANTINES}) k"#
        ),
    )
    .await?;
    Ok(())
}

const RATES_SQL: &str = r#"SELECT o."testId" AS test_id, t.suite, t."className" AS class_name, t.name,
       count(o.id) AS runs,
       sum(CASE WHEN o.status = 'failed' THEN 1 ELSE 0 END) AS failures,
       CAST(sum(CASE WHEN o.status = 'failed' THEN 1 ELSE 0 END) AS float8) / count(o.id) AS rate
  FROM "FGOccurrence" o
  JOIN "FGTestCase" t ON o."testId" = t.id
 WHERE o."orgId" = $1 AND t."orgId" = $1 AND t."repoId" = $2 AND o."createdAt" >= $3
   AND o.status <> 'skipped'
 GROUP BY o."testId", t.suite, t."className", t.name
 ORDER BY rate DESC, o."testId""#;

const TOP_SQL: &str = r#"SELECT s."testId" AS test_id, t.name, s.score
  FROM "FGFlakeScore" s
  JOIN "FGTestCase" t ON s."testId" = t.id
 WHERE s."orgId" = $1 AND t."orgId" = $1 AND t."repoId" = $2
 ORDER BY s.score DESC, s."testId"
 LIMIT $3"#;

/// The windows of the flakiest tests; `{ids}` is the list of placeholders from `$4`.
const WINDOWS_SQL: &str = r#"SELECT "testId" AS test_id,
       sum(CASE WHEN "createdAt" >= $2 THEN 1 ELSE 0 END) AS recent_runs,
       sum(CASE WHEN status = 'failed' AND "createdAt" >= $2 THEN 1 ELSE 0 END) AS recent_failures,
       sum(CASE WHEN "createdAt" < $2 THEN 1 ELSE 0 END) AS previous_runs,
       sum(CASE WHEN status = 'failed' AND "createdAt" < $2 THEN 1 ELSE 0 END) AS previous_failures
  FROM "FGOccurrence"
 WHERE "orgId" = $1 AND "testId" IN ({ids}) AND "createdAt" >= $3
 GROUP BY "testId""#;

const CLUSTERS_SQL: &str = r#"SELECT c.id, c."failureMsgSignature" AS failure_msg_signature,
       c."exampleMessage" AS example_message, c."occurrenceCount" AS occurrence_count,
       count(l."B") AS test_count
  FROM "FGFailureCluster" c
  LEFT JOIN "_FGFailureClusterToFGTestCase" l ON c.id = l."A" AND l."orgId" = $1
 WHERE c."orgId" = $1 AND c."repoId" = $2
 GROUP BY c.id
 ORDER BY c."occurrenceCount" DESC, c.id
 LIMIT $3"#;

const QUARANTINES_SQL: &str = r#"SELECT q.id, q."testId" AS test_id, t.name AS test_name, q.rationale, q.until
  FROM "FGQuarantineDecision" q
  JOIN "FGTestCase" t ON q."testId" = t.id
 WHERE q."orgId" = $1 AND t."orgId" = $1 AND q.state = 'ACTIVE'
   AND q.until >= $2 AND q.until <= $3
 ORDER BY q.until, q.id"#;

fn stmt(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Where the statements written by hand run: as the superuser (the baseline), or through a
/// scope's `query_raw` (the same SQL under row-level security, in a tenant transaction), which
/// tells the cost of the scope's statements from that of the tenant transaction itself.
#[derive(Clone)]
enum Hand {
    Superuser(DatabaseConnection),
    Scoped(DatabaseConnection),
}

impl Hand {
    async fn query(&self, org: &str, stmt: Statement) -> Res<Vec<QueryResult>> {
        Ok(match self {
            Hand::Superuser(raw) => raw.query_all_raw(stmt).await?,
            Hand::Scoped(app) => scope(app, org)?.query_raw(stmt).await?,
        })
    }
}

fn decode<M: FromQueryResult>(rows: &[QueryResult]) -> Res<usize> {
    let rows = rows
        .iter()
        .map(|row| M::from_query_result(row, ""))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows.len())
}

type Scoped = fn(DatabaseConnection, String) -> BoxFuture<'static, Res<usize>>;
type ByHand = fn(Hand, String) -> BoxFuture<'static, Res<usize>>;

/// One read path: its function through a scope, and the same statements by hand.
struct Report {
    name: &'static str,
    title: &'static str,
    key: &'static str,
    what: &'static str,
    scoped_name: &'static str,
    rows: usize,
    heavy: bool,
    scoped: Scoped,
    by_hand: ByHand,
}

const REPORTS: [Report; 4] = [
    Report {
        name: "report-rates",
        title: "reports::failure_rates: a repository's per-test failure rate over 7 days",
        key: "report-failure-rates",
        what: "reports::failure_rates within 1.1x of the same SQL without RLS",
        scoped_name: "reports::failure_rates (app role, RLS)",
        rows: super::DASH_TESTS,
        heavy: true,
        scoped: |app, org| {
            Box::pin(async move {
                let s = scope(&app, &org)?;
                Ok(reports::failure_rates(&s, &format!("repo-{org}"), DAYS)
                    .await?
                    .len())
            })
        },
        by_hand: |hand, org| {
            Box::pin(async move {
                let since = Utc::now() - Duration::days(DAYS.into());
                let values = vec![
                    org.clone().into(),
                    format!("repo-{org}").into(),
                    since.into(),
                ];
                decode::<FailureRate>(&hand.query(&org, stmt(RATES_SQL, values)).await?)
            })
        },
    },
    Report {
        name: "report-flakiest",
        title: "reports::flakiest_tests: the 10 of the highest score, with two 7-day windows",
        key: "report-flakiest",
        what: "reports::flakiest_tests within 1.1x of the same SQL without RLS",
        scoped_name: "reports::flakiest_tests (app role, RLS)",
        rows: TOP as usize,
        heavy: false,
        scoped: |app, org| {
            Box::pin(async move {
                let s = scope(&app, &org)?;
                Ok(
                    reports::flakiest_tests(&s, &format!("repo-{org}"), TOP, DAYS)
                        .await?
                        .len(),
                )
            })
        },
        by_hand: |hand, org| Box::pin(async move { flakiest_by_hand(&hand, &org).await }),
    },
    Report {
        name: "report-clusters",
        title: "reports::failure_clusters: the 10 largest clusters with their test counts",
        key: "report-clusters",
        what: "reports::failure_clusters within 1.1x of the same SQL without RLS",
        scoped_name: "reports::failure_clusters (app role, RLS)",
        rows: TOP as usize,
        heavy: false,
        scoped: |app, org| {
            Box::pin(async move {
                let s = scope(&app, &org)?;
                Ok(reports::failure_clusters(&s, &format!("repo-{org}"), TOP)
                    .await?
                    .len())
            })
        },
        by_hand: |hand, org| {
            Box::pin(async move {
                let values = vec![
                    org.clone().into(),
                    format!("repo-{org}").into(),
                    (TOP as i64).into(),
                ];
                decode::<ClusterSummary>(&hand.query(&org, stmt(CLUSTERS_SQL, values)).await?)
            })
        },
    },
    Report {
        name: "report-quarantines",
        title: "reports::expiring_quarantines: active quarantines ending in the next 7 days",
        key: "report-quarantines",
        what: "reports::expiring_quarantines within 1.1x of the same SQL without RLS",
        scoped_name: "reports::expiring_quarantines (app role, RLS)",
        rows: EXPIRING,
        heavy: false,
        scoped: |app, org| {
            Box::pin(async move {
                let s = scope(&app, &org)?;
                Ok(reports::expiring_quarantines(&s, DAYS).await?.len())
            })
        },
        by_hand: |hand, org| {
            Box::pin(async move {
                let now = Utc::now();
                let end = now + Duration::days(DAYS.into());
                let values = vec![org.clone().into(), now.into(), end.into()];
                decode::<ExpiringQuarantine>(
                    &hand.query(&org, stmt(QUARANTINES_SQL, values)).await?,
                )
            })
        },
    },
];

/// Quarantines of an organization that end in the next [`DAYS`] days.
const EXPIRING: usize = 7;

fn top_stmt(org: &str) -> Statement {
    let values = vec![
        org.into(),
        format!("repo-{org}").into(),
        (TOP as i64).into(),
    ];
    stmt(TOP_SQL, values)
}

/// The windows of the tests `ids` of `org`.
fn windows_stmt(org: &str, ids: Vec<String>) -> Statement {
    let now = Utc::now();
    let (mid, start) = (
        now - Duration::days(DAYS.into()),
        now - Duration::days((2 * DAYS).into()),
    );
    let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 4)).collect();
    let mut values: Vec<Value> = vec![org.into(), mid.into(), start.into()];
    values.extend(ids.into_iter().map(Value::from));
    stmt(
        &WINDOWS_SQL.replace("{ids}", &placeholders.join(", ")),
        values,
    )
}

fn test_ids(top: &[QueryResult]) -> Res<Vec<String>> {
    Ok(top
        .iter()
        .map(|r| r.try_get::<String>("", "test_id"))
        .collect::<Result<_, _>>()?)
}

/// The flakiest tests by hand: the top tests, then their two windows.
async fn flakiest_by_hand(hand: &Hand, org: &str) -> Res<usize> {
    let top = hand.query(org, top_stmt(org)).await?;
    let windows = hand.query(org, windows_stmt(org, test_ids(&top)?)).await?;
    for w in &windows {
        let _: (String, i64, i64, i64, i64) = (
            w.try_get("", "test_id")?,
            w.try_get("", "recent_runs")?,
            w.try_get("", "recent_failures")?,
            w.try_get("", "previous_runs")?,
            w.try_get("", "previous_failures")?,
        );
    }
    Ok(top.len())
}

/// The baseline of every report: its statements written by hand, as the superuser.
const RAW: &str = "the same SQL by hand (superuser, no RLS)";
const IN_SCOPE: &str = "the same SQL by hand, TenantScope::query_raw (RLS)";

/// The four workloads, one per read path.
pub fn workloads(
    cfg: &Config,
    app: &DatabaseConnection,
    raw: &DatabaseConnection,
) -> Vec<Workload> {
    let rows_ok = |what: &'static str, want: usize| {
        move |n: usize| -> Res {
            if n == want {
                Ok(())
            } else {
                Err(format!("{what}: {n} rows, not {want}").into())
            }
        }
    };
    REPORTS
        .iter()
        .map(|r| {
            let check = rows_ok(r.name, r.rows);
            let (scoped, by_hand) = (r.scoped, r.by_hand);
            let (app, hand, in_scope) = (
                app.clone(),
                Hand::Superuser(raw.clone()),
                Hand::Scoped(app.clone()),
            );
            let org_of = |c: Call| dash_org(c.client * 7 + c.op);
            let (long, light) = (cfg.long, (cfg.light_ops(1) / 4, cfg.light_ops(8) / 4));
            let heavy = r.heavy;
            Workload {
                name: r.name,
                title: r.title,
                contenders: vec![
                    contender(r.scoped_name, move |call| {
                        let run = scoped(app.clone(), org_of(call));
                        async move { check(run.await?) }
                    }),
                    contender(RAW, move |call| {
                        let run = by_hand(hand.clone(), org_of(call));
                        async move { check(run.await?) }
                    }),
                    contender(IN_SCOPE, move |call| {
                        let run = by_hand(in_scope.clone(), org_of(call));
                        async move { check(run.await?) }
                    }),
                ],
                baseline: RAW,
                goals: vec![Goal {
                    key: Some(r.key),
                    what: r.what,
                    scoped: r.scoped_name,
                    raw: RAW,
                    max: 1.1,
                }],
                prepare: None,
                rounds: cfg.dash_rounds,
                ops: Box::new(move |c| match (heavy, long, c) {
                    (true, false, 1) => 10,
                    (true, false, _) => 4,
                    (true, true, 1) => 20,
                    (true, true, _) => 8,
                    (false, _, 1) => light.0,
                    (false, _, _) => light.1,
                }),
            }
        })
        .collect()
}

/// The statements written by hand of each report, for `org`, in the order a report sends them
/// (the flakiest tests' second statement keyed by the first one's rows, read as the superuser).
async fn statements(
    raw: &DatabaseConnection,
    org: &str,
) -> Res<Vec<(&'static str, Vec<Statement>)>> {
    let now = Utc::now();
    let since = now - Duration::days(DAYS.into());
    let repo = format!("repo-{org}");
    let top = raw.query_all_raw(top_stmt(org)).await?;
    let end = now + Duration::days(DAYS.into());
    Ok(vec![
        (
            "failure_rates",
            vec![stmt(
                RATES_SQL,
                vec![org.into(), repo.clone().into(), since.into()],
            )],
        ),
        (
            "flakiest_tests",
            vec![top_stmt(org), windows_stmt(org, test_ids(&top)?)],
        ),
        (
            "failure_clusters",
            vec![stmt(
                CLUSTERS_SQL,
                vec![org.into(), repo.into(), (TOP as i64).into()],
            )],
        ),
        (
            "expiring_quarantines",
            vec![stmt(
                QUARANTINES_SQL,
                vec![org.into(), now.into(), end.into()],
            )],
        ),
    ])
}

/// Server-side planning and execution of each report's statements, as the superuser and under
/// row-level security in a scope: medians of `n` runs of `EXPLAIN (ANALYZE, TIMING OFF)`, the
/// sides alternating.
pub async fn server_times(raw: &DatabaseConnection, app: &DatabaseConnection, n: usize) -> Res {
    let sides = [Hand::Superuser(raw.clone()), Hand::Scoped(app.clone())];
    // Per report and side: the planning and the execution samples.
    let mut times: Vec<[(Vec<f64>, Vec<f64>); 2]> = Vec::new();
    let mut names = Vec::new();
    for i in 0..n {
        let org = dash_org(i * 13);
        for (r, (name, stmts)) in statements(raw, &org).await?.into_iter().enumerate() {
            if times.len() <= r {
                times.push(Default::default());
                names.push(name);
            }
            for k0 in 0..2 {
                let k = (k0 + i) % 2;
                let (mut plan, mut exec) = (0.0, 0.0);
                for st in &stmts {
                    let explain = Statement {
                        sql: format!("EXPLAIN (ANALYZE, TIMING OFF) {}", st.sql),
                        ..st.clone()
                    };
                    let (p, e) = super::plan_times(&sides[k].query(&org, explain).await?)?;
                    plan += p;
                    exec += e;
                }
                times[r][k].0.push(plan);
                times[r][k].1.push(exec);
            }
        }
    }
    println!(
        "\nserver-side times of the reports' statements, medians of {n} runs \
         (EXPLAIN ANALYZE, TIMING OFF; planning + execution):"
    );
    for (name, [raw, scoped]) in names.iter().zip(times) {
        let (rp, re) = (super::median(raw.0), super::median(raw.1));
        let (sp, se) = (super::median(scoped.0), super::median(scoped.1));
        println!(
            "  {name:<22} superuser {rp:.3} + {re:.3} ms   RLS in a scope {sp:.3} + {se:.3} ms   \
             ratio {:.2}x",
            (sp + se) / (rp + re)
        );
    }
    Ok(())
}
