//! A concurrent workload of scoped reads, writes and transactions over many organizations,
//! with a ledger of what each task committed, rolled back or abandoned, and a final audit.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flakeguard_db::entity::{fg_repository, fg_test_case, organization};
use flakeguard_db::sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, Set, Statement};
use flakeguard_db::{Error, OrgId, TenantScope};

/// How big a run is.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub tasks: usize,
    pub ops_per_task: usize,
    pub seed: u64,
    /// A transaction to drop half-way is dropped within this many milliseconds (at random):
    /// long enough, on the server at hand, for its inserts to have run in some of them.
    pub drop_within_ms: u64,
}

/// One organization of the run, with its repository.
#[derive(Debug, Clone)]
pub struct Org {
    pub id: OrgId,
    pub repo: String,
}

/// What the tasks did, and everything they saw that they should not have.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Rows committed, by id, with their organization.
    pub committed: HashMap<String, OrgId>,
    /// Rows deleted after they were committed.
    pub deleted: HashSet<String>,
    /// Rows whose transaction failed on purpose or was dropped: they must not exist.
    pub absent: HashSet<String>,
    /// Operations that failed with an error (allowed in some runs, e.g. across a restart).
    pub errors: Vec<String>,
    /// Those of `errors` that `Error::is_retriable` does not call retriable.
    pub unretriable: Vec<String>,
    /// Isolation failures: any entry fails the run.
    pub violations: Vec<String>,
    pub ops: usize,
    /// Transactions dropped after their inserts had run (not merely before they started).
    pub dropped_after_insert: usize,
}

/// The workload's seed: `FLAKEGUARD_SEED` to replay a run, a fresh one otherwise.
pub fn seed() -> u64 {
    std::env::var("FLAKEGUARD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

/// Creates `n` organizations, each with a repository, through their scopes.
pub async fn orgs(app: &DatabaseConnection, n: usize, prefix: &str) -> Vec<Org> {
    let mut out = Vec::new();
    for i in 0..n {
        let id = OrgId::new(format!("{prefix}-{i}")).unwrap();
        let scope = TenantScope::new(app.clone(), id.clone());
        scope
            .insert(organization::ActiveModel {
                name: Set(format!("Org {i}")),
                slug: Set(format!("{prefix}-{i}")),
                ..Default::default()
            })
            .await
            .unwrap();
        let repo = scope
            .insert(fg_repository::ActiveModel {
                owner: Set(format!("owner-{i}")),
                name: Set("web".into()),
                installation_id: Set(format!("inst-{i}")),
                ..Default::default()
            })
            .await
            .unwrap();
        out.push(Org { id, repo: repo.id });
    }
    out
}

fn case(org: &Org, id: &str, name: String) -> fg_test_case::ActiveModel {
    fg_test_case::ActiveModel {
        id: Set(id.to_owned()),
        repo_id: Set(org.repo.clone()),
        suite: Set("load".into()),
        name: Set(name),
        ..Default::default()
    }
}

/// Runs the workload: `cfg.tasks` concurrent tasks on `pool`, each doing `cfg.ops_per_task`
/// random operations for random organizations. When `tolerate_errors` is false, any error
/// other than a deliberate one is a violation.
pub async fn run(
    pool: &DatabaseConnection,
    orgs: &[Org],
    cfg: Config,
    tolerate_errors: bool,
) -> Ledger {
    run_until(pool, orgs, cfg, tolerate_errors, None).await
}

/// [`run`], with each task going on after its `cfg.ops_per_task` operations until `done` is
/// set, when it is given.
pub async fn run_until(
    pool: &DatabaseConnection,
    orgs: &[Org],
    cfg: Config,
    tolerate_errors: bool,
    done: Option<Arc<AtomicBool>>,
) -> Ledger {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let orgs = Arc::new(orgs.to_vec());
    let mut handles = Vec::new();
    for task in 0..cfg.tasks {
        let (pool, orgs, ledger) = (pool.clone(), orgs.clone(), ledger.clone());
        let done = done.clone();
        let seed = cfg.seed.wrapping_mul(1_000_003).wrapping_add(task as u64);
        handles.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed);
            let going_on = |op: usize| {
                op < cfg.ops_per_task || done.as_ref().is_some_and(|d| !d.load(Ordering::SeqCst))
            };
            for op in (0..).take_while(|op| going_on(*op)) {
                let drop_within = cfg.drop_within_ms;
                one_op(
                    &pool,
                    &orgs,
                    &ledger,
                    &mut rng,
                    (task, op),
                    tolerate_errors,
                    drop_within,
                )
                .await;
            }
        }));
    }
    for h in handles {
        if let Err(e) = h.await {
            ledger
                .lock()
                .unwrap()
                .violations
                .push(format!("a task panicked: {e}"));
        }
    }
    Arc::try_unwrap(ledger).unwrap().into_inner().unwrap()
}

fn record_error(ledger: &Mutex<Ledger>, what: &str, e: &Error, tolerate: bool) {
    let mut l = ledger.lock().unwrap();
    if matches!(e, Error::TenantDenied { .. }) || !tolerate {
        l.violations.push(format!("{what}: unexpected error: {e}"));
    } else {
        l.errors.push(format!("{what}: {e}"));
        if !e.is_retriable() {
            l.unretriable.push(format!("{what}: {e:?}"));
        }
    }
}

async fn one_op(
    pool: &DatabaseConnection,
    orgs: &[Org],
    ledger: &Mutex<Ledger>,
    rng: &mut fastrand::Rng,
    (task, op): (usize, usize),
    tolerate: bool,
    drop_within_ms: u64,
) {
    let org = &orgs[rng.usize(..orgs.len())];
    let scope = TenantScope::new(pool.clone(), org.id.clone());
    let own_rows = |ledger: &Mutex<Ledger>| -> Vec<String> {
        let l = ledger.lock().unwrap();
        l.committed
            .iter()
            .filter(|(id, o)| **o == org.id && !l.deleted.contains(*id))
            .map(|(id, _)| id.clone())
            .collect()
    };
    ledger.lock().unwrap().ops += 1;
    match rng.u8(..8) {
        0 => match scope.find::<fg_test_case::Entity>().all().await {
            Ok(rows) => {
                for r in rows {
                    let stamp_ok = r
                        .owner_team
                        .as_deref()
                        .is_none_or(|t| t.starts_with(&format!("{}:", org.id)));
                    if r.org_id != org.id.as_str() || !stamp_ok {
                        ledger.lock().unwrap().violations.push(format!(
                            "task {task} as {} saw row {} of {} (owner {:?})",
                            org.id, r.id, r.org_id, r.owner_team
                        ));
                    }
                }
            }
            Err(e) => record_error(ledger, "read", &e, tolerate),
        },
        1 => {
            let id = flakeguard_db::entity::stamps::new_id();
            match scope.insert(case(org, &id, format!("t{task}-{op}"))).await {
                Ok(row) => {
                    if row.org_id != org.id.as_str() {
                        ledger
                            .lock()
                            .unwrap()
                            .violations
                            .push(format!("insert stored {} for {}", row.org_id, org.id));
                    }
                    ledger.lock().unwrap().committed.insert(id, org.id.clone());
                }
                // A failed insert (e.g. across a restart) may or may not have committed.
                Err(e) => record_error(ledger, "insert", &e, tolerate),
            }
        }
        2 => {
            let mine = own_rows(ledger);
            if mine.is_empty() {
                return;
            }
            let id = mine[rng.usize(..mine.len())].clone();
            let change = fg_test_case::ActiveModel {
                id: Set(id),
                owner_team: Set(Some(format!("{}:{task}:{op}", org.id))),
                ..Default::default()
            };
            match scope.update(change).await {
                Ok(row) if row.org_id != org.id.as_str() => {
                    ledger
                        .lock()
                        .unwrap()
                        .violations
                        .push(format!("update returned a row of {}", row.org_id));
                }
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => record_error(ledger, "update", &e, tolerate),
            }
        }
        3 => {
            let mine = own_rows(ledger);
            if mine.is_empty() {
                return;
            }
            let id = mine[rng.usize(..mine.len())].clone();
            match scope.delete::<fg_test_case::Entity, _>(id.clone()).await {
                Ok(()) => {
                    ledger.lock().unwrap().deleted.insert(id);
                }
                Err(Error::NotFound { .. }) => {}
                Err(e) => record_error(ledger, "delete", &e, tolerate),
            }
        }
        4 | 5 => {
            // Several statements atomically; a third of them fail on purpose at the end.
            let ids: Vec<String> = (0..3)
                .map(|_| flakeguard_db::entity::stamps::new_id())
                .collect();
            let fail = rng.u8(..3) == 0;
            let (o, rows) = (org.clone(), ids.clone());
            let result = scope
                .transaction(move |tx| {
                    Box::pin(async move {
                        for (i, id) in rows.iter().enumerate() {
                            tx.insert(case(&o, id, format!("tx{task}-{op}-{i}")))
                                .await?;
                        }
                        let stamp = fg_test_case::ActiveModel {
                            owner_team: Set(Some(format!("{}:{task}:{op}", o.id))),
                            ..Default::default()
                        };
                        tx.update_many(stamp, fg_test_case::Column::Id.is_in(rows.clone()))
                            .await?;
                        if fail {
                            return Err(Error::Config("deliberate failure".into()));
                        }
                        Ok(())
                    })
                })
                .await;
            let mut l = ledger.lock().unwrap();
            match result {
                Ok(()) => ids.into_iter().for_each(|id| {
                    l.committed.insert(id, org.id.clone());
                }),
                Err(Error::Config(_)) => l.absent.extend(ids),
                Err(e) => {
                    drop(l);
                    record_error(ledger, "transaction", &e, tolerate);
                }
            }
        }
        6 => {
            // Dropped mid-transaction: its rows must never appear.
            let ids: Vec<String> = (0..2)
                .map(|_| flakeguard_db::entity::stamps::new_id())
                .collect();
            let (o, rows) = (org.clone(), ids.clone());
            let inserted = Arc::new(AtomicBool::new(false));
            let mark = Arc::clone(&inserted);
            let work = scope.transaction(move |tx| {
                Box::pin(async move {
                    for (i, id) in rows.iter().enumerate() {
                        tx.insert(case(&o, id, format!("drop{task}-{op}-{i}")))
                            .await?;
                    }
                    mark.store(true, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok::<_, Error>(())
                })
            });
            let limit = Duration::from_millis(rng.u64(1..drop_within_ms));
            match tokio::time::timeout(limit, work).await {
                Err(_) => {
                    let mut l = ledger.lock().unwrap();
                    if inserted.load(Ordering::SeqCst) {
                        l.dropped_after_insert += 1;
                    }
                    l.absent.extend(ids);
                }
                Ok(r) => ledger
                    .lock()
                    .unwrap()
                    .violations
                    .push(format!("a sleeping transaction finished: {r:?}")),
            }
        }
        _ => {
            // Reach for another organization's row by id.
            let other = &orgs[rng.usize(..orgs.len())];
            if other.id == org.id {
                return;
            }
            let theirs: Option<String> = {
                let l = ledger.lock().unwrap();
                l.committed
                    .iter()
                    .find(|(_, o)| **o == other.id)
                    .map(|(id, _)| id.clone())
            };
            let Some(id) = theirs else { return };
            match scope
                .find_by_id::<fg_test_case::Entity, _>(id.clone())
                .await
            {
                Ok(None) => {}
                Ok(Some(r)) => ledger
                    .lock()
                    .unwrap()
                    .violations
                    .push(format!("{} found {}'s row {}", org.id, r.org_id, r.id)),
                Err(e) => record_error(ledger, "cross read", &e, tolerate),
            }
            let change = fg_test_case::ActiveModel {
                id: Set(id.clone()),
                owner_team: Set(Some(format!("{}:{task}:{op}", org.id))),
                ..Default::default()
            };
            match scope.update(change).await {
                Err(Error::NotFound { .. }) => {}
                Err(e) => record_error(ledger, "cross update", &e, tolerate),
                Ok(r) => ledger
                    .lock()
                    .unwrap()
                    .violations
                    .push(format!("{} updated {}'s row {}", org.id, r.org_id, r.id)),
            }
            match scope.delete::<fg_test_case::Entity, _>(id.clone()).await {
                Err(Error::NotFound { .. }) => {}
                Err(e) => record_error(ledger, "cross delete", &e, tolerate),
                Ok(()) => ledger
                    .lock()
                    .unwrap()
                    .violations
                    .push(format!("{} deleted another's row {id}", org.id)),
            }
        }
    }
}

/// Audits the end state as the superuser: every committed row present with its organization
/// (unless deleted), every rolled-back or abandoned row absent, every owner stamp from the row's
/// own organization. Returns the violations.
pub async fn audit(admin: &DatabaseConnection, ledger: &Ledger) -> Vec<String> {
    let rows = admin
        .query_all_raw(Statement::from_string(
            admin.get_database_backend(),
            r#"SELECT id, "orgId" AS org, coalesce("ownerTeam", '') AS owner FROM "FGTestCase" WHERE suite = 'load'"#,
        ))
        .await
        .unwrap();
    let stored: HashMap<String, (String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get::<String>("", "id").unwrap(),
                (
                    r.try_get::<String>("", "org").unwrap(),
                    r.try_get::<String>("", "owner").unwrap(),
                ),
            )
        })
        .collect();
    let mut out = Vec::new();
    for (id, org) in &ledger.committed {
        match stored.get(id) {
            None if ledger.deleted.contains(id) => {}
            None => out.push(format!("committed row {id} of {org} is missing")),
            Some((stored_org, _)) if stored_org != org.as_str() => {
                out.push(format!("row {id} of {org} is stored for {stored_org}"))
            }
            Some(_) if ledger.deleted.contains(id) => {
                out.push(format!("deleted row {id} still exists"))
            }
            Some(_) => {}
        }
    }
    for id in &ledger.absent {
        if stored.contains_key(id) {
            out.push(format!("rolled-back or abandoned row {id} exists"));
        }
    }
    for (id, (org, owner)) in &stored {
        if !owner.is_empty() && !owner.starts_with(&format!("{org}:")) {
            out.push(format!("row {id} of {org} was stamped by {owner}"));
        }
    }
    out
}

/// Everything wrong with a run: what its tasks saw ([`Ledger::violations`]) and what the audit
/// of the end state finds ([`audit`]).
pub async fn violations(admin: &DatabaseConnection, ledger: &Ledger) -> Vec<String> {
    let mut out = ledger.violations.clone();
    out.extend(audit(admin, ledger).await);
    out
}

impl Ledger {
    /// One line on what the run did, for the test's output.
    pub fn summary(&self) -> String {
        format!(
            "{} ops: {} rows committed, {} deleted, {} rolled back or abandoned",
            self.ops,
            self.committed.len(),
            self.deleted.len(),
            self.absent.len()
        )
    }
}

/// The isolation run of tests/concurrency.rs on the database of `admin` (the superuser, for
/// the audit) and `app_url` (the application role): 50 organizations, 200 concurrent tasks of
/// `ops_per_task` operations each on a pool of 8 connections, failures and dropped
/// transactions included; panics naming the seed on any violation.
pub async fn isolated_under_load(
    admin: &DatabaseConnection,
    app_url: &str,
    ops_per_task: usize,
    seed: u64,
    drop_within_ms: u64,
) {
    eprintln!("workload seed {seed} (replay with FLAKEGUARD_SEED={seed})");
    let mut opts = flakeguard_db::connect_options(app_url);
    opts.max_connections(8).min_connections(1);
    let pool = flakeguard_db::sea_orm::Database::connect(opts)
        .await
        .unwrap();
    let orgs = orgs(&pool, 50, "load").await;
    let cfg = Config {
        tasks: 200,
        ops_per_task,
        seed,
        drop_within_ms,
    };
    let ledger = run(&pool, &orgs, cfg, false).await;
    let violations = violations(admin, &ledger).await;
    eprintln!("{}", ledger.summary());
    assert!(violations.is_empty(), "seed {seed}: {violations:#?}");
    assert!(
        !ledger.committed.is_empty() && !ledger.absent.is_empty(),
        "seed {seed}: the mix did not exercise commits and rollbacks"
    );
    assert!(
        ledger.dropped_after_insert > 0,
        "seed {seed}: no transaction was dropped after its inserts had run"
    );
    eprintln!(
        "{} transactions dropped after their inserts",
        ledger.dropped_after_insert
    );
}
