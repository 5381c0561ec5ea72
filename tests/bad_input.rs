//! Bad input gets a clear, typed error, and nothing is written. Every error names the tenant,
//! table and operation it concerns, and carries nothing of another tenant's data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flakeguard_db::entity::*;
use flakeguard_db::sea_orm::{DbBackend, Set, Statement};
use flakeguard_db::{CrossTenant, Error, GlobalTables, Operation, OrgId, Rejection, TenantScope};
use support::tenants::{counts, names_its_context, world};

#[test]
fn invalid_tenant_ids_are_refused_when_made() {
    let long = "x".repeat(65);
    for bad in [
        "",
        long.as_str(),
        "acme'",
        "acme\"",
        "a;b",
        "a; DROP TABLE x",
        "ünïcode",
        "a\0b",
        "a b",
        "a/b",
    ] {
        let err = OrgId::new(bad).unwrap_err();
        assert!(
            matches!(err, Error::InvalidTenantId { .. }),
            "{bad:?}: {err}"
        );
        assert!(!err.to_string().contains('\0'));
        assert!(bad.parse::<OrgId>().is_err());
    }
}

#[tokio::test]
async fn bad_writes_get_typed_errors_and_write_nothing() {
    support::bad_writes::bad_writes_get_typed_errors_and_write_nothing(&world().await).await;
}

#[tokio::test]
async fn rows_from_bad_json_are_refused_before_the_database() {
    let w = world().await;
    let s = TenantScope::new(w.app.clone(), w.a.org.clone());
    let test = w.a.key("FGTestCase");
    let good: fg_quarantine_decision::ActiveModel = s
        .row_from_json(&format!(
            r#"{{"test_id": "{test}", "state": "ACTIVE", "rationale": "fails on Mondays"}}"#
        ))
        .unwrap();
    let stored = s.insert(good).await.unwrap();
    assert_eq!(
        stored.state,
        flakeguard_db::entity::enums::FgQuarantineState::Active
    );

    for (json, expect) in [
        (r#"{"test_id": "x", "state": "MAYBE"}"#.to_owned(), "MAYBE"),
        (r#"{"test_id": "x", "state": 7}"#.to_owned(), "state"),
        ("{not json".to_owned(), "malformed JSON"),
        ("[1, 2]".to_owned(), "JSON object"),
        // A misspelt key would otherwise be ignored, and the field silently left unset.
        (
            r#"{"test_id": "x", "rationale": "r", "sate": "ACTIVE"}"#.to_owned(),
            r#"unknown field "sate""#,
        ),
    ] {
        let err = s
            .row_from_json::<fg_quarantine_decision::ActiveModel>(&json)
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{json}: {err}");
        assert!(err.to_string().contains(expect), "{json}: {err}");
        assert!(err.db_err().is_none(), "{json} reached the database: {err}");
        names_its_context(&err, &w, "FGQuarantineDecision", Operation::Parse);
    }
}

/// Reads, updates and deletes aimed at another tenant's rows fail (or find nothing) without
/// a word about those rows.
#[tokio::test]
async fn errors_about_another_tenants_rows_say_nothing_about_them() {
    support::bad_writes::errors_about_another_tenants_rows_say_nothing_about_them(&world().await)
        .await;
}

#[tokio::test]
async fn an_update_without_its_primary_key_names_the_key() {
    let w = world().await;
    let s = TenantScope::new(w.app.clone(), w.a.org.clone());
    let before = counts(&w.admin).await;
    let err = s
        .update(fg_test_case::ActiveModel {
            owner_team: Set(Some("core".into())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains(r#""id" is not set"#), "{err}");
    names_its_context(&err, &w, "FGTestCase", Operation::Update);
    assert_eq!(counts(&w.admin).await, before);
}

#[tokio::test]
async fn an_upsert_on_columns_no_unique_constraint_covers_names_them() {
    let w = world().await;
    let s = TenantScope::new(w.app.clone(), w.a.org.clone());
    let before = counts(&w.admin).await;
    let err = s
        .upsert(
            fg_test_case::ActiveModel {
                repo_id: Set(w.a.key("FGRepository").to_owned()),
                suite: Set("unit".into()),
                name: Set("adds".into()),
                ..Default::default()
            },
            [fg_test_case::Column::Suite, fg_test_case::Column::Name],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(r#"("suite", "name")"#) && text.contains("unique constraint"),
        "{text}"
    );
    names_its_context(&err, &w, "FGTestCase", Operation::Upsert);
    assert_eq!(counts(&w.admin).await, before);
}

#[tokio::test]
async fn connecting_where_nothing_listens_fails_at_once_with_the_connection_error() {
    let port = flakeguard_db::testing::free_port().unwrap();
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        flakeguard_db::connect(&format!("postgres://nobody@127.0.0.1:{port}/db")),
    )
    .await
    .expect("connect waited out the pool's timeout instead of failing");
    let err = result.unwrap_err();
    assert!(err.is_connection_error(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("refused"), "{text}");
    assert!(!text.contains("timed out"), "{text}");
    assert_eq!(err.context().map(|c| c.operation), Some(Operation::Connect));
    eprintln!("connect failed after {:?}: {text}", started.elapsed());
}

/// Each handle maps the database's refusals the same way: `Rejected` with its kind.
/// (Global tables have no row-level security, and CrossTenant's role bypasses it, so
/// `RowLevelSecurity` arises through a scope only; nothing global references another table,
/// so `MissingReference` does not arise through GlobalTables.)
#[tokio::test]
async fn every_handle_maps_each_rejection_kind_alike() {
    let w = world().await;
    let s = TenantScope::new(w.app.clone(), w.a.org.clone());
    let global = GlobalTables::new(w.app.clone());
    let platform = CrossTenant::connect(&w.db.platform_url().await.unwrap())
        .await
        .unwrap();
    let raw = |sql: &str| Statement::from_string(DbBackend::Postgres, sql.to_owned());
    let user = |email: &str| user::ActiveModel {
        email: Set(email.to_owned()),
        ..Default::default()
    };
    let taken = w.a.key("FGTestCase").to_owned();
    let before = counts(&w.admin).await;

    let mut cases: Vec<(&str, Rejection, Error)> = Vec::new();
    // Through a scope.
    let dup = fg_test_case::ActiveModel {
        id: Set(taken.clone()),
        repo_id: Set(w.a.key("FGRepository").to_owned()),
        suite: Set("s".into()),
        name: Set("n".into()),
        ..Default::default()
    };
    cases.push((
        "scope",
        Rejection::Duplicate,
        s.insert(dup).await.unwrap_err(),
    ));
    let unnamed = fg_test_case::ActiveModel {
        repo_id: Set(w.a.key("FGRepository").to_owned()),
        suite: Set("s".into()),
        ..Default::default()
    };
    cases.push((
        "scope",
        Rejection::MissingValue,
        s.insert(unnamed).await.unwrap_err(),
    ));
    let orphan = organization_user::ActiveModel {
        user_id: Set("no-such-user".into()),
        ..Default::default()
    };
    cases.push((
        "scope",
        Rejection::MissingReference,
        s.insert(orphan).await.unwrap_err(),
    ));
    let nul = fg_test_case::ActiveModel {
        repo_id: Set(w.a.key("FGRepository").to_owned()),
        suite: Set("s".into()),
        name: Set("nul\0byte".into()),
        ..Default::default()
    };
    cases.push((
        "scope",
        Rejection::InvalidValue,
        s.insert(nul).await.unwrap_err(),
    ));
    cases.push((
        "scope",
        Rejection::RowLevelSecurity,
        s.execute_raw(raw(
            r#"INSERT INTO "FGRepository" (id, "orgId", owner, name, "installationId", "updatedAt")
               VALUES ('x', 'org-b', 'o', 'n', 'i', now())"#,
        ))
        .await
        .unwrap_err(),
    ));
    // Through GlobalTables.
    cases.push((
        "global",
        Rejection::Duplicate,
        global.insert(user("org-a@example.com")).await.unwrap_err(),
    ));
    cases.push((
        "global",
        Rejection::MissingValue,
        global
            .insert(user::ActiveModel::default())
            .await
            .unwrap_err(),
    ));
    cases.push((
        "global",
        Rejection::InvalidValue,
        global.insert(user("nul\0@example.com")).await.unwrap_err(),
    ));
    // Through CrossTenant.
    cases.push((
        "cross-tenant",
        Rejection::Duplicate,
        platform
            .execute_raw(raw(&format!(
                r#"INSERT INTO "FGTestCase" (id, "orgId", "repoId", suite, name, "updatedAt")
                   SELECT id, "orgId", "repoId", suite, name, now() FROM "FGTestCase" WHERE id = '{taken}'"#
            )))
            .await
            .unwrap_err(),
    ));
    cases.push((
        "cross-tenant",
        Rejection::MissingValue,
        platform
            .execute_raw(raw(
                r#"INSERT INTO "User" (id, "updatedAt") VALUES ('u', now())"#,
            ))
            .await
            .unwrap_err(),
    ));
    cases.push((
        "cross-tenant",
        Rejection::MissingReference,
        platform
            .execute_raw(raw(
                r#"INSERT INTO "OrganizationUser" (id, "orgId", "userId", "updatedAt")
                   VALUES ('ou', 'org-a', 'no-such-user', now())"#,
            ))
            .await
            .unwrap_err(),
    ));
    cases.push((
        "cross-tenant",
        Rejection::InvalidValue,
        platform
            .execute_raw(raw(r#"UPDATE "FGQuarantineDecision" SET state = 'MAYBE'"#))
            .await
            .unwrap_err(),
    ));

    for (handle, kind, err) in &cases {
        assert_eq!(err.rejection(), Some(*kind), "{handle}: {err:?}");
        assert!(matches!(err, Error::Rejected { .. }), "{handle}: {err:?}");
        let ctx = err.context().expect("a context");
        match *handle {
            "scope" => assert_eq!(ctx.tenant.as_ref().map(OrgId::as_str), Some("org-a")),
            _ => assert_eq!(ctx.tenant, None, "{handle}: {err}"),
        }
    }
    assert!(cases.iter().any(|(_, _, e)| e.is_unique_violation()));
    assert!(cases.iter().any(|(_, _, e)| e.is_not_null_violation()));
    assert!(cases.iter().any(|(_, _, e)| e.is_foreign_key_violation()));
    assert_eq!(
        counts(&w.admin).await,
        before,
        "a refused write changed something"
    );
}
