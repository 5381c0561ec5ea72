//! No organization can see or touch another's rows: both locks, each on its own.
//!
//! Two organizations hold a row in each of the 25 scoped tables. Every check runs as a LOGIN
//! role in `flakeguard_app` (subject to row-level security); the TenantScope checks run a second
//! time as the superuser, where row-level security does not apply, to show that the Rust lock
//! holds alone; the raw-SQL checks go around TenantScope to show that the database lock holds
//! alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use flakeguard_db::TenantScope;
use flakeguard_db::sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait, Value};
use support::checks::{all_typed_violations, everything, stmt};
use support::tenants::{SCOPED_TABLES, Tenant, key_sql, world};

#[tokio::test]
async fn tenant_scope_shows_each_tenant_only_its_own_rows_in_every_table() {
    let w = world().await;
    let before = everything(&w.admin).await;
    let violations = all_typed_violations(&w.app, &w.a, &w.b).await;
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(
        everything(&w.admin).await,
        before,
        "a cross-tenant write changed something"
    );
}

/// The same checks as the superuser, to whom row-level security does not apply: the crate's
/// own predicate is the only lock, and it holds.
#[tokio::test]
async fn tenant_scope_isolates_tenants_without_row_level_security() {
    let w = world().await;
    let before = everything(&w.admin).await;
    let violations = all_typed_violations(&w.admin, &w.a, &w.b).await;
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(
        everything(&w.admin).await,
        before,
        "a cross-tenant write changed something"
    );
}

/// Raw SQL inside each tenant's scope: row-level security alone decides what it sees and
/// changes. Returns what went wrong.
async fn raw_violations(app: &DatabaseConnection, a: &Tenant, b: &Tenant) -> Vec<String> {
    let mut out = Vec::new();
    for (own, other) in [(a, b), (b, a)] {
        let scope = TenantScope::new(app.clone(), own.org.clone());
        for (table, key) in SCOPED_TABLES.iter().map(|(t, k)| (*t, k.as_str())) {
            let rows = match scope
                .query_raw(stmt(
                    format!(r#"SELECT {key} AS k FROM "{table}" ORDER BY 1"#),
                    vec![],
                ))
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    out.push(format!("{table}: raw select failed: {e}"));
                    continue;
                }
            };
            let keys: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<String>("", "k").unwrap())
                .collect();
            if keys != own.rows[table] {
                out.push(format!(
                    "{table}: raw SQL as {} saw {keys:?}, owns {:?}",
                    own.org, own.rows[table]
                ));
            }
            let theirs = Value::from(other.rows[table].clone());
            let first = if table == "_FGFailureClusterToFGTestCase" {
                "\"A\""
            } else {
                "\"id\""
            };
            for sql in [
                format!(
                    r#"UPDATE "{table}" SET {first} = {first} WHERE ({key}) IN (SELECT unnest($1::text[]))"#
                ),
                format!(r#"DELETE FROM "{table}" WHERE ({key}) IN (SELECT unnest($1::text[]))"#),
            ] {
                match scope.execute_raw(stmt(&sql, vec![theirs.clone()])).await {
                    Ok(r) if r.rows_affected() == 0 => {}
                    r => out.push(format!("{table}: as {}: {sql}: {r:?}", own.org)),
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn raw_sql_in_a_scope_sees_and_changes_only_its_tenants_rows() {
    let w = world().await;
    let before = everything(&w.admin).await;
    let violations = raw_violations(&w.app, &w.a, &w.b).await;
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(everything(&w.admin).await, before);
}

/// Going around TenantScope, a copy of A's own row moved into B (by "orgId", or by its parent
/// for child tables) is refused by the database itself, in every table: by row-level security
/// (42501) where the row names B, by the composite tenant key (23503) where it points at B's
/// parent.
#[tokio::test]
async fn database_refuses_rows_for_another_tenant_in_every_table() {
    let w = world().await;
    let scope = TenantScope::new(w.app.clone(), w.a.org.clone());
    let b = &w.b;
    for (table, key) in SCOPED_TABLES.iter().map(|(t, k)| (*t, k.as_str())) {
        let changes = match table {
            "Organization" => serde_json::json!({"id": "org-c", "slug": "org-c"}),
            "WorkflowJob" | "Artifact" => {
                serde_json::json!({"id": "x", "workflowRunId": b.key("WorkflowRun")})
            }
            "FGJob" => {
                serde_json::json!({"id": "x", "runId": b.key("FGWorkflowRun"), "jobId": "moved"})
            }
            "FGIssueLink" => serde_json::json!({"id": "x", "testId": b.key("FGTestCase")}),
            "_FGFailureClusterToFGTestCase" => {
                serde_json::json!({"A": b.key("FGFailureCluster")})
            }
            _ => serde_json::json!({"id": "x", "orgId": b.org.as_str()}),
        };
        // The original goes in the same statement, so that its unique values do not collide
        // with the copy's (a statement that fails changes nothing).
        let sql = format!(
            r#"WITH gone AS (DELETE FROM "{table}" t WHERE ({key}) = $2 RETURNING t.*)
               INSERT INTO "{table}"
               SELECT (jsonb_populate_record(NULL::"{table}", to_jsonb(g) || $1::jsonb)).*
               FROM gone g"#
        );
        let err = scope
            .execute_raw(stmt(
                sql,
                vec![
                    Value::from(changes.to_string()),
                    Value::from(w.a.key(table)),
                ],
            ))
            .await
            .expect_err(table);
        assert!(
            matches!(err, flakeguard_db::Error::TenantDenied { .. })
                || err.sql_state() == Some("42501"),
            "{table}: {err}"
        );
        assert!(err.is_tenant_denied(), "{table}: {err:?}");
    }
}

/// Every foreign key from a scoped table to tenant data, re-pointed from A's row to B's, is
/// refused by the database itself (the composite tenant key of migration step 8, or row-level
/// security); the list comes from the catalog, so none is forgotten.
#[tokio::test]
async fn database_refuses_foreign_keys_repointed_at_another_tenants_row() {
    let w = world().await;
    let fks = w
        .admin
        .query_all_raw(stmt(
            "SELECT c.relname::text AS t, a.attname::text AS col, r.relname::text AS target
             FROM pg_constraint con
             JOIN pg_class c ON c.oid = con.conrelid
             JOIN pg_class r ON r.oid = con.confrelid
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
             WHERE con.contype = 'f' AND r.relname NOT IN ('Organization', 'User')
               AND array_length(con.conkey, 1) = 1
             ORDER BY 1, 2",
            vec![],
        ))
        .await
        .unwrap();
    let scope = TenantScope::new(w.app.clone(), w.a.org.clone());
    let mut checked = 0;
    for fk in &fks {
        let (table, col, target): (String, String, String) = (
            fk.try_get("", "t").unwrap(),
            fk.try_get("", "col").unwrap(),
            fk.try_get("", "target").unwrap(),
        );
        let sql = format!(
            r#"UPDATE "{table}" SET "{col}" = $1 WHERE ({}) = $2"#,
            key_sql(&table)
        );
        let r = scope
            .execute_raw(stmt(
                &sql,
                vec![Value::from(w.b.key(&target)), Value::from(w.a.key(&table))],
            ))
            .await;
        match r {
            Err(e) if e.is_tenant_denied() => checked += 1,
            // A unique constraint over the column (FGFlakeScore "testId", FGJob "runId" with
            // "jobId") meets B's own row first: the unique index answers before the tenant key
            // can, and nothing is written either way.
            Err(e) if e.is_unique_violation() && e.to_string().contains(&format!("_{col}_")) => {
                checked += 1
            }
            other => panic!("{table}.{col} -> {target} re-pointed at B's row: {other:?}"),
        }
    }
    assert_eq!(checked, 31, "foreign keys into tenant data besides orgId");
}

/// A connection with no tenant set, or an empty one, sees nothing and writes nothing.
#[tokio::test]
async fn without_a_tenant_nothing_is_visible() {
    let w = world().await;
    for (table, _) in SCOPED_TABLES.iter().map(|(t, k)| (*t, k.as_str())) {
        let plain = w
            .app
            .query_one_raw(stmt(
                format!(r#"SELECT count(*) AS n FROM "{table}""#),
                vec![],
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            plain.try_get::<i64>("", "n").unwrap(),
            0,
            "{table} with no tenant"
        );
        let tx = w.app.begin().await.unwrap();
        tx.execute_raw(stmt(
            "SELECT set_config('app.current_tenant_id', '', true)",
            vec![],
        ))
        .await
        .unwrap();
        let empty = tx
            .query_one_raw(stmt(
                format!(r#"SELECT count(*) AS n FROM "{table}""#),
                vec![],
            ))
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            empty.try_get::<i64>("", "n").unwrap(),
            0,
            "{table} with an empty tenant"
        );
        let deleted = w
            .app
            .execute_raw(stmt(format!(r#"DELETE FROM "{table}""#), vec![]))
            .await
            .unwrap();
        assert_eq!(deleted.rows_affected(), 0, "{table}: delete with no tenant");
    }
    let err = w
        .app
        .execute_raw(stmt(
            r#"INSERT INTO "FGRepository" (id, "orgId", owner, name, "installationId", "updatedAt")
               VALUES ('x', 'org-a', 'o', 'n', 'i', now())"#,
            vec![],
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
}

/// Sabotage: without FGOccurrence's policy the raw-SQL isolation check fails. Dropping the
/// policy (default deny) hides a tenant's own rows; a permissive replacement leaks the other's.
#[tokio::test]
async fn isolation_check_fails_when_a_policy_is_missing() {
    let w = world().await;
    assert!(raw_violations(&w.app, &w.a, &w.b).await.is_empty());

    w.admin
        .execute_unprepared(r#"DROP POLICY tenant_isolation ON "FGOccurrence""#)
        .await
        .unwrap();
    let violations = raw_violations(&w.app, &w.a, &w.b).await;
    assert!(
        !violations.is_empty(),
        "isolation check passed without the policy"
    );
    assert!(
        violations.iter().all(|v| v.starts_with("FGOccurrence")),
        "{violations:#?}"
    );

    w.admin
        .execute_unprepared(
            r#"CREATE POLICY leak ON "FGOccurrence" USING (true) WITH CHECK (true)"#,
        )
        .await
        .unwrap();
    let violations = raw_violations(&w.app, &w.a, &w.b).await;
    let leaked: BTreeSet<&str> = violations
        .iter()
        .map(|v| v.split(':').next().unwrap())
        .collect();
    assert_eq!(leaked, BTreeSet::from(["FGOccurrence"]), "{violations:#?}");
    assert!(
        violations.iter().any(|v| v.contains("saw")),
        "{violations:#?}"
    );
}
