//! The Rust lock alone: on a connection that bypasses row-level security (the superuser), no
//! expression, subquery or handle of the public API reaches another tenant's rows. Every
//! attempt is refused before anything is sent, or returns only the scope's own rows; B's rows
//! are compared by fingerprint before and after. The shapes a scope allows keep working.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flakeguard_db::entity::*;
use flakeguard_db::sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, Query, SelectStatement};
use flakeguard_db::sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, QuerySelect, RelationTrait, Set, Statement,
};
use flakeguard_db::{Error, GlobalTables, TenantScope};
use support::tenants::{SCOPED_TABLES, Tenant, World, world};

/// Every row of `t`'s, table by table, as JSON text: what must not change.
async fn fingerprint(admin: &DatabaseConnection, t: &Tenant) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (table, key) in SCOPED_TABLES.iter() {
        let keys = t.rows[table].clone();
        let rows = admin
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(
                    r#"SELECT row_to_json(t)::text AS j FROM "{table}" t
                       WHERE ({key}) = ANY($1) ORDER BY 1"#
                ),
                [keys.into()],
            ))
            .await
            .unwrap();
        let rows: Vec<String> = rows.iter().map(|r| r.try_get("", "j").unwrap()).collect();
        assert!(!rows.is_empty(), "{table}: the fingerprint covers nothing");
        out.push((table.to_string(), rows));
    }
    // And whatever else B holds in the tables with an "orgId".
    for (table, _) in SCOPED_TABLES.iter() {
        let has_org = flakeguard_db::entity::table(table).is_some_and(|i| {
            matches!(
                i.class,
                flakeguard_db::entity::tenancy::TenantClass::Tenant
                    | flakeguard_db::entity::tenancy::TenantClass::TenantOptional
            )
        });
        if !has_org {
            continue;
        }
        let row = admin
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(r#"SELECT count(*) AS n FROM "{table}" WHERE "orgId" = $1"#),
                [t.org.as_str().into()],
            ))
            .await
            .unwrap()
            .unwrap();
        out.push((
            format!("{table} count"),
            vec![row.try_get::<i64>("", "n").unwrap().to_string()],
        ));
    }
    out
}

/// The outcome of one attempt: refused by the crate, failed in the database, or the rows it
/// returned (which must all be A's).
#[derive(Debug)]
enum Outcome {
    Refused,
    Failed(Error),
    Rows(usize),
}

fn refused<T>(what: &str, r: Result<T, Error>) -> Outcome {
    match r {
        Err(Error::InvalidInput { reason, .. }) => {
            assert!(
                reason.contains("nothing was sent") && reason.contains("query_raw"),
                "{what}: {reason}"
            );
            Outcome::Refused
        }
        Err(e) => Outcome::Failed(e),
        Ok(_) => Outcome::Rows(usize::MAX),
    }
}

/// A scalar subquery over any organization's test case names (it carries no tenant predicate).
fn any_case_name() -> Expr {
    Expr::SubQuery(
        None,
        Box::new(
            Query::select()
                .expr(Expr::col((
                    fg_test_case::Entity,
                    fg_test_case::Column::Name,
                )))
                .from(fg_test_case::Entity)
                .limit(1)
                .to_owned()
                .into(),
        ),
    )
}

/// `SELECT 1 FROM "FGTestCase" WHERE id = <B's test case>`, written by a caller: no tenant
/// predicate.
fn b_case_query(w: &World) -> SelectStatement {
    Query::select()
        .expr(Expr::val(1))
        .from(fg_test_case::Entity)
        .and_where(
            Expr::col((fg_test_case::Entity, fg_test_case::Column::Id)).eq(w.b.key("FGTestCase")),
        )
        .to_owned()
}

/// B's test case `name`, where an oracle would look for it.
fn b_case_exists(w: &World) -> Expr {
    Expr::exists(b_case_query(w))
}

/// Every attempt, through a scope and the global tables' handle on `db`.
async fn attempts(w: &World, db: &DatabaseConnection) -> Vec<(&'static str, Outcome)> {
    let a = TenantScope::new(db.clone(), w.a.org.clone());
    let global = GlobalTables::new(db.clone());
    let mut outcomes: Vec<(&'static str, Outcome)> = Vec::new();
    let close = || Expr::cust("true) OR (true");
    let b_repo = w.b.key("FGRepository").to_owned();

    // A typed subquery over B's rows, as an oracle.
    outcomes.push((
        "count with EXISTS over FGTestCase",
        refused(
            "exists",
            a.count::<fg_repository::Entity>(b_case_exists(w)).await,
        ),
    ));
    // Raw text that closes the scope's parentheses.
    let found = a
        .find::<fg_repository::Entity>()
        .filter(close())
        .all()
        .await;
    outcomes.push(("filter Expr::cust", rows_of_a(w, found, |r| &r.org_id)));
    outcomes.push((
        "update_many Expr::cust",
        refused(
            "update_many",
            a.update_many(
                fg_repository::ActiveModel {
                    name: Set("hijacked".into()),
                    ..Default::default()
                },
                close(),
            )
            .await,
        ),
    ));
    outcomes.push((
        "delete_many Expr::cust",
        refused(
            "delete_many",
            a.delete_many::<fg_repository::Entity>(close()).await,
        ),
    ));
    // A custom function name, written unquoted.
    let func = Expr::from(
        Func::cust(Alias::new("true OR starts_with"))
            .arg("x")
            .arg("x"),
    );
    outcomes.push((
        "custom function name",
        refused(
            "func",
            a.find::<fg_repository::Entity>().filter(func).all().await,
        ),
    ));
    outcomes.push((
        "query_to_xml",
        refused(
            "query_to_xml",
            a.find::<fg_repository::Entity>()
                .filter(
                    Expr::from(
                        Func::cust(Alias::new("query_to_xml"))
                            .arg(r#"SELECT * FROM "FGTestCase""#)
                            .arg(true)
                            .arg(true)
                            .arg(""),
                    )
                    .is_not_null(),
                )
                .all()
                .await,
        ),
    ));
    // Nested conditions, NOT, OR chains.
    let nested = Condition::all().add(
        Condition::any()
            .add(fg_repository::Column::Name.eq("web"))
            .add(Condition::all().add(close())),
    );
    let found = a.find::<fg_repository::Entity>().filter(nested).all().await;
    outcomes.push(("nested Expr::cust", rows_of_a(w, found, |r| &r.org_id)));
    outcomes.push((
        "NOT EXISTS",
        refused(
            "not exists",
            a.count::<fg_repository::Entity>(Condition::all().add(b_case_exists(w)).not())
                .await,
        ),
    ));
    outcomes.push((
        "OR chain with EXISTS",
        refused(
            "or exists",
            a.count::<fg_repository::Entity>(
                Condition::any()
                    .add(fg_repository::Column::Name.eq("nope"))
                    .add(fg_repository::Column::Owner.eq("nope"))
                    .add(b_case_exists(w)),
            )
            .await,
        ),
    ));
    // IN lists of subqueries.
    let in_sub = fg_test_case::Column::RepoId.in_subquery(
        Query::select()
            .column((fg_repository::Entity, fg_repository::Column::Id))
            .from(fg_repository::Entity)
            .to_owned(),
    );
    outcomes.push((
        "IN subquery",
        refused(
            "in",
            a.find::<fg_test_case::Entity>().filter(in_sub).all().await,
        ),
    ));
    let tuple_in = Expr::tuple([Expr::col(fg_test_case::Column::RepoId)]).in_subquery(
        Query::select()
            .column((fg_repository::Entity, fg_repository::Column::Id))
            .from(fg_repository::Entity)
            .and_where(fg_repository::Column::Id.eq(b_repo.clone()))
            .to_owned(),
    );
    outcomes.push((
        "tuple IN subquery",
        refused(
            "tuple",
            a.find::<fg_test_case::Entity>()
                .filter(tuple_in)
                .all()
                .await,
        ),
    ));
    // CASE and casts.
    let case = Expr::case(b_case_exists(w), true).finally(false);
    outcomes.push((
        "CASE over a subquery",
        refused(
            "case",
            a.find::<fg_repository::Entity>()
                .filter(Expr::expr(case).eq(true))
                .all()
                .await,
        ),
    ));
    let cast = Expr::col(fg_repository::Column::Name)
        .cast_as(Alias::new("text) OR (true"))
        .eq("web");
    let found = a.find::<fg_repository::Entity>().filter(cast).all().await;
    outcomes.push((
        "cast to a crafted type name",
        rows_of_a(w, found, |r| &r.org_id),
    ));
    // Orderings that contain subqueries: an oracle through the order of A's own rows.
    let order = Expr::case(b_case_exists(w), 0).finally(1);
    outcomes.push((
        "ORDER BY with a subquery",
        refused(
            "order",
            a.find::<fg_repository::Entity>()
                .order_by_asc(Expr::Case(Box::new(order)))
                .all()
                .await,
        ),
    ));
    let order_sub = any_case_name();
    outcomes.push((
        "ORDER BY a scalar subquery",
        refused(
            "order sub",
            a.find::<fg_repository::Entity>()
                .order_by_desc(order_sub)
                .all()
                .await,
        ),
    ));
    // A scope-built subquery of another tenant's scope.
    let b_scope = TenantScope::new(db.clone(), w.b.org.clone());
    outcomes.push((
        "B's scope-built EXISTS in A's query",
        refused(
            "b exists",
            a.count::<fg_repository::Entity>(
                b_scope.exists::<fg_test_case::Entity>(fg_test_case::Column::Name.eq("adds")),
            )
            .await,
        ),
    ));
    // GlobalTables joining into tenant data, or reading it in a subquery or a projection.
    let members = user::Entity::find()
        .join(
            flakeguard_db::sea_orm::JoinType::InnerJoin,
            user::Relation::OrganizationUser.def(),
        )
        .filter(organization_user::Column::OrgId.eq("org-b"));
    outcomes.push((
        "GlobalTables join",
        refused("global join", global.all(members).await),
    ));
    outcomes.push((
        "GlobalTables EXISTS",
        refused(
            "global exists",
            global
                .count(user::Entity::find().filter(b_case_exists(w)))
                .await,
        ),
    ));
    let projected = user::Entity::find().expr_as(any_case_name(), "stolen");
    outcomes.push((
        "GlobalTables projection",
        refused("global projection", global.one(projected).await),
    ));

    // GlobalTables given raw text that names tenant data, or a function that runs SQL text.
    outcomes.push((
        "GlobalTables raw text naming tenant data",
        refused(
            "global raw",
            global
                .all(user::Entity::find().filter(Expr::cust(
                    r#""User"."id" IN (SELECT "userId" FROM "OrganizationUser")"#,
                )))
                .await,
        ),
    ));
    outcomes.push((
        "GlobalTables query_to_xml",
        refused(
            "global func",
            global
                .count(
                    user::Entity::find().filter(
                        Expr::from(
                            Func::cust(Alias::new("query_to_xml"))
                                .arg("SELECT 1")
                                .arg(true)
                                .arg(true)
                                .arg(""),
                        )
                        .is_not_null(),
                    ),
                )
                .await,
        ),
    ));
    // Raw text inside a scope-built subquery's filter.
    outcomes.push((
        "raw text inside a scope-built EXISTS",
        refused(
            "exists raw",
            a.count::<fg_repository::Entity>(a.exists::<fg_test_case::Entity>(Expr::cust("1 = 1")))
                .await,
        ),
    ));
    // A UNION whose second branch reads B's rows, and a subquery with a second, unbound table.
    let union = Query::select()
        .expr(Expr::val(1))
        .from(fg_test_case::Entity)
        .and_where(
            Expr::col((fg_test_case::Entity, fg_test_case::Column::OrgId)).eq(w.a.org.as_str()),
        )
        .union(
            flakeguard_db::sea_orm::sea_query::UnionType::All,
            b_case_query(w),
        )
        .to_owned();
    outcomes.push((
        "EXISTS over a UNION",
        refused(
            "union",
            a.count::<fg_repository::Entity>(Expr::exists(union)).await,
        ),
    ));
    let two_tables = Query::select()
        .expr(Expr::val(1))
        .from(fg_test_case::Entity)
        .from_as(fg_occurrence::Entity, Alias::new("o"))
        .and_where(
            Expr::col((fg_test_case::Entity, fg_test_case::Column::OrgId)).eq(w.a.org.as_str()),
        )
        .and_where(
            Expr::col((Alias::new("o"), fg_occurrence::Column::TestId)).eq(w.b.key("FGTestCase")),
        )
        .to_owned();
    outcomes.push((
        "subquery with a second, unbound table",
        refused(
            "two tables",
            a.count::<fg_repository::Entity>(Expr::exists(two_tables))
                .await,
        ),
    ));

    // The query shapes: projections, HAVING, GROUP BY, left joins, exists, streams, keyset
    // pages and eager loading, each carrying an oracle over B's rows or raw text.
    outcomes.push((
        "projection of a scalar subquery over every organization's test cases",
        refused(
            "projection",
            a.find::<fg_repository::Entity>()
                .select_only()
                .expr_as(any_case_name(), "n")
                .into_tuple::<Option<String>>()
                .all()
                .await,
        ),
    ));
    outcomes.push((
        "HAVING with EXISTS over B's test case",
        refused(
            "having",
            a.find::<fg_test_case::Entity>()
                .select_only()
                .column(fg_test_case::Column::Name)
                .group_by(fg_test_case::Column::Name)
                .having(b_case_exists(w))
                .into_tuple::<String>()
                .all()
                .await,
        ),
    ));
    outcomes.push((
        "GROUP BY raw text",
        refused(
            "group by",
            a.find::<fg_test_case::Entity>()
                .select_only()
                .column(fg_test_case::Column::Name)
                .group_by(close())
                .into_tuple::<String>()
                .all()
                .await,
        ),
    ));
    outcomes.push((
        "a left join, then raw text closing the predicate",
        refused(
            "left join",
            a.find::<fg_test_case::Entity>()
                .left_join::<fg_occurrence::Entity>()
                .filter(close())
                .all()
                .await,
        ),
    ));
    outcomes.push((
        "exists() over an oracle",
        refused(
            "exists()",
            a.find::<fg_repository::Entity>()
                .filter(b_case_exists(w))
                .exists()
                .await,
        ),
    ));
    outcomes.push((
        "a stream over an oracle",
        refused(
            "stream",
            futures_util::TryStreamExt::try_collect::<Vec<_>>(
                a.find::<fg_repository::Entity>()
                    .filter(b_case_exists(w))
                    .stream(),
            )
            .await,
        ),
    ));
    outcomes.push((
        "a keyset page over an oracle",
        refused(
            "cursor",
            a.find::<fg_repository::Entity>()
                .filter(b_case_exists(w))
                .cursor_by(fg_repository::Column::Id)
                .first(10)
                .all()
                .await,
        ),
    ));
    let a_cases = a.find::<fg_test_case::Entity>().all().await.unwrap();
    outcomes.push((
        "eager loading filtered by an oracle",
        refused(
            "load_many",
            a.find::<fg_occurrence::Entity>()
                .filter(b_case_exists(w))
                .load_many(&a_cases)
                .await,
        ),
    ));
    outcomes
}

#[tokio::test]
async fn no_expression_subquery_or_handle_reaches_another_tenants_rows() {
    let w = world().await;
    let before = fingerprint(&w.admin, &w.b).await;
    // On the superuser (the Rust lock alone), then on the application role (both locks).
    let mut outcomes = attempts(&w, &w.admin).await;
    outcomes.extend(attempts(&w, &w.app).await);
    for (what, outcome) in &outcomes {
        match outcome {
            Outcome::Refused => {}
            Outcome::Rows(n) => assert_ne!(*n, usize::MAX, "{what}: went through"),
            Outcome::Failed(e) => assert!(
                e.db_err().is_some() && !e.is_connection_error(),
                "{what}: {e:?}"
            ),
        }
        eprintln!("{what}: {outcome:?}");
    }
    // Every attempt is refused before anything is sent.
    for (what, outcome) in &outcomes {
        assert!(matches!(outcome, Outcome::Refused), "{what}: {outcome:?}");
    }
    assert_eq!(
        fingerprint(&w.admin, &w.b).await,
        before,
        "B's rows changed"
    );
}

/// Rows an attempt returned: every one must be A's.
fn rows_of_a<M>(w: &World, found: Result<Vec<M>, Error>, org: impl Fn(&M) -> &String) -> Outcome {
    match found {
        Ok(rows) => {
            for r in &rows {
                assert_eq!(
                    org(r),
                    w.a.org.as_str(),
                    "a row of another tenant came back"
                );
            }
            Outcome::Rows(rows.len())
        }
        Err(e) => refused("rows", Err::<(), _>(e)),
    }
}

#[tokio::test]
async fn the_shapes_a_scope_allows_keep_working_and_stay_within_the_tenant() {
    let w = world().await;
    for db in [&w.admin, &w.app] {
        let a = TenantScope::new(db.clone(), w.a.org.clone());
        // Functions of the allow-list, IN lists, OR of own columns, NOT.
        let cases = a
            .find::<fg_test_case::Entity>()
            .filter(Expr::expr(Func::lower(Expr::col(fg_test_case::Column::Suite))).eq("unit"))
            .filter(
                Condition::any()
                    .add(fg_test_case::Column::Name.is_in(["adds", "divides"]))
                    .add(fg_test_case::Column::Name.starts_with("x")),
            )
            .filter(
                Condition::all()
                    .add(fg_test_case::Column::Name.eq("nope"))
                    .not(),
            )
            .order_by_asc(Expr::expr(Func::upper(Expr::col(
                fg_test_case::Column::Name,
            ))))
            .all()
            .await
            .unwrap();
        assert_eq!(
            cases.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["adds", "divides"]
        );
        assert!(cases.iter().all(|c| c.org_id == "org-a"));

        // Scope-built subqueries: test cases with a failed occurrence, correlated.
        let failing = a
            .find::<fg_test_case::Entity>()
            .filter(
                a.exists::<fg_occurrence::Entity>(
                    Condition::all()
                        .add(fg_occurrence::Column::Status.eq("failed"))
                        .add(
                            Expr::col((fg_occurrence::Entity, fg_occurrence::Column::TestId))
                                .equals((fg_test_case::Entity, fg_test_case::Column::Id)),
                        ),
                ),
            )
            .count()
            .await
            .unwrap();
        let expected = a
            .count::<fg_occurrence::Entity>(fg_occurrence::Column::Status.eq("failed"))
            .await
            .unwrap();
        assert!(
            failing <= expected && failing <= 2,
            "{failing} of {expected}"
        );
        let in_repo = a
            .find::<fg_test_case::Entity>()
            .filter(a.in_subquery::<fg_repository::Entity>(
                fg_test_case::Column::RepoId,
                fg_repository::Column::Id,
                fg_repository::Column::Name.ne("no such repository"),
            ))
            .count()
            .await
            .unwrap();
        assert_eq!(in_repo, 2);
        // The same subquery over B's repository finds nothing for A.
        let none = a
            .count::<fg_test_case::Entity>(a.in_subquery::<fg_repository::Entity>(
                fg_test_case::Column::RepoId,
                fg_repository::Column::Id,
                fg_repository::Column::Id.eq(w.b.key("FGRepository")),
            ))
            .await
            .unwrap();
        assert_eq!(none, 0);
        // Joins and left joins with their own predicates.
        let joined = a
            .find::<fg_test_case::Entity>()
            .inner_join::<fg_flake_score::Entity>()
            .filter(fg_flake_score::Column::Score.gte(0.0))
            .count()
            .await
            .unwrap();
        assert_eq!(joined, 2);
        let with = a
            .find::<workflow_job::Entity>()
            .all_with::<workflow_run::Entity>()
            .await
            .unwrap();
        assert_eq!(with.len(), 1);
        let page = a.find::<fg_test_case::Entity>().page(0, 1).await.unwrap();
        assert_eq!(page.total, 2);
    }
    // Writes with a scope-built subquery: the tenant's own rows only.
    let a = TenantScope::new(w.admin.clone(), w.a.org.clone());
    let changed = a
        .update_many(
            fg_test_case::ActiveModel {
                owner_team: Set(Some("core".into())),
                ..Default::default()
            },
            a.exists::<fg_flake_score::Entity>(
                Expr::col((fg_flake_score::Entity, fg_flake_score::Column::TestId))
                    .equals((fg_test_case::Entity, fg_test_case::Column::Id)),
            ),
        )
        .await
        .unwrap();
    assert_eq!(changed, 2);
    let deleted = a
        .delete_many::<fg_issue_link::Entity>(a.in_subquery::<fg_test_case::Entity>(
            fg_issue_link::Column::TestId,
            fg_test_case::Column::Id,
            fg_test_case::Column::OwnerTeam.eq("core"),
        ))
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    // GlobalTables on its own tables.
    let global = GlobalTables::new(w.admin.clone());
    let users = global
        .all(user::Entity::find().filter(user::Column::Email.like("%@example.com")))
        .await
        .unwrap();
    assert!(users.len() >= 2);
}

/// Every write of the public API that points a foreign key at B's repository, on the superuser
/// with the composite tenant key of `FGTestCase` dropped: neither row-level security nor the
/// schema would refuse it, so the ownership check the scope puts into (or before) the write is
/// all that stands. Each is `TenantDenied`, and neither tenant's rows change.
#[tokio::test]
async fn writes_pointing_at_another_tenants_row_are_refused_by_the_rust_lock_alone() {
    let w = world().await;
    w.admin
        .execute_unprepared(
            r#"ALTER TABLE "FGTestCase" DROP CONSTRAINT "FGTestCase_orgId_repoId_fkey""#,
        )
        .await
        .unwrap();
    let (a_before, b_before) = (
        fingerprint(&w.admin, &w.a).await,
        fingerprint(&w.admin, &w.b).await,
    );
    let s = TenantScope::new(w.admin.clone(), w.a.org.clone());
    let theirs = w.b.key("FGRepository").to_owned();
    let case = |name: &str| fg_test_case::ActiveModel {
        repo_id: Set(theirs.clone()),
        suite: Set("unit".into()),
        name: Set(name.to_owned()),
        ..Default::default()
    };
    let repointed = fg_test_case::ActiveModel {
        id: Set(w.a.key("FGTestCase").to_owned()),
        repo_id: Set(theirs.clone()),
        ..Default::default()
    };
    let conflict = [
        fg_test_case::Column::RepoId,
        fg_test_case::Column::Suite,
        fg_test_case::Column::ClassName,
        fg_test_case::Column::Name,
    ];
    let inside = case("in a transaction");
    let outcomes = vec![
        ("insert", s.insert(case("insert")).await.map(|_| ())),
        ("update", s.update(repointed.clone()).await.map(|_| ())),
        (
            "update_many",
            s.update_many(
                fg_test_case::ActiveModel {
                    repo_id: Set(theirs.clone()),
                    ..Default::default()
                },
                Condition::all(),
            )
            .await
            .map(|_| ()),
        ),
        (
            "upsert",
            s.upsert(case("upsert"), conflict).await.map(|_| ()),
        ),
        (
            "insert_many",
            s.insert_many(vec![case("many")]).await.map(|_| ()),
        ),
        (
            "insert_many_copy",
            s.insert_many_copy(vec![case("copy")]).await.map(|_| ()),
        ),
        (
            "insert in a transaction",
            s.transaction(|tx| {
                Box::pin(async move {
                    tx.insert(inside).await?;
                    Ok::<_, Error>(())
                })
            })
            .await,
        ),
        (
            "update in a transaction",
            s.transaction(|tx| {
                Box::pin(async move {
                    tx.update(repointed).await?;
                    Ok::<_, Error>(())
                })
            })
            .await,
        ),
    ];
    for (what, outcome) in outcomes {
        assert!(
            matches!(outcome, Err(Error::TenantDenied { .. })),
            "{what}: {outcome:?}"
        );
    }
    assert_eq!(
        fingerprint(&w.admin, &w.a).await,
        a_before,
        "A's rows changed"
    );
    assert_eq!(
        fingerprint(&w.admin, &w.b).await,
        b_before,
        "B's rows changed"
    );
}
