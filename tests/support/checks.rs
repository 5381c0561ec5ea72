//! The typed isolation checks of every scoped table, and a snapshot of every row, shared by
//! the single-server isolation tests and the Citus ones.
#![allow(dead_code)]

use flakeguard_db::TenantScope;
use flakeguard_db::entity::stamps::Stamped;
use flakeguard_db::entity::tenancy::TenantOwned;
use flakeguard_db::entity::*;
use flakeguard_db::sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};
use flakeguard_db::sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ConnectionTrait, DatabaseConnection, IdenStatic,
    IntoActiveModel, Iterable, PrimaryKeyToColumn, Statement, Value,
};

use super::tenants::{SCOPED_TABLES, Tenant};

pub fn stmt(sql: impl Into<String>, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(flakeguard_db::sea_orm::DbBackend::Postgres, sql, values)
}

/// The typed checks of one table: `own` sees exactly its rows, and finds, updates and deletes
/// nothing of `other`'s. Returns what went wrong.
pub async fn typed_violations<E>(
    scope: &TenantScope,
    own: &Tenant,
    other: &Tenant,
    key: fn(&E::Model) -> String,
) -> Vec<String>
where
    E: TenantOwned,
    E::Model: IntoActiveModel<E::ActiveModel> + Send + Sync,
    E::ActiveModel:
        ActiveModelTrait<Entity = E> + ActiveModelBehavior + Stamped + Send + Sync + 'static,
{
    let table = E::default().table_name();
    let mut out = Vec::new();
    let seen = scope.find::<E>().all().await.unwrap();
    let mut keys: Vec<String> = seen.iter().map(key).collect();
    keys.sort();
    if keys != own.rows[table] {
        out.push(format!(
            "{table}: {} found {keys:?}, owns {:?}",
            own.org, own.rows[table]
        ));
    }
    let count = scope.find::<E>().count().await.unwrap();
    if count != own.rows[table].len() as u64 {
        out.push(format!("{table}: {} counted {count}", own.org));
    }
    // The other tenant's rows by their keys, as typed conditions on the key columns.
    let theirs = || {
        let key = (flakeguard_db::entity::table(table).unwrap().primary_key)();
        let mut any = Condition::any();
        for row in &other.rows[table] {
            let mut all = Condition::all();
            for (col, part) in key.iter().zip(row.split('|')) {
                all = all.add(Expr::col((Alias::new(table), Alias::new(*col))).eq(part));
            }
            any = any.add(all);
        }
        any
    };
    let found = scope.find::<E>().filter(theirs()).all().await.unwrap();
    if !found.is_empty() {
        out.push(format!(
            "{table}: {} found {} of {}'s rows by key",
            own.org,
            found.len(),
            other.org
        ));
    }
    // An update that would give the other tenant's rows this tenant's values.
    if let Some(model) = seen.into_iter().next() {
        let mut values: E::ActiveModel = model.into_active_model().reset_all();
        for pk in <E::PrimaryKey as Iterable>::iter() {
            values.not_set(pk.into_column());
        }
        for col in <E::Column as Iterable>::iter() {
            if col.as_str() == "orgId" {
                values.not_set(col);
            }
        }
        if <E::Column as Iterable>::iter().any(|c| values.get(c).is_set()) {
            match scope.update_many(values, theirs()).await {
                Ok(0) => {}
                other_result => out.push(format!(
                    "{table}: cross-tenant update_many gave {other_result:?}"
                )),
            }
        }
    }
    match scope.delete_many::<E>(theirs()).await {
        Ok(0) => {}
        r => out.push(format!("{table}: cross-tenant delete_many gave {r:?}")),
    }
    out
}

/// [`typed_violations`] for all 25 tables, both ways round.
pub async fn all_typed_violations(db: &DatabaseConnection, a: &Tenant, b: &Tenant) -> Vec<String> {
    let mut out = Vec::new();
    for (own, other) in [(a, b), (b, a)] {
        let scope = TenantScope::new(db.clone(), own.org.clone());
        macro_rules! check {
            ($($m:ident),+ $(,)?) => {$(
                out.extend(typed_violations::<$m::Entity>(&scope, own, other, |m| m.id.clone()).await);
            )+};
        }
        check!(
            organization,
            organization_user,
            subscription,
            audit_log,
            usage_metric,
            task,
            installation,
            repository,
            workflow_run,
            check_run,
            workflow_job,
            artifact,
            test_suite,
            test_result,
            flake_detection,
            fg_repository,
            fg_workflow_run,
            fg_job,
            fg_test_case,
            fg_occurrence,
            fg_flake_score,
            fg_quarantine_decision,
            fg_issue_link,
            fg_failure_cluster,
        );
        out.extend(
            typed_violations::<fg_failure_cluster_to_fg_test_case::Entity>(
                &scope,
                own,
                other,
                |m| format!("{}|{}", m.a, m.b),
            )
            .await,
        );
    }
    out
}

/// Every row of every scoped table, as the superuser sees them: table -> sorted keys.
pub async fn everything(admin: &DatabaseConnection) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (table, key) in SCOPED_TABLES.iter().map(|(t, k)| (*t, k.as_str())) {
        let rows = admin
            .query_all_raw(stmt(
                format!(r#"SELECT {key} AS k FROM "{table}" ORDER BY 1"#),
                vec![],
            ))
            .await
            .unwrap();
        out.push((
            table.to_owned(),
            rows.iter()
                .map(|r| r.try_get::<String>("", "k").unwrap())
                .collect(),
        ));
    }
    out
}
