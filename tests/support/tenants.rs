//! Two organizations with a row in every scoped table, written through `TenantScope`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{Duration, Utc};
use flakeguard_db::entity::TableInfo;
use flakeguard_db::entity::tenancy::TenantClass;
use flakeguard_db::entity::*;
use flakeguard_db::sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Set, Statement};
use flakeguard_db::testing::TestDatabase;
use flakeguard_db::{Error, GlobalTables, Operation, OrgId, TenantScope};

/// Every table a scope reaches (every table of tenant data in the entity registry,
/// `flakeguard_db::entity::TABLES`), with the SQL that gives a row's key as text.
pub static SCOPED_TABLES: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    TableInfo::tenant_data()
        .map(|t| {
            let key = (t.primary_key)()
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            (t.name, key)
        })
        .collect()
});

/// The SQL that gives the key of a row of `table` as text (see [`SCOPED_TABLES`]).
pub fn key_sql(table: &str) -> &'static str {
    &SCOPED_TABLES
        .iter()
        .find(|(t, _)| *t == table)
        .unwrap_or_else(|| panic!("{table} is not a scoped table"))
        .1
}

/// One organization's rows: table -> keys (see [`SCOPED_TABLES`]).
#[derive(Debug, Clone)]
pub struct Tenant {
    pub org: OrgId,
    pub rows: BTreeMap<&'static str, Vec<String>>,
}

impl Tenant {
    pub fn key(&self, table: &str) -> &str {
        &self.rows[table][0]
    }
}

/// Creates organization `org` and one or two rows in each of the 25 scoped tables, through a
/// scope on `db` (a pool of the application role). `n` makes unique values unique.
pub async fn seed(db: &DatabaseConnection, org: &OrgId, n: i64) -> Tenant {
    let s = TenantScope::new(db.clone(), org.clone());
    let global = GlobalTables::new(db.clone());
    let mut rows: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut put = |t: &'static str, k: String| rows.entry(t).or_default().push(k);
    let now = Utc::now();

    let o = s
        .insert(organization::ActiveModel {
            name: Set(format!("Org {org}")),
            slug: Set(format!("org-{org}")),
            ..Default::default()
        })
        .await
        .unwrap();
    put("Organization", o.id);
    let user = global
        .insert(user::ActiveModel {
            email: Set(format!("{org}@example.com")),
            ..Default::default()
        })
        .await
        .unwrap();
    let m = s
        .insert(organization_user::ActiveModel {
            user_id: Set(user.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    put("OrganizationUser", m.id);
    let sub = s
        .insert(subscription::ActiveModel {
            plan: Set("team".into()),
            status: Set("active".into()),
            current_period_start: Set(now),
            current_period_end: Set(now + Duration::days(30)),
            ..Default::default()
        })
        .await
        .unwrap();
    put("Subscription", sub.id);
    let audit = s
        .insert(audit_log::ActiveModel {
            user_id: Set(Some(user.id.clone())),
            action: Set("org.create".into()),
            resource: Set("Organization".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    put("AuditLog", audit.id);
    let metric = s
        .insert(usage_metric::ActiveModel {
            metric_type: Set("runs".into()),
            period: Set("day".into()),
            date: Set(now),
            ..Default::default()
        })
        .await
        .unwrap();
    put("UsageMetric", metric.id);
    let task = s
        .insert(task::ActiveModel {
            title: Set("triage".into()),
            user_id: Set(user.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    put("Task", task.id);
    let inst = s
        .insert(installation::ActiveModel {
            id: Set(format!("inst-{org}")),
            github_installation_id: Set(1_000_000 + n),
            account_login: Set(format!("login-{org}")),
            account_id: Set(n),
            account_type: Set("Organization".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    put("Installation", inst.id.clone());
    let repo = s
        .insert(repository::ActiveModel {
            github_id: Set(2_000_000 + n),
            node_id: Set(format!("R_{n}")),
            name: Set("web".into()),
            full_name: Set(format!("{org}/web")),
            owner: Set(org.to_string()),
            installation_id: Set(inst.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    put("Repository", repo.id.clone());
    let run = s
        .insert(workflow_run::ActiveModel {
            github_id: Set(3_000_000 + n),
            head_branch: Set("main".into()),
            head_sha: Set("abc".into()),
            status: Set("completed".into()),
            workflow_id: Set(4_000_000 + n),
            workflow_name: Set("ci".into()),
            repository_id: Set(repo.id.clone()),
            installation_id: Set(inst.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    put("WorkflowRun", run.id.clone());
    let check = s
        .insert(check_run::ActiveModel {
            github_id: Set(5_000_000 + n),
            name: Set("tests".into()),
            head_sha: Set("abc".into()),
            status: Set("completed".into()),
            repository_id: Set(repo.id.clone()),
            installation_id: Set(inst.id.clone()),
            workflow_run_id: Set(Some(run.id.clone())),
            ..Default::default()
        })
        .await
        .unwrap();
    put("CheckRun", check.id.clone());
    let job = s
        .insert(workflow_job::ActiveModel {
            github_id: Set(6_000_000 + n),
            name: Set("unit".into()),
            status: Set("completed".into()),
            workflow_run_id: Set(run.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    put("WorkflowJob", job.id.clone());
    let artifact = s
        .insert(artifact::ActiveModel {
            github_id: Set(7_000_000 + n),
            name: Set("junit".into()),
            r#type: Set("zip".into()),
            size_in_bytes: Set(1 << 33),
            url: Set("https://example.com/a".into()),
            archive_download_url: Set("https://example.com/a.zip".into()),
            workflow_run_id: Set(run.id.clone()),
            expires_at: Set(now + Duration::days(90)),
            ..Default::default()
        })
        .await
        .unwrap();
    put("Artifact", artifact.id);
    let suite = s
        .insert(test_suite::ActiveModel {
            name: Set("unit".into()),
            repository_id: Set(repo.id.clone()),
            check_run_id: Set(Some(check.id.clone())),
            workflow_job_id: Set(Some(job.id.clone())),
            ..Default::default()
        })
        .await
        .unwrap();
    put("TestSuite", suite.id.clone());
    let result = s
        .insert(test_result::ActiveModel {
            name: Set("adds".into()),
            suite: Set("unit".into()),
            test_full_name: Set("math.adds".into()),
            status: Set("failed".into()),
            time: Set(0.5),
            run_id: Set("run-1".into()),
            repository_id: Set(repo.id.clone()),
            test_suite_id: Set(Some(suite.id.clone())),
            check_run_id: Set(Some(check.id.clone())),
            workflow_job_id: Set(Some(job.id.clone())),
            ..Default::default()
        })
        .await
        .unwrap();
    put("TestResult", result.id.clone());
    let detection = s
        .insert(flake_detection::ActiveModel {
            test_name: Set("math.adds".into()),
            repository_id: Set(repo.id.clone()),
            installation_id: Set(inst.id.clone()),
            check_run_id: Set(Some(check.id.clone())),
            test_result_id: Set(Some(result.id.clone())),
            ..Default::default()
        })
        .await
        .unwrap();
    put("FlakeDetection", detection.id);
    let fg_repo = s
        .insert(fg_repository::ActiveModel {
            owner: Set(org.to_string()),
            name: Set("web".into()),
            installation_id: Set(inst.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    put("FGRepository", fg_repo.id.clone());
    let fg_run = s
        .insert(fg_workflow_run::ActiveModel {
            repo_id: Set(fg_repo.id.clone()),
            run_id: Set("run-1".into()),
            status: Set("completed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    put("FGWorkflowRun", fg_run.id.clone());
    let fg_job = s
        .insert(fg_job::ActiveModel {
            run_id: Set(fg_run.id.clone()),
            job_id: Set("job-1".into()),
            name: Set("unit".into()),
            status: Set("completed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    put("FGJob", fg_job.id.clone());
    let mut cases = Vec::new();
    for name in ["adds", "divides"] {
        let case = s
            .insert(fg_test_case::ActiveModel {
                repo_id: Set(fg_repo.id.clone()),
                suite: Set("unit".into()),
                class_name: Set(Some("Math".into())),
                name: Set(name.into()),
                ..Default::default()
            })
            .await
            .unwrap();
        put("FGTestCase", case.id.clone());
        let occ = s
            .insert(fg_occurrence::ActiveModel {
                test_id: Set(case.id.clone()),
                run_id: Set(fg_run.id.clone()),
                job_id: Set(Some(fg_job.id.clone())),
                status: Set("failed".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        put("FGOccurrence", occ.id);
        let score = s
            .insert(fg_flake_score::ActiveModel {
                test_id: Set(case.id.clone()),
                score: Set(0.5),
                ..Default::default()
            })
            .await
            .unwrap();
        put("FGFlakeScore", score.id);
        cases.push(case);
    }
    let decision = s
        .insert(fg_quarantine_decision::ActiveModel {
            test_id: Set(cases[0].id.clone()),
            rationale: Set("flaky".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    put("FGQuarantineDecision", decision.id);
    let link = s
        .insert(fg_issue_link::ActiveModel {
            test_id: Set(cases[0].id.clone()),
            url: Set("https://example.com/issues/1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    put("FGIssueLink", link.id);
    let cluster = s
        .insert(fg_failure_cluster::ActiveModel {
            repo_id: Set(fg_repo.id.clone()),
            failure_msg_signature: Set("boom".into()),
            test_ids: Set(cases.iter().map(|c| c.id.clone()).collect()),
            ..Default::default()
        })
        .await
        .unwrap();
    put("FGFailureCluster", cluster.id.clone());
    for case in &cases {
        let pair = s
            .insert(fg_failure_cluster_to_fg_test_case::ActiveModel {
                a: Set(cluster.id.clone()),
                b: Set(case.id.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        put(
            "_FGFailureClusterToFGTestCase",
            format!("{}|{}", pair.a, pair.b),
        );
    }
    for list in rows.values_mut() {
        list.sort();
    }
    let seeded: Vec<&str> = rows.keys().copied().collect();
    let mut scoped: Vec<&str> = SCOPED_TABLES.iter().map(|(t, _)| *t).collect();
    scoped.sort();
    assert_eq!(seeded, scoped, "a row in every scoped table");
    assert_eq!(scoped.len(), 25);
    Tenant {
        org: org.clone(),
        rows,
    }
}

/// A fresh database holding two seeded organizations, `org-a` and `org-b`, with a pool of the
/// application role (subject to row-level security) and one of the superuser.
/// Two seeded tenants on a database; `D` holds the database (a [`TestDatabase`], or a Citus
/// one) for as long as the world lives.
pub struct World<D = TestDatabase> {
    pub db: D,
    pub app: DatabaseConnection,
    pub admin: DatabaseConnection,
    pub a: Tenant,
    pub b: Tenant,
}

impl<D> World<D> {
    /// A scope for `t` on the application role's pool.
    pub fn scope(&self, t: &Tenant) -> TenantScope {
        TenantScope::new(self.app.clone(), t.org.clone())
    }

    /// `t`'s scope on the application role (row-level security and the Rust lock) and on the
    /// superuser (the Rust lock alone), each with the name of its role.
    pub fn both_roles(&self, t: &Tenant) -> [(&'static str, TenantScope); 2] {
        [
            ("application role", self.scope(t)),
            (
                "superuser",
                TenantScope::new(self.admin.clone(), t.org.clone()),
            ),
        ]
    }

    /// `t`'s test cases by name, read on the application role.
    pub async fn cases(&self, t: &Tenant) -> Vec<fg_test_case::Model> {
        self.scope(t)
            .find::<fg_test_case::Entity>()
            .order_by_asc(fg_test_case::Column::Name)
            .all()
            .await
            .unwrap()
    }
}

/// A pool of one connection to `url` on the crate's pool options, so that what one operation
/// leaves on its connection (prepared statements, a broken connection, a tenant) is what the
/// next one meets.
pub async fn one_connection(url: &str) -> DatabaseConnection {
    let mut opts = flakeguard_db::connect_options(url);
    opts.max_connections(1).min_connections(1);
    flakeguard_db::sea_orm::Database::connect(opts)
        .await
        .unwrap()
}

/// [`World`]: a fresh database with organizations `org-a` and `org-b` seeded in every table.
pub async fn world() -> World {
    let db = TestDatabase::new().await.unwrap();
    let app = db.connect_as_app().await.unwrap();
    let admin = db.connect().await.unwrap();
    let a = seed(&app, &OrgId::new("org-a").unwrap(), 1).await;
    let b = seed(&app, &OrgId::new("org-b").unwrap(), 2).await;
    World {
        db,
        app,
        admin,
        a,
        b,
    }
}

/// Row counts of every table of the schema, as the superuser sees them.
pub async fn counts(admin: &DatabaseConnection) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for table in flakeguard_db::entity::TABLES {
        let row = admin
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!(r#"SELECT count(*) AS n FROM "{}""#, table.name),
            ))
            .await
            .unwrap()
            .unwrap();
        out.push((table.name.to_owned(), row.try_get::<i64>("", "n").unwrap()));
    }
    out
}

/// Every text value of `other`'s rows (in the tables with an "orgId", and `other`'s own
/// `Organization` row) that `own`'s rows do not also hold, and every key of `other`'s rows:
/// what an error shown to `own` must never carry. Read as the superuser.
pub async fn values_only_of(
    admin: &DatabaseConnection,
    own: &Tenant,
    other: &Tenant,
) -> Vec<String> {
    async fn texts(admin: &DatabaseConnection, org: &OrgId) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        for t in TableInfo::tenant_data() {
            let column = match t.class {
                TenantClass::TenantRoot => "id",
                TenantClass::Tenant | TenantClass::TenantOptional => "orgId",
                TenantClass::Child { .. } | TenantClass::Global => continue,
            };
            let rows = admin
                .query_all_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    format!(
                        r#"SELECT row_to_json(t)::text AS j FROM "{}" t WHERE "{column}" = $1"#,
                        t.name
                    ),
                    [org.as_str().into()],
                ))
                .await
                .unwrap();
            for row in rows {
                let json: serde_json::Value =
                    serde_json::from_str(&row.try_get::<String>("", "j").unwrap()).unwrap();
                if let serde_json::Value::Object(map) = json {
                    out.extend(map.into_iter().filter_map(|(_, v)| match v {
                        serde_json::Value::String(s) => Some(s),
                        _ => None,
                    }));
                }
            }
        }
        out
    }
    let mine = texts(admin, &own.org).await;
    let mut only: Vec<String> = texts(admin, &other.org)
        .await
        .difference(&mine)
        .cloned()
        .collect();
    only.extend(other.rows.values().flatten().cloned());
    // The other tenant's id itself may be named only where the caller named it.
    only.retain(|v| v != other.org.as_str());
    only
}

/// The error names tenant A, `table` and `operation`, and carries none of tenant B's keys.
pub fn names_its_context<D>(err: &Error, w: &World<D>, table: &str, operation: Operation) {
    let ctx = err.context().unwrap_or_else(|| panic!("no context: {err}"));
    assert_eq!(
        ctx.tenant.as_ref().map(OrgId::as_str),
        Some("org-a"),
        "{err}"
    );
    assert_eq!(ctx.table, Some(table), "{err}");
    assert_eq!(ctx.operation, operation, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("for tenant org-a") && text.contains(&format!("\"{table}\"")),
        "{text}"
    );
    carries_nothing_of(&text, &w.b);
}

/// `text` holds none of `other`'s row keys.
pub fn carries_nothing_of(text: &str, other: &Tenant) {
    for keys in other.rows.values() {
        for key in keys {
            assert!(
                !text.contains(key.as_str()),
                "carries the other tenant's {key}: {text}"
            );
        }
    }
}

/// Asserts that each of `results` (named for the message) was refused with
/// [`flakeguard_db::Error::InvalidInput`], its reason mentioning `why`.
pub fn expect_busy<T: std::fmt::Debug>(
    results: impl IntoIterator<Item = (&'static str, flakeguard_db::Result<T>)>,
    why: &str,
) {
    for (what, r) in results {
        match r {
            Err(flakeguard_db::Error::InvalidInput { reason, .. }) => {
                assert!(reason.contains(why), "{what}: {reason}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}
