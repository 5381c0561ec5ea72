//! Isolation under load: 50 organizations, 200 concurrent tasks, a pool of 8 connections, a
//! random mix of scoped reads, writes and transactions, some failing on purpose and some
//! dropped half-way. No task may see or change another organization's row; every committed
//! write must be there at the end and every rolled-back one absent.
//!
//! The seed is printed; replay a run with `FLAKEGUARD_SEED=<seed>`. The long run:
//! `cargo test --test concurrency -- --ignored` (`FLAKEGUARD_SOAK_OPS` ops per task, default 400).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flakeguard_db::sea_orm::Database;
use flakeguard_db::testing::TestDatabase;
use support::workload::{self, Config};

fn seed() -> u64 {
    std::env::var("FLAKEGUARD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

async fn isolated_under_load(ops_per_task: usize) {
    let seed = seed();
    eprintln!("workload seed {seed} (replay with FLAKEGUARD_SEED={seed})");
    let db = TestDatabase::new().await.unwrap();
    let admin = db.connect().await.unwrap();
    let mut opts = flakeguard_db::connect_options(&db.app_url().await.unwrap());
    opts.max_connections(8).min_connections(1);
    let pool = Database::connect(opts).await.unwrap();
    let orgs = workload::orgs(&pool, 50, "load").await;
    let cfg = Config {
        tasks: 200,
        ops_per_task,
        seed,
    };
    let ledger = workload::run(&pool, &orgs, cfg, false).await;
    let mut violations = ledger.violations.clone();
    violations.extend(workload::audit(&admin, &ledger).await);
    eprintln!(
        "{} ops: {} rows committed, {} deleted, {} rolled back or abandoned",
        ledger.ops,
        ledger.committed.len(),
        ledger.deleted.len(),
        ledger.absent.len()
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_tasks_over_fifty_organizations_stay_isolated() {
    isolated_under_load(6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long run: minutes; cargo test --test concurrency -- --ignored"]
async fn long_run_stays_isolated() {
    let ops = std::env::var("FLAKEGUARD_SOAK_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    isolated_under_load(ops).await;
}
