//! How the scope uses its pool: round trips on the critical path of an operation, a pooled
//! connection that broke while idle, and the tenant literal of the one-trip BEGIN.
//!
//! Every test here connects as the application role (subject to row-level security), but the
//! one of `CrossTenant`, which needs a role that bypasses it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use flakeguard_db::entity::{fg_repository, fg_test_case, organization, user};
use flakeguard_db::sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, Set, Statement,
};
use flakeguard_db::testing::{APP_ROLE, TestDatabase, TripCounter};
use flakeguard_db::{MAX_ORG_ID_LEN, OrgId, TenantScope};
use support::tenants::one_connection;

/// Creates organization `org` and one repository of it, through a scope; returns the
/// repository's id.
async fn seed(scope: &TenantScope) -> String {
    scope
        .insert(organization::ActiveModel {
            name: Set(format!("Org {}", scope.org_id())),
            slug: Set(format!("slug-{}", scope.org_id())),
            ..Default::default()
        })
        .await
        .unwrap();
    repository(scope, "main").await
}

async fn repository(scope: &TenantScope, name: &str) -> String {
    scope
        .insert(fg_repository::ActiveModel {
            name: Set(name.to_owned()),
            owner: Set("acme".to_owned()),
            installation_id: Set(format!("inst-{name}")),
            ..Default::default()
        })
        .await
        .unwrap()
        .id
}

/// The round trips `op` makes before it returns, counted by `proxy`; the pool's release ping
/// (sent in the background after the operation returned) is let through before and after, and
/// not counted.
async fn critical_trips<F, Fut>(proxy: &TripCounter, op: F) -> u64
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = proxy.count();
    op().await;
    let trips = proxy.count() - before;
    tokio::time::sleep(Duration::from_millis(100)).await;
    trips
}

/// Pipelined, a scoped point read, single insert, update and delete each take one round trip:
/// BEGIN with the tenant, the statement and its COMMIT (a read's ROLLBACK) travel together.
#[tokio::test]
async fn pipelined_a_scoped_read_and_a_single_write_take_one_round_trip() {
    let db = TestDatabase::new().await.unwrap();
    let proxy = TripCounter::start(&db.app_url().await.unwrap())
        .await
        .unwrap();
    // One connection, so that the statements prepared in the first round are prepared on the
    // connection of the second: a statement is prepared on its first use on a connection,
    // which is one trip more, once.
    let app = flakeguard_db::Db::new(one_connection(&proxy.url()).await);
    assert!(app.is_pipelined());
    // Two reads in read_only: the first with the BEGIN, the second alone; the ROLLBACK goes
    // after the operation returned.
    round_trips(&app, &proxy, [1, 1, 1, 1, 2]).await;
}

/// Without pipelining (sqlx), a scoped read takes two round trips and a single write three.
#[tokio::test]
async fn unpipelined_a_scoped_read_takes_two_round_trips_and_a_single_write_three() {
    let db = TestDatabase::new().await.unwrap();
    let proxy = TripCounter::start(&db.app_url().await.unwrap())
        .await
        .unwrap();
    let app = flakeguard_db::Db::new(one_connection(&proxy.url()).await).without_pipelining();
    assert!(!app.is_pipelined());
    // The read: BEGIN with the tenant, the SELECT (its ROLLBACK is queued, sent with the
    // release ping). A write: BEGIN with the tenant, the statement (with its foreign-key
    // checks), COMMIT. Two reads in read_only: BEGIN, the two SELECTs.
    round_trips(&app, &proxy, [2, 3, 3, 3, 3]).await;
}

/// Counts the round trips of a point read, a single insert, update and delete and two reads in
/// one `read_only`, in a second round (the first prepares the statements), against `expected`.
async fn round_trips(app: &flakeguard_db::Db, proxy: &TripCounter, expected: [u64; 5]) {
    let s = app.scope(OrgId::new("acme").unwrap());
    let repo = seed(&s).await;

    for round in 0..2 {
        let read = critical_trips(proxy, || async {
            s.find_by_id::<fg_repository::Entity, _>(repo.clone())
                .await
                .unwrap()
                .unwrap();
        })
        .await;
        let other = repository(&s, &format!("r{round}")).await;
        let case = format!("case-{round}");
        // A row with a foreign key into tenant data: its ownership check travels with it.
        let insert = critical_trips(proxy, || async {
            s.insert(fg_test_case::ActiveModel {
                id: Set(case.clone()),
                repo_id: Set(repo.clone()),
                suite: Set("pool".to_owned()),
                name: Set(case.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        })
        .await;
        let update = critical_trips(proxy, || async {
            s.update(fg_test_case::ActiveModel {
                id: Set(case.clone()),
                repo_id: Set(other.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        })
        .await;
        let delete = critical_trips(proxy, || async {
            s.delete::<fg_test_case::Entity, _>(case.clone())
                .await
                .unwrap();
        })
        .await;
        // Two reads in one read-only transaction: BEGIN with the tenant, the two SELECTs; no
        // COMMIT (its ROLLBACK is queued too).
        let two_reads = critical_trips(proxy, || async {
            s.read_only(|tx| {
                Box::pin(async move {
                    tx.find::<fg_test_case::Entity>().count().await?;
                    tx.find::<fg_repository::Entity>().count().await
                })
            })
            .await
            .unwrap();
        })
        .await;
        eprintln!(
            "round {round}: read {read}, insert {insert}, update {update}, delete {delete}, \
             two reads in read_only {two_reads}"
        );
        if round == 1 {
            assert_eq!(
                [read, insert, update, delete, two_reads],
                expected,
                "round trips of a scoped point read, single insert, update, delete, and two \
                 reads in one read_only"
            );
        }
    }
}

/// The backend pids of the application role's connections, as the superuser sees them.
async fn app_backends(admin: &DatabaseConnection) -> Vec<i32> {
    admin
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT pid FROM pg_stat_activity WHERE usename = '{APP_ROLE}' \
                 AND datname = current_database()"
            ),
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<i32>("", "pid").unwrap())
        .collect()
}

/// A pooled connection terminated at the server while it sat idle is replaced, on either
/// driver: sqlx finds it broken at the BEGIN and begins again on another connection; the
/// pipelined pool finds it closed on its way out of the pool (or, should the driver not have
/// seen the close yet, the read finds it broken on its first trip and runs again on another).
#[tokio::test]
async fn a_pooled_connection_that_broke_while_idle_is_replaced() {
    let db = TestDatabase::new().await.unwrap();
    let admin = db.connect().await.unwrap();
    for pipelined in [true, false] {
        let app = flakeguard_db::Db::new(one_connection(&db.app_url().await.unwrap()).await);
        let app = if pipelined {
            app
        } else {
            app.without_pipelining()
        };
        let s = app.scope(OrgId::new(format!("acme-{pipelined}")).unwrap());
        let repo = seed(&s).await;

        for _ in 0..2 {
            // The pool's connection, and the other pool's (sqlx's, or the pipelined one's).
            let pids = app_backends(&admin).await;
            assert!(
                (1..=2).contains(&pids.len()),
                "the pools' one connection each: {pids:?}"
            );
            for pid in &pids {
                admin
                    .execute_unprepared(&format!("SELECT pg_terminate_backend({pid})"))
                    .await
                    .unwrap();
            }
            // Gone at the server, idle in the pool for far less than PING_AFTER_IDLE: the pool
            // hands it out untested.
            while app_backends(&admin).await.iter().any(|p| pids.contains(p)) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let found = s
                .find_by_id::<fg_repository::Entity, _>(repo.clone())
                .await
                .unwrap();
            assert_eq!(
                found.map(|r| r.id),
                Some(repo.clone()),
                "pipelined: {pipelined}"
            );
        }
        app.close().await.unwrap();
    }
}

#[tokio::test]
async fn tenant_ids_at_the_length_limit_and_of_every_character_class_bind_the_transaction() {
    let db = TestDatabase::new().await.unwrap();
    let app = flakeguard_db::Db::new(db.connect_as_app().await.unwrap());
    let longest = "x".repeat(MAX_ORG_ID_LEN - 4) + "-_9Z";
    let ids = [longest.as_str(), "a", "A-b_C-0"];
    let mut repos = Vec::new();
    for id in ids {
        let s = app.scope(OrgId::new(id).unwrap());
        repos.push(seed(&s).await);
    }
    for (i, id) in ids.iter().enumerate() {
        let s = app.scope(OrgId::new(*id).unwrap());
        // Row-level security shows exactly this tenant's rows: the setting is the whole id.
        let seen: Vec<String> = s
            .find::<fg_repository::Entity>()
            .all()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(seen, vec![repos[i].clone()], "repositories seen by {id}");
    }
}

#[test]
fn the_tenant_literal_is_quoted() {
    let org = OrgId::new("acme-1_x").unwrap();
    assert_eq!(
        flakeguard_db::tenant_begin_sql(&org),
        "BEGIN; SET LOCAL app.current_tenant_id = 'acme-1_x'"
    );
}

#[tokio::test]
async fn global_tables_and_cross_tenant_skip_the_ping_too_and_global_reads_pipeline() {
    let db = TestDatabase::new().await.unwrap();
    let proxy = TripCounter::start(&db.app_url().await.unwrap())
        .await
        .unwrap();
    let app = flakeguard_db::Db::new(one_connection(&proxy.url()).await);
    let unpipelined =
        flakeguard_db::Db::new(one_connection(&proxy.url()).await).without_pipelining();
    let platform_proxy = TripCounter::start(&db.platform_url().await.unwrap())
        .await
        .unwrap();
    let platform = flakeguard_db::CrossTenant::new(one_connection(&platform_proxy.url()).await)
        .await
        .unwrap();
    let users = app.global();
    let ada = users
        .insert(user::ActiveModel {
            email: Set("ada@example.com".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    let list = Statement::from_string(DbBackend::Postgres, r#"SELECT id FROM "Organization""#);
    for round in 0..2 {
        let read = critical_trips(&proxy, || async {
            users
                .one(user::Entity::find_by_id(ada.id.clone()))
                .await
                .unwrap()
                .unwrap();
        })
        .await;
        let sqlx_read = critical_trips(&proxy, || async {
            unpipelined
                .global()
                .one(user::Entity::find_by_id(ada.id.clone()))
                .await
                .unwrap()
                .unwrap();
        })
        .await;
        let raw = critical_trips(&platform_proxy, || async {
            platform.query_raw(list.clone()).await.unwrap();
        })
        .await;
        eprintln!(
            "round {round}: global read {read} (without pipelining {sqlx_read}), cross-tenant \
             raw {raw}"
        );
        if round == 1 {
            // BEGIN, the SELECT and its ROLLBACK together; no ping before them.
            assert_eq!(read, 1, "round trips of a GlobalTables read");
            // Without pipelining: BEGIN, the SELECT (its ROLLBACK queued).
            assert_eq!(sqlx_read, 2, "round trips of a GlobalTables read on sqlx");
            // BEGIN, the query and its COMMIT together.
            assert_eq!(raw, 1, "round trips of a CrossTenant raw query");
        }
    }
}

/// A handle of one connection on `url` for each driver: pipelined, then sqlx.
async fn both_drivers(url: &str) -> [flakeguard_db::Db; 2] {
    let pipelined = flakeguard_db::Db::new(one_connection(url).await);
    let sqlx = flakeguard_db::Db::new(one_connection(url).await).without_pipelining();
    assert!(pipelined.is_pipelined());
    assert!(!sqlx.is_pipelined());
    [pipelined, sqlx]
}

/// The pipelined driver's sessions start with the settings sqlx's do (dates and times rendered
/// and read alike), on top of the pool's own options.
#[tokio::test]
async fn pipelined_sessions_start_with_the_settings_of_sqlx_sessions() {
    let db = TestDatabase::new().await.unwrap();
    // Defaults of the database that a session keeps unless it starts with its own.
    db.connect()
        .await
        .unwrap()
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{0}\" SET TimeZone = 'Asia/Tokyo'; \
             ALTER DATABASE \"{0}\" SET DateStyle = 'German'",
            db.name()
        ))
        .await
        .unwrap();
    let url = format!(
        "{}?options=-c%20statement_timeout%3D4321",
        db.app_url().await.unwrap()
    );
    let settings = "SELECT current_setting('TimeZone') AS tz, current_setting('DateStyle') AS ds, \
                    current_setting('statement_timeout') AS st";
    let mut seen = Vec::new();
    for app in both_drivers(&url).await {
        let row = flakeguard_db::testing::query_pooled(&app, settings)
            .await
            .unwrap()
            .unwrap();
        let get = |c: &str| row.try_get::<String>("", c).unwrap();
        seen.push((get("tz"), get("ds"), get("st")));
    }
    assert_eq!(
        seen[0],
        ("UTC".to_owned(), "ISO, MDY".to_owned(), "4321ms".to_owned())
    );
    assert_eq!(seen[0], seen[1], "pipelined and sqlx sessions");
}

/// Rows read alike on both drivers, by position and by name, from a statement whose column
/// names are out of order and one of them twice (the pipelined driver lays out each
/// statement's columns once, for all its rows).
#[tokio::test]
async fn rows_read_alike_by_position_and_by_name_on_both_drivers() {
    let db = TestDatabase::new().await.unwrap();
    let url = db.app_url().await.unwrap();
    let sql = "SELECT 10 + g AS b, g AS a, 20 + g AS a, 'x' || g AS c \
               FROM generate_series(1, 3) g ORDER BY g";
    let mut seen = Vec::new();
    for app in both_drivers(&url).await {
        let rows = app
            .scope(OrgId::new("acme").unwrap())
            .query_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .unwrap();
        let read: Vec<_> = rows
            .iter()
            .map(|row| {
                let at = |i| row.try_get_by_index::<i32>(i).unwrap();
                let by_name = |c| row.try_get::<i32>("", c).unwrap();
                let c = row.try_get::<String>("", "c").unwrap();
                ([at(0), at(1), at(2)], [by_name("b"), by_name("a")], c)
            })
            .collect();
        seen.push(read);
    }
    assert_eq!(
        seen[0].iter().map(|r| r.0).collect::<Vec<_>>(),
        [[11, 1, 21], [12, 2, 22], [13, 3, 23]],
        "by position, pipelined"
    );
    assert_eq!(seen[0], seen[1], "pipelined and sqlx rows");
}

/// Scopes made one per operation on the same SeaORM connection (`TenantScope::new`, as a
/// handler might) share one pipelined pool: every operation finds the connection the last one
/// used, instead of opening one of its own.
#[tokio::test]
async fn scopes_made_one_per_operation_share_one_pipelined_pool() {
    let db = TestDatabase::new().await.unwrap();
    let conn = one_connection(&db.app_url().await.unwrap()).await;
    let pid = Statement::from_string(DbBackend::Postgres, "SELECT pg_backend_pid() AS pid");
    let mut pids = Vec::new();
    for i in 0..5 {
        let scope = TenantScope::new(conn.clone(), OrgId::new(format!("org-{i}")).unwrap());
        let rows = scope.query_raw(pid.clone()).await.unwrap();
        pids.push(rows[0].try_get::<i32>("", "pid").unwrap());
        // The scope, and with it every handle on the pipelined pool, is gone here.
    }
    pids.dedup();
    assert_eq!(
        pids.len(),
        1,
        "one connection for every operation: {pids:?}"
    );
}

/// Pools of two roles made one after another in one process, each dropped before the next,
/// never share pipelined connections: every scope's pipelined transaction runs as its own
/// pool's role, with its own tenant. (A later pool may land where a dropped one was; the
/// registry then tells them apart by their connect options, which it holds.)
#[tokio::test]
async fn pools_of_two_roles_one_after_another_each_connect_as_their_own_role() {
    let db = TestDatabase::new().await.unwrap();
    let app_url = db.app_url().await.unwrap();
    let who = "SELECT current_user::text AS u, \
               current_setting('app.current_tenant_id', true) AS t";
    for round in 0..10 {
        let (url, role) = if round % 2 == 0 {
            (db.url().to_owned(), "postgres")
        } else {
            (app_url.clone(), APP_ROLE)
        };
        let app = flakeguard_db::Db::new(one_connection(&url).await);
        assert!(app.is_pipelined());
        let rows = app
            .scope(OrgId::new(format!("org-{round}")).unwrap())
            .query_raw(Statement::from_string(DbBackend::Postgres, who))
            .await
            .unwrap();
        let get = |c: &str| rows[0].try_get::<String>("", c).unwrap();
        assert_eq!(get("u"), role, "round {round}");
        assert_eq!(get("t"), format!("org-{round}"), "round {round}");
        drop(app);
    }
}
