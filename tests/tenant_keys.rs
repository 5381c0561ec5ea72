//! Tenant keys in the schema (migration step 8): every row of tenant data carries "orgId", and
//! every foreign key between tenant data has a composite twin, so that a reference to another
//! organization's row is refused by the schema itself, for every role: the superuser and a
//! BYPASSRLS role here, whom row-level security does not restrict. Also: policies without
//! subqueries, "orgId" from the transaction's tenant for SQL that leaves it out, and NULLs
//! that count as equal in the unique constraints over nullable columns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flakeguard_db::entity::*;
use flakeguard_db::sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, Set, Statement, TransactionTrait,
};
use flakeguard_db::{Error, TenantScope};
use support::tenants::{World, key_sql, world};

fn stmt(sql: impl Into<String>, values: Vec<flakeguard_db::sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// The composite tenant keys, from the catalog: (table, column, parent, constraint).
async fn tenant_keys(admin: &DatabaseConnection) -> Vec<(String, String, String, String)> {
    admin
        .query_all_raw(stmt(
            "SELECT c.relname::text AS t, a.attname::text AS col, r.relname::text AS parent,
                    con.conname::text AS name
             FROM pg_constraint con
             JOIN pg_class c ON c.oid = con.conrelid
             JOIN pg_class r ON r.oid = con.confrelid
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[2]
             WHERE con.contype = 'f' AND array_length(con.conkey, 1) = 2
             ORDER BY 1, 2",
            vec![],
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.try_get("", "t").unwrap(),
                r.try_get("", "col").unwrap(),
                r.try_get("", "parent").unwrap(),
                r.try_get("", "name").unwrap(),
            )
        })
        .collect()
}

/// A row of B's in `parent` that A's row may point at without meeting a unique constraint
/// first: B's own rows are taken by B's children where a unique constraint covers the column.
async fn target_of_b(w: &World, parent: &str) -> String {
    match parent {
        // FGFlakeScore."testId" is unique, and each of B's seeded test cases has its score.
        "FGTestCase" => {
            let spare = format!("spare-case-{}", w.b.org);
            w.admin
                .execute_raw(stmt(
                    r#"INSERT INTO "FGTestCase" (id, "orgId", "repoId", suite, name, "updatedAt")
                       VALUES ($1, $2, $3, 'spare', 'spare', now()) ON CONFLICT DO NOTHING"#,
                    vec![
                        spare.clone().into(),
                        w.b.org.as_str().into(),
                        w.b.key("FGRepository").into(),
                    ],
                ))
                .await
                .unwrap();
            spare
        }
        other => w.b.key(other).to_owned(),
    }
}

/// Points A's row of `table` at B's `parent` row through `col`, by UPDATE and by INSERT of a
/// copy, on `db`; both must be refused by the tenant key `name`.
async fn refused_both_ways(
    db: &DatabaseConnection,
    w: &World,
    (table, col, parent, name): &(String, String, String, String),
) -> Vec<String> {
    let mut problems = Vec::new();
    let target = target_of_b(w, parent).await;
    // FGJob's ("runId", "jobId") is unique: a moved job takes a "jobId" of its own.
    let extra = if table == "FGJob" {
        r#", "jobId" = 'moved'"#
    } else {
        ""
    };
    let update = format!(
        r#"UPDATE "{table}" SET "{col}" = $1{extra} WHERE ({}) = $2"#,
        key_sql(table)
    );
    // The copy replaces the original in the same statement, so that its other unique values
    // do not collide with it.
    let moved = if table == "FGJob" {
        serde_json::json!({"id": "copy", "jobId": "moved"})
    } else {
        serde_json::json!({"id": "copy"})
    };
    let insert = format!(
        r#"WITH gone AS (DELETE FROM "{table}" t WHERE ({key}) = $2 RETURNING t.*)
           INSERT INTO "{table}"
           SELECT (jsonb_populate_record(NULL::"{table}",
                   to_jsonb(g) || $3::jsonb || jsonb_build_object('{col}', $1::text))).*
           FROM gone g"#,
        key = key_sql(table)
    );
    for (how, sql, values) in [
        (
            "update",
            update,
            vec![target.clone().into(), w.a.key(table).into()],
        ),
        (
            "insert",
            insert,
            vec![
                target.clone().into(),
                w.a.key(table).into(),
                moved.to_string().into(),
            ],
        ),
    ] {
        let tx = db.begin().await.unwrap();
        match tx.execute_raw(stmt(sql, values)).await {
            Ok(r) => problems.push(format!(
                "{table}.{col} -> {parent}: {how} went through ({} rows)",
                r.rows_affected()
            )),
            Err(e) => {
                let text = e.to_string();
                if !(text.contains("23503") || text.contains("foreign key"))
                    || !text.contains(name.as_str())
                {
                    problems.push(format!("{table}.{col} -> {parent}: {how}: {text}"));
                }
            }
        }
        tx.rollback().await.unwrap();
    }
    problems
}

#[tokio::test]
async fn the_schema_refuses_every_cross_tenant_reference_for_every_role() {
    let w = world().await;
    let keys = tenant_keys(&w.admin).await;
    assert_eq!(keys.len(), 31, "composite tenant keys: {keys:#?}");
    let platform = Database::connect(w.db.platform_url().await.unwrap())
        .await
        .unwrap();
    let mut problems = Vec::new();
    for db in [&w.admin, &platform] {
        for key in &keys {
            problems.extend(refused_both_ways(db, &w, key).await);
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The refusal through a scope, on a connection that bypasses RLS, is TenantDenied.
    let a = TenantScope::new(w.admin.clone(), w.a.org.clone());
    let err = a
        .execute_raw(stmt(
            r#"UPDATE "FGOccurrence" SET "testId" = $1 WHERE id = $2"#,
            vec![
                target_of_b(&w, "FGTestCase").await.into(),
                w.a.key("FGOccurrence").into(),
            ],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TenantDenied { .. }), "{err:?}");
}

#[tokio::test]
async fn no_policy_holds_a_subquery() {
    let w = world().await;
    let rows = w
        .admin
        .query_all_raw(stmt(
            "SELECT tablename::text AS t, coalesce(qual, '') || ' ' || coalesce(with_check, '') AS p
             FROM pg_policies WHERE schemaname = 'public'",
            vec![],
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 25);
    for r in &rows {
        let (t, p): (String, String) = (r.try_get("", "t").unwrap(), r.try_get("", "p").unwrap());
        assert!(!p.to_lowercase().contains("select"), "{t}: {p}");
        assert!(
            p.contains("current_setting('app.current_tenant_id'"),
            "{t}: {p}"
        );
    }
    // That they still fail closed with no tenant set, for the children too, is
    // `without_a_tenant_nothing_is_visible` in tests/isolation.rs, over every scoped table.
}

/// SQL written against the contract's column lists, which omit the children's "orgId", keeps
/// working inside a tenant transaction: the column takes the transaction's tenant. With no
/// tenant set, the insert is refused.
#[tokio::test]
async fn children_take_the_transactions_tenant_when_sql_leaves_org_id_out() {
    let w = world().await;
    let a = w.scope(&w.a);
    let insert = || {
        stmt(
            r#"INSERT INTO "FGJob" (id, "runId", "jobId", name, status, "updatedAt")
               VALUES ('raw-job', $1, 'raw', 'raw', 'queued', now())"#,
            vec![w.a.key("FGWorkflowRun").into()],
        )
    };
    a.execute_raw(insert()).await.unwrap();
    let job = a
        .find_by_id::<fg_job::Entity, _>("raw-job")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.org_id, "org-a");
    // The same SQL with no tenant: NOT NULL refuses it, naming the column.
    let tx = w.admin.begin().await.unwrap();
    let err = tx
        .execute_raw(stmt(
            r#"INSERT INTO "FGJob" (id, "runId", "jobId", name, status, "updatedAt")
               VALUES ('raw-job-2', $1, 'raw-2', 'raw', 'queued', now())"#,
            vec![w.a.key("FGWorkflowRun").into()],
        ))
        .await
        .unwrap_err()
        .to_string();
    tx.rollback().await.unwrap();
    assert!(err.contains("orgId") && err.contains("null value"), "{err}");
    // Through a scope, children get "orgId" filled in, as tenant tables do.
    let issue = a
        .insert(fg_issue_link::ActiveModel {
            test_id: Set(w.a.key("FGTestCase").to_owned()),
            url: Set("https://example.com/issues/2".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(issue.org_id, "org-a");
}

#[tokio::test]
async fn a_test_case_upserted_twice_without_a_class_name_is_stored_once() {
    let w = world().await;
    let a = w.scope(&w.a);
    let case = || fg_test_case::ActiveModel {
        repo_id: Set(w.a.key("FGRepository").to_owned()),
        suite: Set("junit".into()),
        class_name: Set(None),
        name: Set("no_class".into()),
        ..Default::default()
    };
    let conflict = [
        fg_test_case::Column::OrgId,
        fg_test_case::Column::RepoId,
        fg_test_case::Column::Suite,
        fg_test_case::Column::ClassName,
        fg_test_case::Column::Name,
    ];
    let first = a.upsert(case(), conflict).await.unwrap();
    let second = a.upsert(case(), conflict).await.unwrap();
    assert_eq!(second.id, first.id);
    let n = a
        .count::<fg_test_case::Entity>(flakeguard_db::sea_orm::ColumnTrait::eq(
            &fg_test_case::Column::Name,
            "no_class",
        ))
        .await
        .unwrap();
    assert_eq!(n, 1);
}
