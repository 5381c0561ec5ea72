//! Bad input gets a clear, typed error, and nothing is written. Every error names the tenant,
//! table and operation it concerns, and carries nothing of another tenant's data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flakeguard_db::entity::*;
use flakeguard_db::sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Set, Statement};
use flakeguard_db::{Error, Operation, OrgId, Rejection, TenantScope};
use support::tenants::{SCOPED_TABLES, World, world};

/// Row counts of every table, as the superuser sees them.
async fn counts(admin: &DatabaseConnection) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for (table, _) in SCOPED_TABLES.iter().chain([&("User", "id")]) {
        let row = admin
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!(r#"SELECT count(*) AS n FROM "{table}""#),
            ))
            .await
            .unwrap()
            .unwrap();
        out.push((table.to_string(), row.try_get::<i64>("", "n").unwrap()));
    }
    out
}

/// The error names tenant A, `table` and `operation`, and nothing of tenant B.
fn names_its_context(err: &Error, w: &World, table: &str, operation: Operation) {
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
    assert!(!text.contains("org-b"), "names the other tenant: {text}");
    for keys in w.b.rows.values() {
        for key in keys {
            assert!(
                !text.contains(key.as_str()),
                "carries the other tenant's {key}: {text}"
            );
        }
    }
}

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
    let w = world().await;
    let s = TenantScope::new(w.app.clone(), w.a.org.clone());
    let before = counts(&w.admin).await;
    let repo = w.a.key("FGRepository").to_owned();

    // An organization that does not exist.
    let nobody = TenantScope::new(w.app.clone(), OrgId::new("no-such-org").unwrap());
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
    assert!(
        err.to_string()
            .contains("organization no-such-org does not exist"),
        "{err}"
    );

    // A required field missing.
    let err = s
        .insert(fg_test_case::ActiveModel {
            repo_id: Set(repo.clone()),
            suite: Set("unit".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.rejection(), Some(Rejection::MissingValue), "{err}");
    assert!(
        err.is_not_null_violation() && err.to_string().contains("\"name\""),
        "{err}"
    );
    names_its_context(&err, &w, "FGTestCase", Operation::Insert);

    // A duplicate key: the seeded test case again.
    let err = s
        .insert(fg_test_case::ActiveModel {
            repo_id: Set(repo.clone()),
            suite: Set("unit".into()),
            class_name: Set(Some("Math".into())),
            name: Set("adds".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.rejection(), Some(Rejection::Duplicate), "{err}");
    assert!(err.is_unique_violation());
    names_its_context(&err, &w, "FGTestCase", Operation::Insert);

    // A foreign key to a row that does not exist, and to another tenant's row: the same
    // refusal, so that the existence of another tenant's row does not show.
    for test_id in ["no-such-test".to_owned(), w.b.key("FGTestCase").to_owned()] {
        let err = s
            .insert(fg_occurrence::ActiveModel {
                test_id: Set(test_id),
                run_id: Set(w.a.key("FGWorkflowRun").to_owned()),
                status: Set("failed".into()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TenantDenied { .. }), "{err}");
        names_its_context(&err, &w, "FGOccurrence", Operation::Insert);
    }
    // A foreign key to a missing global row is the database's to refuse.
    let err = s
        .insert(organization_user::ActiveModel {
            user_id: Set("no-such-user".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.rejection(), Some(Rejection::MissingReference), "{err}");
    assert!(err.is_foreign_key_violation());
    names_its_context(&err, &w, "OrganizationUser", Operation::Insert);

    // A row that names another organization.
    let err = s
        .insert(fg_repository::ActiveModel {
            org_id: Set("org-b".into()),
            owner: Set("o".into()),
            name: Set("n".into()),
            installation_id: Set("i".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TenantDenied { .. }), "{err}");
    let ctx = err.context().unwrap();
    assert_eq!(
        (ctx.table, ctx.operation),
        (Some("FGRepository"), Operation::Insert)
    );

    // A missing caller-supplied id.
    let err = s
        .insert(installation::ActiveModel {
            github_installation_id: Set(1),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    names_its_context(&err, &w, "Installation", Operation::Insert);

    // A wrong enum value and malformed JSON, from raw SQL inside the scope.
    let raw = |sql: &str| Statement::from_string(DbBackend::Postgres, sql.to_owned());
    let err = s
        .execute_raw(raw(r#"UPDATE "FGQuarantineDecision" SET state = 'MAYBE'"#))
        .await
        .unwrap_err();
    assert_eq!(err.rejection(), Some(Rejection::InvalidValue), "{err}");
    assert!(err.to_string().contains("MAYBE"), "{err}");
    let err = s
        .execute_raw(raw(
            r#"UPDATE "Organization" SET settings = '{"unterminated'"#,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.rejection(), Some(Rejection::InvalidValue), "{err}");

    assert_eq!(
        counts(&w.admin).await,
        before,
        "a refused write changed something"
    );
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

    let before = counts(&w.admin).await;
    for (json, expect) in [
        (r#"{"test_id": "x", "state": "MAYBE"}"#.to_owned(), "MAYBE"),
        (r#"{"test_id": "x", "state": 7}"#.to_owned(), "state"),
        ("{not json".to_owned(), "malformed JSON"),
        ("[1, 2]".to_owned(), "JSON object"),
    ] {
        let err = s
            .row_from_json::<fg_quarantine_decision::ActiveModel>(&json)
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{json}: {err}");
        assert!(err.to_string().contains(expect), "{json}: {err}");
        names_its_context(&err, &w, "FGQuarantineDecision", Operation::Parse);
    }
    assert_eq!(counts(&w.admin).await, before);
}

/// Reads, updates and deletes aimed at another tenant's rows fail (or find nothing) without
/// a word about those rows.
#[tokio::test]
async fn errors_about_another_tenants_rows_say_nothing_about_them() {
    let w = world().await;
    let s = TenantScope::new(w.app.clone(), w.a.org.clone());
    let theirs = w.b.key("FGTestCase").to_owned();
    let err = s
        .update(fg_test_case::ActiveModel {
            id: Set(theirs.clone()),
            owner_team: Set(Some("x".into())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    names_its_context(&err, &w, "FGTestCase", Operation::Update);
    let err = s
        .delete::<fg_test_case::Entity, _>(theirs.clone())
        .await
        .unwrap_err();
    names_its_context(&err, &w, "FGTestCase", Operation::Delete);
    let err = s
        .update(fg_test_case::ActiveModel {
            id: Set(w.a.key("FGTestCase").to_owned()),
            repo_id: Set(w.b.key("FGRepository").to_owned()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TenantDenied { .. }), "{err}");
    names_its_context(&err, &w, "FGTestCase", Operation::Update);
    // Row-level security's refusal, going around the crate's own check.
    let err = s
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            r#"UPDATE "FGTestCase" SET "repoId" = $1 WHERE id = $2"#,
            [w.b.key("FGRepository").into(), w.a.key("FGTestCase").into()],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.rejection(), Some(Rejection::RowLevelSecurity), "{err}");
    assert!(err.is_tenant_denied());
    assert!(!err.to_string().contains("org-b"), "{err}");
}
