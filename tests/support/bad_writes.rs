//! The bad-input cases of tests/bad_input.rs that touch data, on any seeded [`World`]: one
//! server (tests/bad_input.rs) or the Citus cluster (tests/citus.rs).

use flakeguard_db::entity::*;
use flakeguard_db::sea_orm::{ConnectionTrait, DbBackend, Set, Statement};
use flakeguard_db::{Error, Operation, OrgId, Rejection, TenantScope};

use super::tenants::{World, counts, names_its_context, values_only_of};

/// Bad writes get typed errors naming their tenant, table and operation, and write nothing.
pub async fn bad_writes_get_typed_errors_and_write_nothing<D>(w: &World<D>) {
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
    names_its_context(&err, w, "FGTestCase", Operation::Insert);

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
    names_its_context(&err, w, "FGTestCase", Operation::Insert);

    // A foreign key to a row that does not exist, and to another tenant's row: the same
    // refusal, so that the existence of another tenant's row does not show.
    let mut texts = Vec::new();
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
        names_its_context(&err, w, "FGOccurrence", Operation::Insert);
        texts.push(err.to_string());
    }
    assert_eq!(
        texts[0], texts[1],
        "a missing row and B's row are told apart"
    );
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
    names_its_context(&err, w, "OrganizationUser", Operation::Insert);

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
    names_its_context(&err, w, "Installation", Operation::Insert);

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

/// Errors about another tenant's rows are the errors of missing rows, and carry nothing of
/// them.
pub async fn errors_about_another_tenants_rows_say_nothing_about_them<D>(w: &World<D>) {
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
    names_its_context(&err, w, "FGTestCase", Operation::Update);
    let err = s
        .delete::<fg_test_case::Entity, _>(theirs.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    names_its_context(&err, w, "FGTestCase", Operation::Delete);
    let err = s
        .update(fg_test_case::ActiveModel {
            id: Set(w.a.key("FGTestCase").to_owned()),
            repo_id: Set(w.b.key("FGRepository").to_owned()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TenantDenied { .. }), "{err}");
    names_its_context(&err, w, "FGTestCase", Operation::Update);
    // Going around the crate's own check: the tenant key refuses a row pointed at B's row,
    // row-level security a row moved to B.
    let err = s
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            r#"UPDATE "FGTestCase" SET "repoId" = $1 WHERE id = $2"#,
            [w.b.key("FGRepository").into(), w.a.key("FGTestCase").into()],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TenantDenied { .. }), "{err:?}");
    assert!(
        err.to_string().contains("FGTestCase_orgId_repoId_fkey"),
        "{err}"
    );
    let moved = s
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            r#"UPDATE "FGTestCase" SET "orgId" = $1 WHERE id = $2"#,
            ["org-b".into(), w.a.key("FGTestCase").into()],
        ))
        .await
        .unwrap_err();
    // Citus refuses any change of the distribution column before row-level security sees it
    // (SQLSTATE 0A000, "modifying the partition value of rows is not allowed").
    let on_citus = w
        .admin
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM pg_extension WHERE extname = 'citus'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap()
        == 1;
    if on_citus {
        assert_eq!(moved.sql_state(), Some("0A000"), "{moved}");
    } else {
        assert_eq!(
            moved.rejection(),
            Some(Rejection::RowLevelSecurity),
            "{moved}"
        );
        assert!(moved.is_tenant_denied());
    }
    let secrets = values_only_of(&w.admin, &w.a, &w.b).await;
    assert!(err.is_tenant_denied());
    for err in [&err, &moved] {
        let text = err.to_string();
        for value in &secrets {
            assert!(!text.contains(value), "carries B's {value:?}: {text}");
        }
    }
}
