//! The database goes away: PostgreSQL restarts in the middle of a workload.
//!
//! Twenty tasks write and read for ten organizations through one pool of eight connections,
//! as the application role, while the server is stopped and started again
//! ([`TestDatabase::restart_server`]). Operations in flight fail with an error that says what
//! it is (a connection error, naming the tenant, the operation and, where there is one, the
//! table); the same pool, not a new one, serves operations again within a bounded time; and
//! every insert that returned `Ok` is in the database afterwards.
//!
//! A test binary of its own: restarting the server breaks every connection of the process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flakeguard_db::entity::fg_test_case;
use flakeguard_db::sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, Set, Statement,
};
use flakeguard_db::testing::TestDatabase;
use flakeguard_db::{Error, Operation, OrgId, TenantScope};
use support::workload::{self, Org};

const TASKS: usize = 20;
const POOL: u32 = 8;
const ORGS: usize = 10;
/// How long after the server accepts connections again the pool may take to serve them.
const RECOVERY_BOUND: Duration = Duration::from_secs(10);
/// How long one operation may take before the test calls it hung.
const OP_BOUND: Duration = Duration::from_secs(30);
/// sqlx waits this long for a connection (retrying while the server refuses them) before an
/// operation fails with a pool timeout: operations started during the outage wait for the
/// server rather than fail.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// The probe pool's acquire timeout, shorter than most outages: its operations started while
/// the server is down fail when the restart outlasts it (a fast restart may not), and then
/// must say so clearly too. How many failed is printed.
const PROBE_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(100);
/// How long after the server's return a probe may still fail: it has to open a connection
/// within its short acquire timeout, which a loaded machine may not manage at once.
const PROBE_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Insert,
    Read,
    /// Two inserts around a `pg_sleep`, in one transaction: certainly in flight at the restart.
    SlowTransaction,
    /// An insert through the probe pool, whose acquire timeout is shorter than the outage.
    Probe,
}

/// One failed operation.
#[derive(Debug)]
struct Failure {
    kind: Kind,
    org: OrgId,
    /// The rows it tried to write: they may exist or not (a failed commit's outcome is unknown).
    ids: Vec<String>,
    started: Instant,
    ended: Instant,
    error: Error,
}

#[derive(Debug, Default)]
struct Log {
    /// Rows whose insert (or transaction) returned `Ok`: they must survive the restart.
    committed: HashMap<String, OrgId>,
    /// (started, ended) of every operation that succeeded.
    successes: Vec<(Instant, Instant)>,
    failures: Vec<Failure>,
    /// Isolation failures, hung operations: any entry fails the test.
    violations: Vec<String>,
}

fn case(org: &Org, id: &str, name: String) -> fg_test_case::ActiveModel {
    fg_test_case::ActiveModel {
        id: Set(id.to_owned()),
        repo_id: Set(org.repo.clone()),
        suite: Set("restart".into()),
        name: Set(name),
        ..Default::default()
    }
}

async fn one_op(
    pool: &DatabaseConnection,
    orgs: &[Org],
    log: &Mutex<Log>,
    rng: &mut fastrand::Rng,
    probe: bool,
) {
    let org = &orgs[rng.usize(..orgs.len())];
    let scope = TenantScope::new(pool.clone(), org.id.clone());
    let kind = match (probe, rng.u8(..20)) {
        (true, _) => Kind::Probe,
        (false, 0..12) => Kind::Insert,
        (false, 12..17) => Kind::Read,
        (false, _) => Kind::SlowTransaction,
    };
    let new_ids = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| flakeguard_db::entity::stamps::new_id())
            .collect()
    };
    let ids = match kind {
        Kind::Insert | Kind::Probe => new_ids(1),
        Kind::SlowTransaction => new_ids(2),
        Kind::Read => Vec::new(),
    };
    let sleep_ms = rng.u64(20..200);
    let name = format!("i{}", rng.u32(..));
    let started = Instant::now();
    let work = async {
        match kind {
            Kind::Insert | Kind::Probe => {
                let row = scope.insert(case(org, &ids[0], name)).await?;
                if row.org_id != org.id.as_str() {
                    log.lock().unwrap().violations.push(format!(
                        "insert for {} stored the row for {}",
                        org.id, row.org_id
                    ));
                }
            }
            Kind::Read => {
                let rows = scope
                    .find::<fg_test_case::Entity>()
                    .filter(fg_test_case::Column::Suite.eq("restart"))
                    .limit(20)
                    .all()
                    .await?;
                if let Some(r) = rows.iter().find(|r| r.org_id != org.id.as_str()) {
                    log.lock()
                        .unwrap()
                        .violations
                        .push(format!("{} read row {} of {}", org.id, r.id, r.org_id));
                }
            }
            Kind::SlowTransaction => {
                let (o, rows) = (org.clone(), ids.clone());
                scope
                    .transaction(move |tx| {
                        Box::pin(async move {
                            tx.insert(case(&o, &rows[0], format!("slow-{}", rows[0])))
                                .await?;
                            tx.execute_raw(Statement::from_string(
                                DatabaseBackend::Postgres,
                                format!("SELECT pg_sleep({})", sleep_ms as f64 / 1000.0),
                            ))
                            .await?;
                            tx.insert(case(&o, &rows[1], format!("slow-{}", rows[1])))
                                .await?;
                            Ok::<_, Error>(())
                        })
                    })
                    .await?;
            }
        }
        Ok::<_, Error>(())
    };
    let result = tokio::time::timeout(OP_BOUND, work).await;
    let ended = Instant::now();
    let mut l = log.lock().unwrap();
    match result {
        Ok(Ok(())) => {
            for id in ids {
                l.committed.insert(id, org.id.clone());
            }
            l.successes.push((started, ended));
        }
        Ok(Err(error)) => l.failures.push(Failure {
            kind,
            org: org.id.clone(),
            ids,
            started,
            ended,
            error,
        }),
        Err(_) => l.violations.push(format!(
            "a {kind:?} for {} hung for more than {}s",
            org.id,
            OP_BOUND.as_secs()
        )),
    }
}

/// The operations a failure of `kind` may name.
fn allowed_operations(kind: Kind) -> &'static [Operation] {
    match kind {
        Kind::Insert | Kind::Probe => &[Operation::Begin, Operation::Insert, Operation::Commit],
        Kind::Read => &[Operation::Begin, Operation::Find, Operation::Commit],
        Kind::SlowTransaction => &[
            Operation::Begin,
            Operation::Insert,
            Operation::Raw,
            Operation::Commit,
        ],
    }
}

/// Whether a failure says clearly what happened: a connection error naming the tenant and the
/// operation, and the table for a single-table operation. Returns what is missing.
fn unclear(f: &Failure) -> Option<String> {
    let text = f.error.to_string();
    let mut missing = Vec::new();
    if !f.error.is_connection_error() {
        missing.push("is_connection_error() is false");
    }
    match f.error.context() {
        None => missing.push("no context"),
        Some(ctx) => {
            if ctx.tenant.as_ref() != Some(&f.org) {
                missing.push("the tenant is not the operation's");
            }
            if !allowed_operations(f.kind).contains(&ctx.operation) {
                missing.push("an unexpected operation");
            }
            let single_table =
                f.kind != Kind::SlowTransaction || matches!(ctx.operation, Operation::Insert);
            if single_table && ctx.table != Some("FGTestCase") {
                missing.push("the table is not named");
            }
            // After the context, the message gives the cause itself.
            let cause = text.strip_prefix(&format!("{ctx}: ")).unwrap_or("");
            if cause.trim().len() < 10 {
                missing.push("the message gives no cause after the context");
            }
        }
    }
    if !text.contains(&format!("for tenant {}", f.org)) {
        missing.push("the message does not name the tenant");
    }
    (!missing.is_empty())
        .then(|| format!("{:?} for {}: {}: {text}", f.kind, f.org, missing.join(", ")))
}

async fn postmaster_start(admin: &DatabaseConnection) -> String {
    admin
        .query_one_raw(Statement::from_string(
            admin.get_database_backend(),
            "SELECT pg_postmaster_start_time()::text AS t",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<String>("", "t")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pool_recovers_from_a_server_restart_and_no_committed_row_is_lost() {
    if std::env::var("DATABASE_URL").is_ok_and(|url| !url.trim().is_empty()) {
        // Straight to stderr, past the test harness's capture, so that the skip shows.
        let _ = writeln!(
            std::io::stderr(),
            "tests/restart.rs: SKIPPED: DATABASE_URL is set, and this test restarts the server \
             (it runs against the throwaway server only)"
        );
        return;
    }
    let db = TestDatabase::new().await.unwrap();
    let admin = db.connect().await.unwrap();
    // The throwaway server runs with synchronous_commit=off (and fsync=off) for speed. A fast
    // shutdown writes every committed transaction out anyway (its shutdown checkpoint), but
    // this test should not depend on that: with synchronous_commit on, an `Ok` from a commit
    // means its WAL record was written before the reply. (fsync=off only matters if the machine
    // itself goes down, which a restart of PostgreSQL does not simulate.)
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{}\" SET synchronous_commit = on",
            db.name()
        ))
        .await
        .unwrap();
    let before = postmaster_start(&admin).await;

    // The crate's own pool options: connections are pinged only after sitting idle, so the
    // restart is found by the BEGIN of the next transaction on each broken connection.
    let mut opts = flakeguard_db::connect_options(&db.app_url().await.unwrap());
    opts.max_connections(POOL)
        .min_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT);
    let pool = Database::connect(opts).await.unwrap();
    let sync = pool
        .query_one_raw(Statement::from_string(
            pool.get_database_backend(),
            "SELECT current_setting('synchronous_commit') AS s",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<String>("", "s")
        .unwrap();
    assert_eq!(
        sync, "on",
        "synchronous_commit of the application's sessions"
    );
    let mut probe_opts = flakeguard_db::connect_options(&db.app_url().await.unwrap());
    probe_opts
        .max_connections(1)
        .acquire_timeout(PROBE_ACQUIRE_TIMEOUT);
    let probe_pool = Database::connect(probe_opts).await.unwrap();
    let orgs = Arc::new(workload::orgs(&pool, ORGS, "restart").await);

    let log = Arc::new(Mutex::new(Log::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let (pool, orgs, log, stop) = (pool.clone(), orgs.clone(), log.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(task as u64);
            while !stop.load(Ordering::Relaxed) {
                one_op(&pool, &orgs, &log, &mut rng, false).await;
                tokio::time::sleep(Duration::from_millis(rng.u64(0..5))).await;
            }
        }));
    }

    // Warm up: the pool is busy and rows are committed.
    let warm = Instant::now();
    while log.lock().unwrap().successes.len() < 200 && warm.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The probe runs from now on, on its connection made before the restart.
    {
        let (orgs, log, stop) = (orgs.clone(), log.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(TASKS as u64);
            while !stop.load(Ordering::Relaxed) {
                one_op(&probe_pool, &orgs, &log, &mut rng, true).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let restart_began = Instant::now();
    db.restart_server().await.unwrap();
    let ready = Instant::now();
    let after = postmaster_start(&admin).await;
    assert_ne!(before, after, "the server did not restart");

    // The same pool serves operations again, within a bound.
    let recovered = loop {
        let first = log
            .lock()
            .unwrap()
            .successes
            .iter()
            .filter(|(started, _)| *started >= ready)
            .map(|(_, ended)| *ended)
            .min();
        if let Some(at) = first {
            break at;
        }
        assert!(
            ready.elapsed() < RECOVERY_BOUND,
            "no operation succeeded within {}s of the server's return",
            RECOVERY_BOUND.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Then a steady second, to see that it stays recovered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let steady = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.unwrap();
    }
    let log = Arc::try_unwrap(log).unwrap().into_inner().unwrap();

    // An operation may fail only if it overlapped the restart (for the probe: or began soon
    // after it).
    let in_window = |f: &Failure| {
        let until = if f.kind == Kind::Probe {
            ready + PROBE_GRACE
        } else {
            ready
        };
        f.started <= until && f.ended >= restart_began
    };
    let during = |started: Instant| started >= restart_began && started < ready;
    let probes_failed = log
        .failures
        .iter()
        .filter(|f| f.kind == Kind::Probe)
        .count();
    eprintln!(
        "operations started while the server was down: {} succeeded (after waiting for it), {} \
         failed; probe failures: {probes_failed}",
        log.successes.iter().filter(|(s, _)| during(*s)).count(),
        log.failures.iter().filter(|f| during(f.started)).count(),
    );
    eprintln!(
        "restart took {:?}; first success {:?} after the server was back; {} ops succeeded, \
         {} failed, {} rows committed",
        ready - restart_began,
        recovered - ready,
        log.successes.len(),
        log.failures.len(),
        log.committed.len()
    );
    // The failures, grouped by message without tenant and numbers, with one example each.
    let mut by_message: HashMap<String, (usize, String)> = HashMap::new();
    for f in &log.failures {
        let text = f.error.to_string();
        let shape = without_digits(&text.replace(f.org.as_str(), "<org>"));
        let entry = by_message
            .entry(format!("{:?}: {shape}", f.kind))
            .or_insert((0, format!("{:?}: {text}", f.kind)));
        entry.0 += 1;
    }
    let mut grouped: Vec<_> = by_message.into_iter().collect();
    grouped.sort();
    for (_, (n, example)) in &grouped {
        eprintln!("  {n:>4} x {example}");
    }

    let mut problems = log.violations.clone();
    problems.extend(log.failures.iter().filter_map(unclear));

    problems.extend(log.failures.iter().filter(|f| !in_window(f)).map(|f| {
        format!(
            "{:?} for {} failed outside the restart: {}",
            f.kind, f.org, f.error
        )
    }));
    if log.failures.is_empty() {
        problems.push("no operation failed: the restart caught nothing in flight".into());
    }
    if !log.successes.iter().any(|(started, _)| *started >= steady) {
        problems.push("nothing succeeded in the steady second after recovery".into());
    }

    // Every insert that returned Ok is there, for its organization (read as the superuser,
    // directly: row-level security does not apply).
    let rows = admin
        .query_all_raw(Statement::from_string(
            admin.get_database_backend(),
            r#"SELECT id, "orgId" AS org FROM "FGTestCase" WHERE suite = 'restart'"#,
        ))
        .await
        .unwrap();
    let stored: HashMap<String, String> = rows
        .iter()
        .map(|r| {
            (
                r.try_get::<String>("", "id").unwrap(),
                r.try_get::<String>("", "org").unwrap(),
            )
        })
        .collect();
    let mut lost = 0;
    for (id, org) in &log.committed {
        match stored.get(id) {
            None => {
                lost += 1;
                problems.push(format!("committed row {id} of {org} is missing"));
            }
            Some(o) if o != org.as_str() => {
                problems.push(format!("row {id} of {org} is stored for {o}"))
            }
            Some(_) => {}
        }
    }
    let failed_but_stored = log
        .failures
        .iter()
        .flat_map(|f| &f.ids)
        .filter(|id| stored.contains_key(*id))
        .count();
    eprintln!(
        "{} committed rows checked, {lost} missing; {} rows stored; {failed_but_stored} rows of \
         failed operations stored all the same (the connection broke after the commit)",
        log.committed.len(),
        stored.len()
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Replaces runs of digits with `N`, so that messages differing only in numbers group together.
fn without_digits(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_digits = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}
