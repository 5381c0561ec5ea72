//! Isolation under load: 50 organizations, 200 concurrent tasks, a pool of 8 connections, a
//! random mix of scoped reads, writes and transactions, some failing on purpose and some
//! dropped half-way. No task may see or change another organization's row; every committed
//! write must be there at the end and every rolled-back one absent.
//!
//! The seed is printed; replay a run with `FLAKEGUARD_SEED=<seed>`. The long run:
//! `cargo test --test concurrency -- --ignored` (`FLAKEGUARD_SOAK_OPS` ops per task, default 400).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flakeguard_db::testing::TestDatabase;
use support::workload;

use workload::seed;

async fn isolated_under_load(ops_per_task: usize) {
    let db = TestDatabase::new().await.unwrap();
    let admin = db.connect().await.unwrap();
    let app_url = db.app_url().await.unwrap();
    workload::isolated_under_load(&admin, &app_url, ops_per_task, seed(), 80).await;
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
