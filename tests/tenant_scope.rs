//! TenantScope's API: reads with filters, ordering, pages and joins; writes that fill in the
//! tenant and refuse another's; upserts; bulk inserts; transactions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flakeguard_db::entity::*;
use flakeguard_db::sea_orm::{ColumnTrait, ConnectionTrait, Set};
use flakeguard_db::{Error, OrgId, TenantScope};
use support::tenants::{counts, values_only_of, world};

fn case(repo: &str, name: &str) -> fg_test_case::ActiveModel {
    fg_test_case::ActiveModel {
        repo_id: Set(repo.to_owned()),
        suite: Set("unit".into()),
        class_name: Set(Some("Math".into())),
        name: Set(name.to_owned()),
        ..Default::default()
    }
}

#[tokio::test]
async fn find_filters_orders_and_pages_within_the_tenant() {
    let w = world().await;
    let s = w.scope(&w.a);
    let repo = w.a.key("FGRepository");
    for name in ["c", "e", "b", "d"] {
        s.insert(case(repo, name)).await.unwrap();
    }
    let names = |v: Vec<fg_test_case::Model>| v.into_iter().map(|c| c.name).collect::<Vec<_>>();
    let sorted = s
        .find::<fg_test_case::Entity>()
        .filter(fg_test_case::Column::Name.ne("adds"))
        .order_by_asc(fg_test_case::Column::Name)
        .all()
        .await
        .unwrap();
    assert_eq!(names(sorted), ["b", "c", "d", "divides", "e"]);
    let window = s
        .find::<fg_test_case::Entity>()
        .order_by_desc(fg_test_case::Column::Name)
        .offset(1)
        .limit(2)
        .all()
        .await
        .unwrap();
    assert_eq!(names(window), ["divides", "d"]);
    let page = s
        .find::<fg_test_case::Entity>()
        .order_by_asc(fg_test_case::Column::Name)
        .page(1, 4)
        .await
        .unwrap();
    assert_eq!((page.total, page.page, page.per_page), (6, 1, 4));
    assert_eq!((page.page_count(), page.has_next()), (2, false));
    assert_eq!(names(page.items), ["divides", "e"]);
    let first = s
        .find::<fg_test_case::Entity>()
        .filter(fg_test_case::Column::Name.starts_with("d"))
        .order_by_asc(fg_test_case::Column::Name)
        .one()
        .await
        .unwrap();
    assert_eq!(first.unwrap().name, "d");
    assert_eq!(
        s.count::<fg_test_case::Entity>(fg_test_case::Column::Suite.eq("unit"))
            .await
            .unwrap(),
        6
    );
    assert!(matches!(
        s.find::<fg_test_case::Entity>().page(0, 0).await,
        Err(Error::InvalidInput { .. })
    ));
}

/// The dashboard question: one repository's tests whose flake score is above a threshold.
#[tokio::test]
async fn joins_reach_related_tables_with_their_own_tenant_predicate() {
    let w = world().await;
    let s = w.scope(&w.a);
    let repo = w.a.key("FGRepository");
    for (name, score) in [("p", 0.9), ("q", 0.1), ("r", 0.6)] {
        let c = s.insert(case(repo, name)).await.unwrap();
        s.insert(fg_flake_score::ActiveModel {
            test_id: Set(c.id),
            score: Set(score),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let flaky = s
        .find::<fg_test_case::Entity>()
        .inner_join::<fg_flake_score::Entity>()
        .filter(fg_test_case::Column::RepoId.eq(repo))
        .filter(fg_flake_score::Column::Score.gt(0.55))
        .order_by_desc(fg_flake_score::Column::Score)
        .all()
        .await
        .unwrap();
    assert_eq!(
        flaky.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["p", "r"]
    );

    // Many-to-many through the link table: the cluster's test cases.
    let in_cluster = s
        .find::<fg_test_case::Entity>()
        .inner_join::<fg_failure_cluster::Entity>()
        .count()
        .await
        .unwrap();
    assert_eq!(in_cluster, 2);

    // Child rows with their parent.
    let jobs = s
        .find::<workflow_job::Entity>()
        .all_with::<workflow_run::Entity>()
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].1.as_ref().map(|r| r.id.as_str()),
        Some(w.a.key("WorkflowRun"))
    );

    // Rows that break the tenant boundary, planted by the superuser, whom row-level security
    // does not restrict, after dropping the two tenant keys that would refuse them: the joined
    // table's own predicate is all that keeps them out (the Rust lock alone).
    let unscored = s.insert(case(repo, "z")).await.unwrap();
    w.admin
        .execute_unprepared(&format!(
            r#"ALTER TABLE "FGFlakeScore" DROP CONSTRAINT "FGFlakeScore_orgId_testId_fkey";
               ALTER TABLE "FGOccurrence" DROP CONSTRAINT "FGOccurrence_orgId_testId_fkey";
               INSERT INTO "FGFlakeScore" (id, "orgId", "testId", score, "lastUpdatedAt")
                 VALUES ('stray-score', 'org-b', '{a_case}', 0.99, now());
               INSERT INTO "FGOccurrence" (id, "orgId", "testId", "runId", status)
                 VALUES ('stray-occ', 'org-a', '{b_case}', '{a_run}', 'failed');"#,
            a_case = unscored.id,
            b_case = w.b.key("FGTestCase"),
            a_run = w.a.key("FGWorkflowRun"),
        ))
        .await
        .unwrap();
    let rust_lock_alone = TenantScope::new(w.admin.clone(), w.a.org.clone());
    let b_scores = rust_lock_alone
        .find::<fg_test_case::Entity>()
        .inner_join::<fg_flake_score::Entity>()
        .filter(fg_flake_score::Column::Score.gt(0.95))
        .count()
        .await
        .unwrap();
    assert_eq!(b_scores, 0, "A's join reached B's score");
    let with_cases = rust_lock_alone
        .find::<fg_occurrence::Entity>()
        .filter(fg_occurrence::Column::Id.eq("stray-occ"))
        .all_with::<fg_test_case::Entity>()
        .await
        .unwrap();
    assert_eq!(with_cases.len(), 1, "the occurrence is A's");
    assert_eq!(with_cases[0].1, None, "A's left join reached B's test case");
}

#[tokio::test]
async fn insert_fills_in_the_tenant_the_id_and_the_timestamp() {
    let w = world().await;
    // The database keeps microseconds; the crate's clock gives nanoseconds.
    let before = chrono::Utc::now() - chrono::Duration::microseconds(1);
    let c = w
        .scope(&w.a)
        .insert(case(w.a.key("FGRepository"), "new"))
        .await
        .unwrap();
    let after = chrono::Utc::now();
    assert_eq!(c.org_id, "org-a");
    assert!(cuid2::is_cuid2(&c.id));
    assert!(
        before <= c.updated_at && c.updated_at <= after,
        "updatedAt {} not set by this insert ({before} .. {after})",
        c.updated_at
    );
}

#[tokio::test]
async fn writes_naming_another_organization_are_refused_and_write_nothing() {
    let w = world().await;
    let s = w.scope(&w.a);
    let repo = w.a.key("FGRepository");
    let before = counts(&w.admin).await;

    let mut named = case(repo, "x");
    named.org_id = Set("org-b".into());
    let err = s.insert(named).await.unwrap_err();
    assert!(matches!(err, Error::TenantDenied { .. }), "{err}");
    let ctx = err.context().unwrap();
    assert_eq!(ctx.tenant.as_ref().map(OrgId::as_str), Some("org-a"));
    assert_eq!(ctx.table, Some("FGTestCase"));
    assert_eq!(ctx.operation, flakeguard_db::Operation::Insert);

    // A child under B's parent, and a row whose foreign key points at B's row.
    let err = s
        .insert(fg_job::ActiveModel {
            run_id: Set(w.b.key("FGWorkflowRun").to_owned()),
            job_id: Set("j".into()),
            name: Set("n".into()),
            status: Set("s".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TenantDenied { .. }), "{err}");
    let err = s
        .insert(case(w.b.key("FGRepository"), "y"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TenantDenied { .. }), "{err}");
    let text = err.to_string();
    for value in values_only_of(&w.admin, &w.a, &w.b).await {
        assert!(
            !text.contains(&value),
            "error carries B's {value:?}: {text}"
        );
    }

    // Moving an own row to B, or re-pointing it at B's repository.
    let own = s
        .find_by_id::<fg_test_case::Entity, _>(w.a.key("FGTestCase").to_owned())
        .await
        .unwrap()
        .unwrap();
    let mut moved: fg_test_case::ActiveModel = own.clone().into();
    moved.org_id = Set("org-b".into());
    assert!(matches!(
        s.update(moved).await,
        Err(Error::TenantDenied { .. })
    ));
    let mut repointed: fg_test_case::ActiveModel = own.clone().into();
    repointed.repo_id = Set(w.b.key("FGRepository").to_owned());
    assert!(matches!(
        s.update(repointed).await,
        Err(Error::TenantDenied { .. })
    ));
    let bulk = fg_test_case::ActiveModel {
        repo_id: Set(w.b.key("FGRepository").to_owned()),
        ..Default::default()
    };
    assert!(matches!(
        s.update_many(bulk, fg_test_case::Column::Name.eq("adds"))
            .await,
        Err(Error::TenantDenied { .. })
    ));

    // One bad row among many: none is written.
    let rows = vec![
        case(repo, "ok-1"),
        case(w.b.key("FGRepository"), "bad"),
        case(repo, "ok-2"),
    ];
    assert!(matches!(
        s.insert_many(rows).await,
        Err(Error::TenantDenied { .. })
    ));
    assert_eq!(counts(&w.admin).await, before, "nothing was written");
    let unchanged = s
        .find_by_id::<fg_test_case::Entity, _>(own.id.clone())
        .await
        .unwrap();
    assert_eq!(unchanged, Some(own));
}

#[tokio::test]
async fn update_and_delete_reach_only_the_tenants_own_rows() {
    let w = world().await;
    let s = w.scope(&w.a);
    let theirs = w.b.key("FGTestCase").to_owned();
    // On the application role (both locks), and on the superuser, whom row-level security does
    // not restrict: there the crate's own predicate is all that stands between A and B's row.
    for db in [&w.app, &w.admin] {
        let s = TenantScope::new(db.clone(), w.a.org.clone());
        assert_eq!(
            s.find_by_id::<fg_test_case::Entity, _>(theirs.clone())
                .await
                .unwrap(),
            None
        );
        let change = fg_test_case::ActiveModel {
            id: Set(theirs.clone()),
            owner_team: Set(Some("mine now".into())),
            ..Default::default()
        };
        assert!(matches!(
            s.update(change).await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            s.delete::<fg_test_case::Entity, _>(theirs.clone()).await,
            Err(Error::NotFound { .. })
        ));
    }
    let still = w
        .scope(&w.b)
        .find_by_id::<fg_test_case::Entity, _>(theirs)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.owner_team, None);

    // Own rows: update refreshes updatedAt, update_many too, delete removes.
    let own = s
        .find_by_id::<fg_test_case::Entity, _>(w.a.key("FGTestCase").to_owned())
        .await
        .unwrap()
        .unwrap();
    let mut change: fg_test_case::ActiveModel = own.clone().into();
    change.owner_team = Set(Some("core".into()));
    let updated = s.update(change).await.unwrap();
    assert_eq!(updated.owner_team.as_deref(), Some("core"));
    assert!(updated.updated_at > own.updated_at);
    let stamps: std::collections::HashMap<String, _> = s
        .find::<fg_test_case::Entity>()
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.updated_at))
        .collect();
    let bulk = fg_test_case::ActiveModel {
        suite: Set("integration".into()),
        ..Default::default()
    };
    assert_eq!(
        s.update_many(bulk, fg_test_case::Column::Suite.eq("unit"))
            .await
            .unwrap(),
        2
    );
    let all = s.find::<fg_test_case::Entity>().all().await.unwrap();
    assert_eq!(all.len(), 2);
    for c in &all {
        assert_eq!(c.suite, "integration");
        assert!(c.updated_at > stamps[&c.id], "{} kept its stamp", c.id);
    }
    let key = fg_test_case::ActiveModel {
        id: Set("new-id".into()),
        ..Default::default()
    };
    assert!(matches!(
        s.update_many(key, fg_test_case::Column::Suite.eq("x"))
            .await,
        Err(Error::InvalidInput { .. })
    ));
    s.delete::<fg_issue_link::Entity, _>(w.a.key("FGIssueLink").to_owned())
        .await
        .unwrap();
    assert_eq!(s.find::<fg_issue_link::Entity>().count().await.unwrap(), 0);
    assert_eq!(
        s.delete_many::<fg_occurrence::Entity>(fg_occurrence::Column::Status.eq("failed"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        w.scope(&w.b)
            .find::<fg_occurrence::Entity>()
            .count()
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn upsert_updates_the_tenants_own_row_and_never_another_tenants() {
    let w = world().await;
    let s = w.scope(&w.a);
    let test = w.a.key("FGTestCase").to_owned();
    let before = s
        .find::<fg_flake_score::Entity>()
        .filter(fg_flake_score::Column::TestId.eq(&test))
        .one()
        .await
        .unwrap()
        .unwrap();
    let score = s
        .upsert(
            fg_flake_score::ActiveModel {
                test_id: Set(test.clone()),
                score: Set(0.95),
                window_n: Set(100),
                ..Default::default()
            },
            [fg_flake_score::Column::TestId],
        )
        .await
        .unwrap();
    assert_eq!(score.id, before.id, "updated in place");
    assert_eq!((score.score, score.window_n), (0.95, 100));
    assert!(score.last_updated_at > before.last_updated_at);

    // "githubId" is unique across organizations: a conflict with B's repository must not
    // update it, with or without row-level security.
    for db in [&w.app, &w.admin] {
        let s = TenantScope::new(db.clone(), w.a.org.clone());
        let theirs = w
            .scope(&w.b)
            .find::<repository::Entity>()
            .one()
            .await
            .unwrap()
            .unwrap();
        let err = s
            .upsert(
                repository::ActiveModel {
                    github_id: Set(theirs.github_id),
                    node_id: Set("R_stolen".into()),
                    name: Set("stolen".into()),
                    full_name: Set("a/stolen".into()),
                    owner: Set("a".into()),
                    installation_id: Set(w.a.key("Installation").to_owned()),
                    ..Default::default()
                },
                [repository::Column::GithubId],
            )
            .await
            .unwrap_err();
        assert!(err.is_tenant_denied(), "{err}");
        let after = w
            .scope(&w.b)
            .find_by_id::<repository::Entity, _>(theirs.id.clone())
            .await
            .unwrap();
        assert_eq!(after, Some(theirs));
    }
}

#[tokio::test]
async fn insert_many_writes_ten_thousand_rows_in_chunks_with_defaults() {
    let w = world().await;
    let s = w.scope(&w.a);
    let repo = w.a.key("FGRepository");
    let cases: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..100 {
            ids.push(s.insert(case(repo, &format!("t{i}"))).await.unwrap().id);
        }
        ids
    };
    let mut runs = Vec::new();
    for r in 0..100 {
        runs.push(
            s.insert(fg_workflow_run::ActiveModel {
                repo_id: Set(repo.to_owned()),
                run_id: Set(format!("bulk-{r}")),
                status: Set("completed".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .id,
        );
    }
    let rows: Vec<fg_occurrence::ActiveModel> = (0..10_000)
        .map(|i| fg_occurrence::ActiveModel {
            test_id: Set(cases[i % 100].clone()),
            run_id: Set(runs[i / 100].clone()),
            status: Set(if i % 7 == 0 { "failed" } else { "passed" }.into()),
            // Half the rows set a duration; the others leave it to the default (NULL), and
            // every row leaves "attempt" to its default (1).
            duration_ms: if i % 2 == 0 {
                Set(Some(i as i32))
            } else {
                Default::default()
            },
            ..Default::default()
        })
        .collect();
    assert_eq!(s.insert_many(rows).await.unwrap(), 10_000);
    let stored = s
        .find::<fg_occurrence::Entity>()
        .filter(fg_occurrence::Column::RunId.is_in(runs.clone()))
        .all()
        .await
        .unwrap();
    assert_eq!(stored.len(), 10_000);
    assert!(stored.iter().all(|o| o.org_id == "org-a" && o.attempt == 1));
    assert_eq!(
        stored.iter().filter(|o| o.duration_ms.is_some()).count(),
        5_000
    );
    assert_eq!(
        s.insert_many(Vec::<fg_occurrence::ActiveModel>::new())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn the_scope_reaches_its_own_organization_row_only() {
    let w = world().await;
    let own = w.scope(&w.a).organization().await.unwrap().unwrap();
    assert_eq!(own.id, "org-a");
    let all = w
        .scope(&w.a)
        .find::<organization::Entity>()
        .all()
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    let nobody = TenantScope::new(w.app.clone(), OrgId::new("no-such-org").unwrap());
    assert_eq!(nobody.organization().await.unwrap(), None);
    let err = nobody
        .insert(fg_repository::ActiveModel {
            owner: Set("o".into()),
            name: Set("n".into()),
            installation_id: Set("i".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownOrganization { .. }), "{err}");
}

#[tokio::test]
async fn cross_tenant_access_needs_its_own_bypassrls_connection() {
    let w = world().await;
    let app_url = w.db.app_url().await.unwrap();
    let refused = flakeguard_db::CrossTenant::connect(&app_url)
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Config(_)), "{refused}");
    assert!(
        refused
            .to_string()
            .contains(r#"role "flakeguard_test_app""#),
        "names the role: {refused}"
    );
    let platform = flakeguard_db::CrossTenant::connect(&w.db.platform_url().await.unwrap())
        .await
        .unwrap();
    let ids: Vec<String> = platform
        .organization_ids()
        .await
        .unwrap()
        .iter()
        .map(|o| o.to_string())
        .collect();
    assert_eq!(ids, ["default-org-id", "org-a", "org-b"]);
    // A scope on the platform connection still filters by tenant, without RLS.
    let b = platform.scope(w.b.org.clone());
    assert_eq!(b.find::<fg_occurrence::Entity>().count().await.unwrap(), 2);
}

#[tokio::test]
async fn upsert_with_nothing_to_change_keeps_the_stored_row_and_its_id() {
    let w = world().await;
    let s = w.scope(&w.a);
    let conflict = [
        fg_occurrence::Column::OrgId,
        fg_occurrence::Column::RunId,
        fg_occurrence::Column::TestId,
    ];
    let row = || fg_occurrence::ActiveModel {
        test_id: Set(w.a.rows["FGTestCase"][1].clone()),
        run_id: Set(w.a.key("FGWorkflowRun").to_owned()),
        status: Set("failed".into()),
        ..Default::default()
    };
    // Stored (or, where the seed already recorded it, updated in place).
    let first = s.upsert(row(), conflict).await.unwrap();
    // The same occurrence delivered again, built from the stored row: every value unchanged,
    // no id (a fresh one is generated for the insert), nothing to update.
    let mut again: fg_occurrence::ActiveModel = first.clone().into();
    again.id = flakeguard_db::sea_orm::ActiveValue::NotSet;
    let second = s.upsert(again, conflict).await.unwrap();
    assert_eq!(
        second, first,
        "the stored row, its id included, is returned as it was"
    );
    let stored = s
        .find_by_id::<fg_occurrence::Entity, _>(first.id.clone())
        .await
        .unwrap();
    assert_eq!(stored, Some(first));
}

/// The error for a tenant whose organization does not exist is recognised by SQLSTATE and
/// constraint, not by PostgreSQL's English message: here a trigger raises the same error as
/// the foreign key would, with a German message, as a server with `lc_messages = 'de_DE'`
/// would send it.
#[tokio::test]
async fn an_unknown_organization_is_told_by_sqlstate_and_constraint_not_message_text() {
    let w = world().await;
    w.admin
        .execute_unprepared(
            r#"CREATE FUNCTION pg_temp_fk_de() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                 RAISE EXCEPTION USING
                   ERRCODE = '23503',
                   MESSAGE = 'Einfügen oder Aktualisieren in Tabelle »FGRepository« verletzt Fremdschlüssel-Constraint »FGRepository_orgId_fkey«',
                   CONSTRAINT = 'FGRepository_orgId_fkey',
                   TABLE = 'FGRepository';
               END $$;
               CREATE TRIGGER fk_de BEFORE INSERT ON "FGRepository"
                 FOR EACH ROW EXECUTE FUNCTION pg_temp_fk_de();"#,
        )
        .await
        .unwrap();
    let ghost = TenantScope::new(w.app.clone(), OrgId::new("ghost-org").unwrap());
    let err = ghost
        .insert(fg_repository::ActiveModel {
            owner: Set("ghost".into()),
            name: Set("web".into()),
            installation_id: Set("i".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownOrganization { .. }),
        "expected UnknownOrganization, got {err:?}"
    );
    assert!(
        err.to_string()
            .contains("organization ghost-org does not exist"),
        "{err}"
    );
}

/// CrossTenant's role check reports an answer it cannot read as the error it is, not as a
/// role named "" that lacks BYPASSRLS. Here the database's search path puts a `pg_roles` of
/// its own, whose flags are NULL, before the catalog's.
#[tokio::test]
async fn cross_tenants_role_check_reports_an_unreadable_answer() {
    let w = world().await;
    w.admin
        .execute_unprepared(&format!(
            r#"CREATE VIEW public.pg_roles AS
                 SELECT rolname, NULL::boolean AS rolbypassrls, NULL::boolean AS rolsuper
                 FROM pg_catalog.pg_roles;
               GRANT SELECT ON public.pg_roles TO PUBLIC;
               ALTER DATABASE "{}" SET search_path = public, pg_catalog;"#,
            w.db.name()
        ))
        .await
        .unwrap();
    let err = flakeguard_db::CrossTenant::connect(&w.db.platform_url().await.unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
    assert!(!err.to_string().contains("role \"\""), "{err}");
    assert_eq!(
        err.context().map(|c| c.operation),
        Some(flakeguard_db::Operation::Connect)
    );
}
