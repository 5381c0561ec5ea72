//! What tenant safety costs: `TenantScope` side by side with raw SeaORM, plain sqlx and COPY,
//! in one process, against one throwaway PostgreSQL.
//!
//! ```text
//! cargo run --release --example bench                 # quick: a few minutes on two cores
//! cargo run --release --example bench -- --long       # more rounds (or FLAKEGUARD_BENCH_LONG=1)
//! cargo run --release --example bench -- --only point,unit   # some workloads only
//! cargo run --release --example bench -- --rounds 5   # this many rounds of every workload
//! ```
//!
//! Workloads (`--only` names): `point` (point read by id), `unit` (five queries in one scoped
//! transaction), `list` (a filtered list of 50 rows), `insert` (one row; with it `update` and
//! `delete`, one row each), `bulk` (10,000 `FGOccurrence` rows in one transaction), `stream`
//! (100,000 and 1,000,000 rows through `insert_many_copy_stream`: time and peak memory),
//! `dashboard` (per-test failure rates of one organization among 1,000,000 occurrences of 100
//! organizations), `citus` (point read, insert, the five queries and the dashboard through the
//! scope on a distributed Citus cluster against the same on one server; skipped where Citus is
//! not installed). Each timed workload runs with 1 and with 8 concurrent clients.
//!
//! The scoped side connects through `flakeguard_db::connect` as the application role (subject to
//! row-level security, on the crate's pool options); the raw side as the server's superuser (no
//! row-level security, no tenant predicate, no transaction unless the workload needs one), once
//! on SeaORM's default pool options (the baseline: sqlx pings a connection when it is acquired)
//! and once on the crate's (`flakeguard_db::connect_options`), so that every goal is shown
//! against both. The data is written server-side (`INSERT ... SELECT generate_series`) through
//! another pool, and the measured pools are opened afterwards: a server process that did the
//! seeding's large allocations runs the dashboard query about 10% faster than a fresh one,
//! which would otherwise favour whichever side seeded.
//!
//! Besides the timings it prints:
//!
//! - round trips per operation of each contender (`--no-trips` to skip), counted by
//!   `flakeguard_db::testing::TripCounter`: on the critical path (from the call to its return)
//!   and in all (with the pool's release ping and a queued ROLLBACK), and one machine-readable
//!   line per keyed contender, `trips <key>/<side> <n>`;
//! - `floor:` contenders, the scope's statements sent with sqlx directly, for what the driver
//!   allows at best;
//! - EXPLAIN ANALYZE of the single insert and of the bulk INSERT ... SELECT with and without
//!   row-level security, and of the dashboard query; and the dashboard query's server-side
//!   planning and execution times (medians of `EXPLAIN (ANALYZE, TIMING OFF)`);
//! - one machine-readable line per goal and client count, `goal <key> clients=<n> ratio=<r>`.
//!
//! # Method
//!
//! Timings on a small machine swing with where the scheduler puts the client and the server, so
//! only numbers from the same run are compared, and the contenders of a workload take turns:
//! each round runs one sample of every contender, in an order that rotates from round to round.
//! A sample is `clients` tasks each running `ops` operations; its figure is the wall time
//! divided by the operations (latency with 1 client, inverse throughput with 8). Each contender
//! gets an unmeasured warm-up sample first. The report gives each contender's median over the
//! rounds and its ratio to the workload's baseline, and checks the goals.
//!
//! Beside each timing the report prints the CPU time per operation of the client side (every
//! thread of this process: the callers, the drivers' tasks, the runtime) and of the server
//! (every process named `postgres`), medians over the same samples, read from Linux's
//! `schedstat` (nanoseconds). With 8 clients on a small machine both sides compete for the
//! same cores, so a contender's throughput there follows its total CPU per operation.
//!
//! No timing is asserted anywhere in the test suite: this program is the only judge, and it
//! reports MISS instead of failing.

mod citus;
mod reports;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use flakeguard_db::entity::{
    fg_flake_score, fg_occurrence, fg_repository, fg_test_case, fg_workflow_run,
};
use flakeguard_db::sea_orm::sqlx::{self, postgres::PgPoolCopyExt};
use flakeguard_db::sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseConnection, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement, TransactionTrait, Value,
};
use flakeguard_db::testing::{TestDatabase, TripCounter};
use flakeguard_db::{OrgId, TenantScope};
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Res<T = ()> = Result<T, BoxError>;

/// One operation of a contender: `(round, client, op)` identifies it, so that operations can
/// pick distinct rows.
type Op = Arc<dyn Fn(Call) -> BoxFuture<'static, Res> + Send + Sync>;
/// Untimed work before each sample (for example emptying a table).
type Prepare = Arc<dyn Fn() -> BoxFuture<'static, Res> + Send + Sync>;

#[derive(Debug, Clone, Copy)]
struct Call {
    round: usize,
    client: usize,
    op: usize,
}

/// The organization the read and write workloads act for, and a second one beside it.
const ORG: &str = "acme";
const OTHER_ORG: &str = "globex";
/// Test cases per organization in the main database.
const TESTS: usize = 2_000;
/// Workflow runs per organization in the main database.
const RUNS: usize = 100;
/// Rows per bulk insert.
const BULK_ROWS: usize = 10_000;
/// Flake-score threshold of the filtered list (scores are uniform in [0, 1)).
const THRESHOLD: f64 = 0.5;
/// The dashboard dataset: organizations, and tests and runs per organization; every test has
/// one occurrence per run.
const DASH_ORGS: usize = 100;
const DASH_TESTS: usize = 100;
const DASH_RUNS: usize = 100;

struct Config {
    long: bool,
    only: Option<Vec<String>>,
    /// Rounds of the light workloads (reads, single inserts).
    rounds: usize,
    /// Rounds of the bulk insert.
    bulk_rounds: usize,
    /// Rounds of the dashboard query.
    dash_rounds: usize,
    /// Also count round trips per operation.
    trips: bool,
}

impl Config {
    fn from_args() -> Res<Config> {
        let mut long = std::env::var("FLAKEGUARD_BENCH_LONG").is_ok_and(|v| !v.is_empty());
        let mut only = None;
        let mut trips = true;
        let mut rounds: Option<usize> = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--long" => long = true,
                "--quick" => long = false,
                "--no-trips" => trips = false,
                "--only" => {
                    let list = args.next().ok_or("--only needs a list, e.g. point,bulk")?;
                    only = Some(list.split(',').map(str::to_owned).collect());
                }
                "--rounds" => {
                    let n = args.next().ok_or("--rounds needs a number")?.parse()?;
                    rounds = Some(n);
                }
                "--bench" => {} // passed by `cargo bench`-style runners
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        Ok(Config {
            long,
            only,
            rounds: rounds.unwrap_or(if long { 31 } else { 11 }),
            bulk_rounds: rounds.unwrap_or(if long { 9 } else { 3 }),
            dash_rounds: rounds.unwrap_or(if long { 21 } else { 7 }),
            trips,
        })
    }

    /// Whether a workload runs: `--only insert` also runs the single-row update and delete.
    fn selects(&self, workload: &str) -> bool {
        self.wants(workload) || (matches!(workload, "update" | "delete") && self.wants("insert"))
    }

    fn wants(&self, workload: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|w| w == workload))
    }

    /// Operations per client in one sample of a light workload.
    fn light_ops(&self, clients: usize) -> usize {
        match (self.long, clients) {
            (false, 1) => 200,
            (false, _) => 60,
            (true, 1) => 500,
            (true, _) => 150,
        }
    }
}

struct Contender {
    name: &'static str,
    /// The name of its `trips <key> <n>` line: `<goal key>/<side>`.
    key: Option<&'static str>,
    op: Op,
}

impl Contender {
    fn keyed(mut self, key: &'static str) -> Contender {
        self.key = Some(key);
        self
    }
}

fn contender<F, Fut>(name: &'static str, f: F) -> Contender
where
    F: Fn(Call) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Res> + Send + 'static,
{
    Contender {
        name,
        key: None,
        op: Arc::new(move |call| Box::pin(f(call))),
    }
}

/// A goal: `scoped`'s median within `max` times `raw`'s.
struct Goal {
    /// The name of its machine-readable `goal <key> clients=<n> ratio=<r>` line.
    key: Option<&'static str>,
    what: &'static str,
    scoped: &'static str,
    raw: &'static str,
    max: f64,
}

struct Workload {
    name: &'static str,
    title: &'static str,
    contenders: Vec<Contender>,
    /// The contender the ratios are taken against.
    baseline: &'static str,
    goals: Vec<Goal>,
    prepare: Option<Prepare>,
    rounds: usize,
    ops: Box<dyn Fn(usize) -> usize>,
}

/// The medians of one workload at one client count.
struct Outcome {
    workload: &'static str,
    title: &'static str,
    clients: usize,
    medians: Vec<(&'static str, f64)>,
    /// The client side's CPU time per operation, medians in µs (all threads of this process).
    cpu: Vec<(&'static str, f64)>,
    /// The server's CPU time per operation, medians in µs.
    server: Vec<(&'static str, f64)>,
    baseline: &'static str,
}

impl Outcome {
    fn median(&self, name: &str) -> Option<f64> {
        self.medians.iter().find(|(n, _)| *n == name).map(|m| m.1)
    }
}

struct Verdict {
    key: Option<&'static str>,
    what: &'static str,
    clients: usize,
    ratio: f64,
    max: f64,
}

/// CPU time this process (every thread: the clients, the drivers' tasks, the runtime) has
/// used so far, in nanoseconds, from Linux's per-thread `schedstat`; `None` where that is not
/// readable. The server runs in processes of its own, so a difference of two readings is the
/// client side's CPU alone.
fn process_cpu_ns() -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread that ended between the listing and the read has nothing left to count.
        let Ok(stat) = std::fs::read_to_string(path) else {
            continue;
        };
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// CPU time used so far by the machine's PostgreSQL server processes (those named
/// `postgres`: the benchmark's throwaway servers, their backends and helpers), in nanoseconds.
/// A backend is one thread, so its `schedstat` is the whole process's. A backend that exits
/// during a sample takes its time with it; the pools keep theirs open.
fn server_cpu_ns() -> Option<u64> {
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc").ok()? {
        let path = entry.ok()?.path();
        let is_pid = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("schedstat")),
        ) else {
            continue;
        };
        if comm.trim_end() == "postgres" {
            total += stat
                .split_whitespace()
                .next()
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Some(total)
}

/// One sample's figures, per operation, in µs: wall time, the client side's CPU time and the
/// server's.
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: f64,
    cpu: f64,
    server: f64,
}

/// Runs one sample: `clients` tasks of `ops` operations each; microseconds per operation.
async fn sample(op: &Op, round: usize, clients: usize, ops: usize) -> Res<Sample> {
    let server_start = server_cpu_ns();
    let cpu_start = process_cpu_ns();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let op = Arc::clone(op);
        tasks.push(tokio::spawn(async move {
            for i in 0..ops {
                op(Call {
                    round,
                    client,
                    op: i,
                })
                .await?;
            }
            Ok::<_, BoxError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let n = (clients * ops) as f64;
    let wall = start.elapsed().as_secs_f64() * 1e6 / n;
    // Threads that ended during the sample take their time with them; the runtime's workers
    // live as long as the program, so that is at most a blocking thread's share.
    let per_op = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e3 / n,
        _ => f64::NAN,
    };
    let cpu = per_op(cpu_start, process_cpu_ns());
    let server = per_op(server_start, server_cpu_ns());
    Ok(Sample { wall, cpu, server })
}

/// The milliseconds of an `EXPLAIN ANALYZE` output line that starts with `prefix`
/// (`Planning Time:`, `Execution Time:`).
fn explain_ms(line: &str, prefix: &str) -> Option<f64> {
    line.trim()
        .strip_prefix(prefix)?
        .trim()
        .trim_end_matches(" ms")
        .parse()
        .ok()
}

/// The planning and the execution time, in ms, of the `EXPLAIN ANALYZE` output `rows`.
fn plan_times(rows: &[flakeguard_db::sea_orm::QueryResult]) -> Res<(f64, f64)> {
    let mut times = (0.0, 0.0);
    for row in rows {
        let line: String = row.try_get("", "QUERY PLAN")?;
        times.0 += explain_ms(&line, "Planning Time:").unwrap_or(0.0);
        times.1 += explain_ms(&line, "Execution Time:").unwrap_or(0.0);
    }
    Ok(times)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

async fn run_workload(w: &Workload, clients: usize) -> Res<Outcome> {
    let ops = (w.ops)(clients);
    let n = w.contenders.len();
    // Warm-up: prepared statements, pool connections, caches.
    for c in &w.contenders {
        if let Some(p) = &w.prepare {
            p().await?;
        }
        sample(&c.op, usize::MAX, clients, ops.min(20)).await?;
    }
    let mut times = vec![Vec::with_capacity(w.rounds); n];
    let mut cpu = vec![Vec::with_capacity(w.rounds); n];
    let mut server = vec![Vec::with_capacity(w.rounds); n];
    for round in 0..w.rounds {
        for k in 0..n {
            let i = (k + round) % n;
            if let Some(p) = &w.prepare {
                p().await?;
            }
            let s = sample(&w.contenders[i].op, round, clients, ops).await?;
            times[i].push(s.wall);
            cpu[i].push(s.cpu);
            server[i].push(s.server);
        }
    }
    Ok(Outcome {
        workload: w.name,
        title: w.title,
        clients,
        medians: w
            .contenders
            .iter()
            .zip(times)
            .map(|(c, t)| (c.name, median(t)))
            .collect(),
        cpu: w
            .contenders
            .iter()
            .zip(cpu)
            .map(|(c, t)| (c.name, median(t)))
            .collect(),
        server: w
            .contenders
            .iter()
            .zip(server)
            .map(|(c, t)| (c.name, median(t)))
            .collect(),
        baseline: w.baseline,
    })
}

fn print_outcome(o: &Outcome) {
    let base = o.median(o.baseline).unwrap_or(f64::NAN);
    println!("\n{} ({}), {} client(s)", o.title, o.workload, o.clients);
    for (((name, m), (_, cpu)), (_, server)) in o.medians.iter().zip(&o.cpu).zip(&o.server) {
        println!(
            "  {name:<44} {m:>12.1} us/op   {:>6.2}x   cpu: client {cpu:>8.1} server {server:>8.1} {}",
            m / base,
            if *name == o.baseline {
                "(baseline)"
            } else {
                ""
            }
        );
    }
}

/// A small deterministic generator, so that every contender reads the same rows.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn pick(call: Call, salt: u64, n: usize) -> usize {
    let seed = ((call.round as u64) << 40) ^ ((call.client as u64) << 20) ^ call.op as u64;
    (mix(seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)) % n as u64) as usize
}

fn test_id(org: &str, i: usize) -> String {
    format!("tc-{org}-{}", i + 1)
}

fn run_id(org: &str, i: usize) -> String {
    format!("run-{org}-{}", i + 1)
}

fn repo_id(org: &str) -> String {
    format!("repo-{org}")
}

async fn exec(db: &DatabaseConnection, sql: &str) -> Res {
    db.execute_unprepared(sql).await?;
    Ok(())
}

/// The read and write dataset: two organizations, each with a repository, 2,000 test cases
/// with flake scores and 100 workflow runs. Written as the superuser, server-side.
async fn seed_main(raw: &DatabaseConnection) -> Res {
    let orgs = format!("ARRAY['{ORG}', '{OTHER_ORG}']");
    exec(raw, "SELECT setseed(0.42)").await?;
    exec(
        raw,
        &format!(
            r#"INSERT INTO "Organization" (id, name, slug, "updatedAt")
               SELECT o, initcap(o), o, now() FROM unnest({orgs}) o"#
        ),
    )
    .await?;
    exec(
        raw,
        &format!(
            r#"INSERT INTO "FGRepository" (id, "orgId", owner, name, "installationId", "updatedAt")
               SELECT 'repo-' || o, o, o, 'web', 'inst-' || o, now() FROM unnest({orgs}) o"#
        ),
    )
    .await?;
    exec(
        raw,
        &format!(
            r#"INSERT INTO "FGTestCase" (id, "orgId", "repoId", suite, "className", name, file, "updatedAt")
               SELECT 'tc-' || o || '-' || g, o, 'repo-' || o,
                      CASE WHEN g % 3 = 0 THEN 'e2e' ELSE 'unit' END,
                      'Class' || (g % 50), 'test_' || g, 'src/f' || (g % 100) || '.ts', now()
               FROM unnest({orgs}) o, generate_series(1, {TESTS}) g"#
        ),
    )
    .await?;
    exec(
        raw,
        &format!(
            r#"INSERT INTO "FGFlakeScore" (id, "orgId", "testId", score, "windowN", "lastUpdatedAt")
               SELECT 'fs-' || o || '-' || g, o, 'tc-' || o || '-' || g, random(), 50, now()
               FROM unnest({orgs}) o, generate_series(1, {TESTS}) g"#
        ),
    )
    .await?;
    exec(
        raw,
        &format!(
            r#"INSERT INTO "FGWorkflowRun" (id, "orgId", "repoId", "runId", status, conclusion, "updatedAt", "createdAt")
               SELECT 'run-' || o || '-' || g, o, 'repo-' || o, g::text, 'completed', 'success', now(),
                      now() - (g || ' minutes')::interval
               FROM unnest({orgs}) o, generate_series(1, {RUNS}) g"#
        ),
    )
    .await?;
    exec(raw, "ANALYZE").await?;
    Ok(())
}

/// The dashboard dataset: 100 organizations, each with a repository, 100 test cases and 100
/// runs (one every three hours, over twelve days), and one occurrence of every test in every
/// run: 1,000,000 occurrences; and what the reports read besides (flake scores, clusters,
/// quarantines: `reports::seed`). Rows of the organizations are interleaved on disk, as
/// ingestion over time would leave them.
async fn seed_dashboard(raw: &DatabaseConnection) -> Res {
    let orgs = format!(
        "(SELECT 'org-' || lpad(n::text, 3, '0') AS o FROM generate_series(1, {DASH_ORGS}) n) orgs"
    );
    exec(raw, "SELECT setseed(0.17)").await?;
    exec(
        raw,
        &format!(
            r#"INSERT INTO "Organization" (id, name, slug, "updatedAt")
               SELECT o, 'Org ' || o, o, now() FROM {orgs}"#
        ),
    )
    .await?;
    exec(
        raw,
        &format!(
            r#"INSERT INTO "FGRepository" (id, "orgId", owner, name, "installationId", "updatedAt")
               SELECT 'repo-' || o, o, o, 'web', 'inst-' || o, now() FROM {orgs}"#
        ),
    )
    .await?;
    exec(
        raw,
        &format!(
            r#"INSERT INTO "FGTestCase" (id, "orgId", "repoId", suite, "className", name, "updatedAt")
               SELECT 'tc-' || o || '-' || g, o, 'repo-' || o, 'unit', 'Class' || (g % 10),
                      'test_' || g, now()
               FROM {orgs}, generate_series(1, {DASH_TESTS}) g"#
        ),
    )
    .await?;
    exec(
        raw,
        &format!(
            r#"INSERT INTO "FGWorkflowRun" (id, "orgId", "repoId", "runId", status, "updatedAt")
               SELECT 'run-' || o || '-' || g, o, 'repo-' || o, g::text, 'completed', now()
               FROM {orgs}, generate_series(1, {DASH_RUNS}) g"#
        ),
    )
    .await?;
    // Test g fails with probability (g mod 20) / 100; by run, then organization, then test.
    exec(
        raw,
        &format!(
            r#"INSERT INTO "FGOccurrence" (id, "orgId", "testId", "runId", status, "durationMs",
                                           "failureMsgSignature", attempt, "createdAt")
               SELECT 'occ-' || orgs.o || '-' || r || '-' || t, orgs.o, 'tc-' || orgs.o || '-' || t,
                      'run-' || orgs.o || '-' || r, f.status, (random() * 2000)::int,
                      CASE WHEN f.status = 'failed' THEN 'AssertionError <n>' END, 1,
                      now() - ((({DASH_RUNS} - r) * 3) || ' hours')::interval
               FROM generate_series(1, {DASH_RUNS}) r, {orgs}, generate_series(1, {DASH_TESTS}) t,
                    LATERAL (SELECT CASE WHEN random() < (t % 20) / 100.0 THEN 'failed'
                                         ELSE 'passed' END AS status) f
               ORDER BY r, orgs.o, t"#
        ),
    )
    .await?;
    reports::seed(raw, &orgs, DASH_TESTS).await?;
    exec(raw, "VACUUM ANALYZE").await?;
    Ok(())
}

/// A row of the bulk and single-insert workloads: test `t` in run `r` of [`ORG`].
fn occurrence(id: String, t: usize, r: usize, with_org: bool) -> fg_occurrence::ActiveModel {
    let failed = t.is_multiple_of(7);
    fg_occurrence::ActiveModel {
        id: Set(id),
        org_id: if with_org {
            Set(ORG.to_owned())
        } else {
            Default::default()
        },
        test_id: Set(test_id(ORG, t)),
        run_id: Set(run_id(ORG, r)),
        status: Set(if failed { "failed" } else { "passed" }.to_owned()),
        duration_ms: Set(Some((t * 37 % 2000) as i32)),
        failure_msg_signature: Set(failed.then(|| "AssertionError <n>".to_owned())),
        attempt: Set(1),
        ..Default::default()
    }
}

/// The rows client `client` inserts in one bulk sample: tests 0..1000 of ten runs of its own.
fn bulk_rows(client: usize, with_org: bool) -> Vec<fg_occurrence::ActiveModel> {
    (0..BULK_ROWS)
        .map(|k| {
            let (t, r) = (k % 1000, client * 10 + k / 1000);
            occurrence(format!("b{client}-{k}"), t, r, with_org)
        })
        .collect()
}

/// The same rows as COPY text: id, orgId, testId, runId, status, durationMs,
/// failureMsgSignature, attempt.
fn bulk_copy_text(client: usize) -> String {
    let mut out = String::with_capacity(BULK_ROWS * 80);
    for k in 0..BULK_ROWS {
        let (t, r) = (k % 1000, client * 10 + k / 1000);
        let failed = t.is_multiple_of(7);
        let _ = writeln!(
            out,
            "b{client}-{k}\t{ORG}\t{}\t{}\t{}\t{}\t{}\t1",
            test_id(ORG, t),
            run_id(ORG, r),
            if failed { "failed" } else { "passed" },
            t * 37 % 2000,
            if failed { "AssertionError <n>" } else { "\\N" },
        );
    }
    out
}

/// The point read as the scope sends it: the id and the tenant predicate.
const SCOPED_POINT_SQL: &str =
    r#"SELECT * FROM "FGTestCase" WHERE "FGTestCase"."id" = $1 AND "FGTestCase"."orgId" = $2"#;

const COPY_OCCURRENCES: &str = r#"COPY "FGOccurrence" ("id", "orgId", "testId", "runId", "status", "durationMs", "failureMsgSignature", "attempt") FROM STDIN"#;

const DASHBOARD_SQL: &str = r#"SELECT o."testId", t.name,
       count(*) AS runs,
       count(*) FILTER (WHERE o.status = 'failed') AS failures,
       (count(*) FILTER (WHERE o.status = 'failed'))::float8 / count(*) AS failure_rate
  FROM "FGOccurrence" o
  JOIN "FGTestCase" t ON t.id = o."testId"
 WHERE o."orgId" = $1 AND t."orgId" = $1
 GROUP BY o."testId", t.name
 ORDER BY failure_rate DESC, o."testId""#;

/// The same query without its own tenant predicate: only row-level security restricts it.
const DASHBOARD_RLS_ONLY_SQL: &str = r#"SELECT o."testId", t.name,
       count(*) AS runs,
       count(*) FILTER (WHERE o.status = 'failed') AS failures,
       (count(*) FILTER (WHERE o.status = 'failed'))::float8 / count(*) AS failure_rate
  FROM "FGOccurrence" o
  JOIN "FGTestCase" t ON t.id = o."testId"
 GROUP BY o."testId", t.name
 ORDER BY failure_rate DESC, o."testId""#;

fn dash_org(i: usize) -> String {
    format!("org-{:03}", i % DASH_ORGS + 1)
}

fn dashboard_stmt(sql: &str, org: &str) -> Statement {
    if sql.contains("$1") {
        Statement::from_sql_and_values(DbBackend::Postgres, sql, [Value::from(org)])
    } else {
        Statement::from_string(DbBackend::Postgres, sql)
    }
}

fn scope(app: &DatabaseConnection, org: &str) -> Res<TenantScope> {
    Ok(TenantScope::new(app.clone(), OrgId::new(org)?))
}

/// [`scope`] with pipelining off: every transaction on sqlx, its BEGIN a round trip of its own.
fn scope_sqlx(app: &DatabaseConnection, org: &str) -> Res<TenantScope> {
    Ok(flakeguard_db::Db::new(app.clone())
        .without_pipelining()
        .scope(OrgId::new(org)?))
}

/// Connections of tokio-postgres, one per client, with the point read prepared on each: the
/// pipelining floor.
type Pipelined = Arc<Vec<(tokio_postgres::Client, tokio_postgres::Statement)>>;

async fn pipelined(url: &str) -> Res<Pipelined> {
    let mut out = Vec::new();
    for _ in 0..8 {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let stmt = client.prepare(SCOPED_POINT_SQL).await?;
        out.push((client, stmt));
    }
    Ok(Arc::new(out))
}

fn read_workloads(
    cfg: &Config,
    app: &DatabaseConnection,
    raw: &DatabaseConnection,
    raw_crate: &DatabaseConnection,
    pipelined: &Pipelined,
) -> Res<Vec<Workload>> {
    let acme = scope(app, ORG)?;
    let pool = raw.get_postgres_connection_pool().clone();
    let light = |cfg: &Config| {
        let (a, b) = (cfg.light_ops(1), cfg.light_ops(8));
        Box::new(move |c: usize| if c == 1 { a } else { b }) as Box<dyn Fn(usize) -> usize>
    };
    let mut out = Vec::new();

    // 1. Point read by id.
    let s = acme.clone();
    let s_checked = acme.clone();
    let p = pool.clone();
    let ap = app.get_postgres_connection_pool().clone();
    let raw_find = |r: DatabaseConnection| {
        move |call: Call| {
            let r = r.clone();
            async move {
                let id = test_id(ORG, pick(call, 1, TESTS));
                let found = fg_test_case::Entity::find_by_id(id).one(&r).await?;
                found.ok_or("missing row")?;
                Ok(())
            }
        }
    };
    let scoped_find = |s: TenantScope| {
        move |call: Call| {
            let s = s.clone();
            async move {
                let id = test_id(ORG, pick(call, 1, TESTS));
                let found = s.find_by_id::<fg_test_case::Entity, _>(id).await?;
                found.ok_or("missing row")?;
                Ok(())
            }
        }
    };
    out.push(Workload {
        name: "point",
        title: "point read of one FGTestCase by id",
        contenders: vec![
            contender(SCOPED_POINT, scoped_find(s)).keyed("point-read/scoped"),
            contender(SCOPED_POINT_SQLX, scoped_find(scope_sqlx(app, ORG)?))
                .keyed("point-read/scoped-sqlx"),
            // The same read built from a caller's filter, which the Rust lock verifies before it
            // is sent (src/lock.rs; a cache hit after the first call): what the check costs.
            contender(
                "TenantScope::find().filter(id).one() (checked)",
                move |call| {
                    let s = s_checked.clone();
                    async move {
                        let id = test_id(ORG, pick(call, 1, TESTS));
                        let found = s
                            .find::<fg_test_case::Entity>()
                            .filter(fg_test_case::Column::Id.eq(id))
                            .one()
                            .await?;
                        found.ok_or("missing row")?;
                        Ok(())
                    }
                },
            ),
            contender(RAW_POINT, raw_find(raw.clone())).keyed("point-read/raw"),
            contender(RAW_POINT_CRATE, raw_find(raw_crate.clone()))
                .keyed("point-read/raw-crate-pool"),
            contender("plain sqlx query (superuser)", move |call| {
                let p = p.clone();
                async move {
                    let id = test_id(ORG, pick(call, 1, TESTS));
                    let found = sqlx::query(r#"SELECT * FROM "FGTestCase" WHERE "id" = $1"#)
                        .bind(id)
                        .fetch_optional(&p)
                        .await?;
                    found.ok_or("missing row")?;
                    Ok(())
                }
            }),
            // The scope's statements at the driver, without the crate's Rust work: the floor.
            contender(
                "floor: sqlx, app role, BEGIN+SET LOCAL, SELECT",
                move |call| {
                    let p = ap.clone();
                    async move {
                        let id = test_id(ORG, pick(call, 1, TESTS));
                        let mut tx = p
                            .begin_with(sqlx::AssertSqlSafe(flakeguard_db::tenant_begin_sql(
                                &OrgId::new(ORG)?,
                            )))
                            .await?;
                        let found = sqlx::query(SCOPED_POINT_SQL)
                            .bind(id)
                            .bind(ORG)
                            .fetch_optional(&mut *tx)
                            .await?;
                        drop(tx); // a read: the rollback is queued
                        found.ok_or("missing row")?;
                        Ok(())
                    }
                },
            ),
            // One simple-protocol query carrying BEGIN with the tenant, the SELECT with its values
            // as literals and the ROLLBACK: one round trip on sqlx alone.
            contender(SIMPLE_POINT, {
                let p = app.get_postgres_connection_pool().clone();
                move |call| {
                    let p = p.clone();
                    async move {
                        use futures_util::TryStreamExt;
                        let id = test_id(ORG, pick(call, 1, TESTS));
                        let sql = format!(
                            "BEGIN; SET LOCAL app.current_tenant_id = 'acme'; SELECT * FROM \"FGTestCase\" WHERE \"FGTestCase\".\"id\" = '{id}' AND \"FGTestCase\".\"orgId\" = 'acme'; ROLLBACK"
                        );
                        let mut conn = p.acquire().await?;
                        let rows: Vec<sqlx::postgres::PgRow> = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                            .fetch(&mut *conn)
                            .try_collect()
                            .await?;
                        let row = rows.into_iter().next().ok_or("missing row")?;
                        let _ = sea_orm::QueryResult::from(row);
                        Ok(())
                    }
                }
            })
            .keyed("point-read/floor-simple"),
            // What a pipelining driver allows: BEGIN with the tenant, the SELECT and the ROLLBACK
            // sent together, one round trip (tokio-postgres pipelines requests polled together).
            contender(PIPELINED_POINT, {
                let pipelined = Arc::clone(pipelined);
                move |call| {
                    let c = Arc::clone(&pipelined);
                    async move {
                        let (client, stmt) = &c[call.client % c.len()];
                        let id = test_id(ORG, pick(call, 1, TESTS));
                        let org: &str = ORG;
                        let (begin, found, end) = futures_util::future::join3(
                            client.simple_query("BEGIN; SET LOCAL app.current_tenant_id = 'acme'"),
                            client.query_opt(stmt, &[&id, &org]),
                            client.simple_query("ROLLBACK"),
                        )
                        .await;
                        begin?;
                        end?;
                        found?.ok_or("missing row")?;
                        Ok(())
                    }
                }
            })
            .keyed("point-read/floor-pipelined"),
        ],
        baseline: RAW_POINT,
        goals: vec![
            Goal {
                key: Some("point-read"),
                what: "scoped point read within 1.15x of raw SeaORM",
                scoped: SCOPED_POINT,
                raw: RAW_POINT,
                max: 1.15,
            },
            Goal {
                key: None,
                what: "scoped point read within 1.15x of raw SeaORM on the crate's pool options",
                scoped: SCOPED_POINT,
                raw: RAW_POINT_CRATE,
                max: 1.15,
            },
            Goal {
                key: None,
                what: "what pipelining allows: the pipelined floor within 1.15x of raw SeaORM",
                scoped: PIPELINED_POINT,
                raw: RAW_POINT,
                max: 1.15,
            },
            Goal {
                key: None,
                what: "the Rust lock's check costs under 2% on a point read",
                scoped: "TenantScope::find().filter(id).one() (checked)",
                raw: SCOPED_POINT,
                max: 1.02,
            },
        ],
        prepare: None,
        rounds: cfg.rounds,
        ops: light(cfg),
    });

    // 1b. Five queries in one scoped transaction, against the same five raw queries.
    let s = acme.clone();
    let r = raw.clone();
    let raw_tx = |r: DatabaseConnection| {
        move |call: Call| {
            let r = r.clone();
            async move {
                let tx = r.begin().await?;
                five_raw(&tx, pick(call, 2, TESTS)).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
    let scoped_tx = |s: TenantScope| {
        move |call: Call| {
            let s = s.clone();
            async move {
                let t = pick(call, 2, TESTS);
                s.transaction(|tx| {
                    Box::pin(async move {
                        five_scoped(tx, t).await?;
                        Ok::<_, BoxError>(())
                    })
                })
                .await
            }
        }
    };
    out.push(Workload {
        name: "unit",
        title: "five queries in one transaction (test, its score, repository, runs, count)",
        contenders: vec![
            contender(SCOPED_FIVE, scoped_tx(s)).keyed("five-in-transaction/scoped"),
            contender(SCOPED_FIVE_SQLX, scoped_tx(scope_sqlx(app, ORG)?))
                .keyed("five-in-transaction/scoped-sqlx"),
            // The same five in a read-only transaction: one snapshot, no COMMIT to wait for.
            contender(SCOPED_FIVE_READ_ONLY, {
                let s = acme.clone();
                move |call| {
                    let s = s.clone();
                    async move {
                        let t = pick(call, 2, TESTS);
                        s.read_only(|tx| {
                            Box::pin(async move {
                                five_scoped(tx, t).await?;
                                Ok::<_, BoxError>(())
                            })
                        })
                        .await
                    }
                }
            }),
            contender("raw SeaORM, five queries on the pool", move |call| {
                let r = r.clone();
                async move { five_raw(&r, pick(call, 2, TESTS)).await }
            }),
            contender(RAW_FIVE, raw_tx(raw.clone())).keyed("five-in-transaction/raw"),
            contender(RAW_FIVE_CRATE, raw_tx(raw_crate.clone()))
                .keyed("five-in-transaction/raw-crate-pool"),
        ],
        baseline: RAW_FIVE,
        goals: vec![
            Goal {
                key: Some("five-in-transaction"),
                what: "five scoped queries in one transaction within 1.1x of the same five raw",
                scoped: SCOPED_FIVE,
                raw: RAW_FIVE,
                max: 1.1,
            },
            Goal {
                key: None,
                what: "the same, against raw SeaORM on the crate's pool options",
                scoped: SCOPED_FIVE,
                raw: RAW_FIVE_CRATE,
                max: 1.1,
            },
            Goal {
                key: None,
                what: "the five in TenantScope::read_only within 1.1x of the five raw",
                scoped: SCOPED_FIVE_READ_ONLY,
                raw: RAW_FIVE,
                max: 1.1,
            },
        ],
        prepare: None,
        rounds: cfg.rounds,
        ops: light(cfg),
    });

    // 2. A filtered list.
    let s = acme.clone();
    let r = raw.clone();
    out.push(Workload {
        name: "list",
        title: "one repository's test cases with flake score > 0.5, top 50 by score",
        contenders: vec![
            contender("TenantScope::find + inner_join + filter", move |_| {
                let s = s.clone();
                async move {
                    let rows = s
                        .find::<fg_test_case::Entity>()
                        .inner_join::<fg_flake_score::Entity>()
                        .filter(fg_test_case::Column::RepoId.eq(repo_id(ORG)))
                        .filter(fg_flake_score::Column::Score.gt(THRESHOLD))
                        .order_by_desc(fg_flake_score::Column::Score)
                        .limit(50)
                        .all()
                        .await?;
                    if rows.len() != 50 {
                        return Err(format!("{} rows, not 50", rows.len()).into());
                    }
                    Ok(())
                }
            }),
            contender("raw SeaORM Entity::find + join + filter", move |_| {
                let r = r.clone();
                async move {
                    let rows = fg_test_case::Entity::find()
                        .inner_join(fg_flake_score::Entity)
                        .filter(fg_test_case::Column::RepoId.eq(repo_id(ORG)))
                        .filter(fg_flake_score::Column::Score.gt(THRESHOLD))
                        .order_by_desc(fg_flake_score::Column::Score)
                        .limit(50)
                        .all(&r)
                        .await?;
                    if rows.len() != 50 {
                        return Err(format!("{} rows, not 50", rows.len()).into());
                    }
                    Ok(())
                }
            }),
        ],
        baseline: "raw SeaORM Entity::find + join + filter",
        goals: Vec::new(),
        prepare: None,
        rounds: cfg.rounds,
        ops: light(cfg),
    });
    Ok(out)
}

const SCOPED_POINT: &str = "TenantScope::find_by_id (app role, RLS)";
const SCOPED_POINT_SQLX: &str = "TenantScope::find_by_id, pipelining off (sqlx)";
const PIPELINED_POINT: &str = "floor: tokio-postgres, BEGIN+SET, SELECT, ROLLBACK in 1 trip";
const SIMPLE_POINT: &str = "floor: sqlx, one simple query, BEGIN+SET, SELECT, ROLLBACK";
const RAW_POINT: &str = "raw SeaORM Entity::find_by_id (superuser)";
const RAW_POINT_CRATE: &str = "raw SeaORM find_by_id, crate's pool options";
const SCOPED_FIVE: &str = "TenantScope::transaction, five queries";
const SCOPED_FIVE_SQLX: &str = "TenantScope::transaction, five, pipelining off (sqlx)";
const SCOPED_FIVE_READ_ONLY: &str = "TenantScope::read_only, five queries";
const RAW_FIVE: &str = "raw SeaORM, five queries in a transaction";
const RAW_FIVE_CRATE: &str = "raw SeaORM, five in a transaction, crate's pool";

/// The five queries of the `unit` workload, through a scope.
async fn five_scoped(tx: &TenantScope, t: usize) -> Res {
    let case = tx
        .find_by_id::<fg_test_case::Entity, _>(test_id(ORG, t))
        .await?
        .ok_or("missing test")?;
    tx.find::<fg_flake_score::Entity>()
        .filter(fg_flake_score::Column::TestId.eq(&case.id))
        .one()
        .await?
        .ok_or("missing score")?;
    tx.find_by_id::<fg_repository::Entity, _>(case.repo_id.clone())
        .await?
        .ok_or("missing repository")?;
    let runs = tx
        .find::<fg_workflow_run::Entity>()
        .filter(fg_workflow_run::Column::RepoId.eq(&case.repo_id))
        .order_by_desc(fg_workflow_run::Column::CreatedAt)
        .limit(5)
        .all()
        .await?;
    if runs.len() != 5 {
        return Err("missing runs".into());
    }
    tx.find::<fg_test_case::Entity>()
        .filter(fg_test_case::Column::RepoId.eq(&case.repo_id))
        .filter(fg_test_case::Column::File.eq(case.file.clone()))
        .count()
        .await?;
    Ok(())
}

/// The same five queries, raw.
async fn five_raw<C: ConnectionTrait>(db: &C, t: usize) -> Res {
    let case = fg_test_case::Entity::find_by_id(test_id(ORG, t))
        .one(db)
        .await?
        .ok_or("missing test")?;
    fg_flake_score::Entity::find()
        .filter(fg_flake_score::Column::TestId.eq(&case.id))
        .one(db)
        .await?
        .ok_or("missing score")?;
    fg_repository::Entity::find_by_id(case.repo_id.clone())
        .one(db)
        .await?
        .ok_or("missing repository")?;
    let runs = fg_workflow_run::Entity::find()
        .filter(fg_workflow_run::Column::RepoId.eq(&case.repo_id))
        .order_by_desc(fg_workflow_run::Column::CreatedAt)
        .limit(5)
        .all(db)
        .await?;
    if runs.len() != 5 {
        return Err("missing runs".into());
    }
    fg_test_case::Entity::find()
        .filter(fg_test_case::Column::RepoId.eq(&case.repo_id))
        .filter(fg_test_case::Column::File.eq(case.file.clone()))
        .count(db)
        .await?;
    Ok(())
}

const SCOPED_INSERT: &str = "TenantScope::insert";
const SCOPED_INSERT_SQLX: &str = "TenantScope::insert, pipelining off (sqlx)";
const RAW_INSERT: &str = "raw SeaORM Entity::insert (returning)";
const RAW_INSERT_CRATE: &str = "raw SeaORM insert, crate's pool options";
const SCOPED_UPDATE: &str = "TenantScope::update";
const RAW_UPDATE: &str = "raw SeaORM Entity::update (returning)";
const RAW_UPDATE_CRATE: &str = "raw SeaORM update, crate's pool options";
const SCOPED_DELETE: &str = "TenantScope::delete";
const RAW_DELETE: &str = "raw SeaORM Entity::delete_by_id";
const RAW_DELETE_CRATE: &str = "raw SeaORM delete_by_id, crate's pool options";

/// The raw single-row insert into a database without FGOccurrence's composite tenant keys.
const KEYLESS_INSERT: &str = "raw SeaORM Entity::insert, no composite tenant keys";

fn write_workloads(
    cfg: &Config,
    app: &DatabaseConnection,
    raw: &DatabaseConnection,
    raw_crate: &DatabaseConnection,
    admin: &DatabaseConnection,
    keyless: Option<&DatabaseConnection>,
) -> Res<Vec<Workload>> {
    let acme = scope(app, ORG)?;
    let pool = raw.get_postgres_connection_pool().clone();
    let truncate: Prepare = {
        let r = admin.clone();
        let k = keyless.cloned();
        Arc::new(move || {
            let (r, k) = (r.clone(), k.clone());
            Box::pin(async move {
                exec(&r, r#"TRUNCATE "FGOccurrence""#).await?;
                if let Some(k) = k {
                    exec(&k, r#"TRUNCATE "FGOccurrence""#).await?;
                }
                Ok(())
            })
        })
    };
    let light = |cfg: &Config| {
        let (a, b) = (cfg.light_ops(1), cfg.light_ops(8));
        Box::new(move |c: usize| if c == 1 { a } else { b }) as Box<dyn Fn(usize) -> usize>
    };
    let mut out = Vec::new();

    // 3a. Insert one row. The table is emptied before each sample, and client c inserts test
    // `op mod 1000` of run `5c + op / 1000`: distinct pairs within a sample.
    let single = |call: Call, with_org: bool| {
        let (t, r) = (call.op % 1000, call.client * 5 + call.op / 1000);
        occurrence(format!("s{}-{}", call.client, call.op), t, r, with_org)
    };
    let s = acme.clone();
    let raw_insert = |r: DatabaseConnection| {
        move |call: Call| {
            let r = r.clone();
            async move {
                fg_occurrence::Entity::insert(single(call, true))
                    .exec_with_returning(&r)
                    .await?;
                Ok(())
            }
        }
    };
    let scoped_insert = |s: TenantScope| {
        move |call: Call| {
            let s = s.clone();
            async move {
                s.insert(single(call, false)).await?;
                Ok(())
            }
        }
    };
    out.push(Workload {
        name: "insert",
        title: "insert one FGOccurrence row (two foreign keys into tenant data)",
        contenders: vec![
            contender(SCOPED_INSERT, scoped_insert(s)).keyed("insert-one/scoped"),
            contender(SCOPED_INSERT_SQLX, scoped_insert(scope_sqlx(app, ORG)?))
                .keyed("insert-one/scoped-sqlx"),
            contender(RAW_INSERT, raw_insert(raw.clone())).keyed("insert-one/raw"),
            contender(RAW_INSERT_CRATE, raw_insert(raw_crate.clone()))
                .keyed("insert-one/raw-crate-pool"),
        ]
        .into_iter()
        .chain(keyless.cloned().map(|k| {
            // The same insert into a copy of the database whose FGOccurrence lacks the three
            // composite tenant keys of migration step 8: what those keys cost per row.
            contender(KEYLESS_INSERT, raw_insert(k))
        }))
        .collect(),
        baseline: RAW_INSERT,
        goals: vec![
            Goal {
                key: Some("insert-one"),
                what: "scoped single insert within 1.5x of raw SeaORM",
                scoped: SCOPED_INSERT,
                raw: RAW_INSERT,
                max: 1.5,
            },
            Goal {
                key: None,
                what: "scoped single insert within 1.5x of raw SeaORM on the crate's pool options",
                scoped: SCOPED_INSERT,
                raw: RAW_INSERT_CRATE,
                max: 1.5,
            },
        ],
        prepare: Some(Arc::clone(&truncate)),
        rounds: cfg.rounds,
        ops: light(cfg),
    });

    // 3b. Update one row: a test case's owning team, by id.
    let team = |call: Call| {
        let id = test_id(ORG, pick(call, 3, TESTS));
        fg_test_case::ActiveModel {
            id: Set(id),
            owner_team: Set(Some(format!("team-{}", call.op % 7))),
            ..Default::default()
        }
    };
    let s = acme.clone();
    let raw_update = |r: DatabaseConnection| {
        move |call: Call| {
            let r = r.clone();
            async move {
                let mut row = team(call);
                row.updated_at = Set(chrono::Utc::now());
                fg_test_case::Entity::update(row).exec(&r).await?;
                Ok(())
            }
        }
    };
    out.push(Workload {
        name: "update",
        title: "update one FGTestCase row by id",
        contenders: vec![
            contender(SCOPED_UPDATE, move |call| {
                let s = s.clone();
                async move {
                    s.update(team(call)).await?;
                    Ok(())
                }
            })
            .keyed("update-one/scoped"),
            contender(RAW_UPDATE, raw_update(raw.clone())).keyed("update-one/raw"),
            contender(RAW_UPDATE_CRATE, raw_update(raw_crate.clone()))
                .keyed("update-one/raw-crate-pool"),
        ],
        baseline: RAW_UPDATE,
        goals: vec![
            Goal {
                key: Some("update-one"),
                what: "scoped single update within 1.5x of raw SeaORM",
                scoped: SCOPED_UPDATE,
                raw: RAW_UPDATE,
                max: 1.5,
            },
            Goal {
                key: None,
                what: "scoped single update within 1.5x of raw SeaORM on the crate's pool options",
                scoped: SCOPED_UPDATE,
                raw: RAW_UPDATE_CRATE,
                max: 1.5,
            },
        ],
        prepare: None,
        rounds: cfg.rounds,
        ops: light(cfg),
    });

    // 3c. Delete one row by id. Before each sample the table is refilled with the rows the
    // sample deletes: `d<client>-<op>` for every client and operation a sample can have.
    let refill: Prepare = {
        let r = admin.clone();
        let per_client = cfg.light_ops(1).max(cfg.light_ops(8));
        Arc::new(move || {
            let r = r.clone();
            Box::pin(async move {
                exec(&r, r#"TRUNCATE "FGOccurrence""#).await?;
                exec(
                    &r,
                    &format!(
                        r#"INSERT INTO "FGOccurrence" (id, "orgId", "testId", "runId", status, attempt)
                           SELECT 'd' || c || '-' || i, '{ORG}', 'tc-{ORG}-' || (i % {TESTS} + 1),
                                  'run-{ORG}-' || (c * 10 + i / {TESTS} + 1), 'passed', 1
                           FROM generate_series(0, 7) c, generate_series(0, {per_client} - 1) i"#
                    ),
                )
                .await
            })
        })
    };
    let doomed = |call: Call| format!("d{}-{}", call.client, call.op);
    let s = acme.clone();
    let raw_delete = |r: DatabaseConnection| {
        move |call: Call| {
            let r = r.clone();
            async move {
                let gone = fg_occurrence::Entity::delete_by_id(doomed(call))
                    .exec(&r)
                    .await?;
                if gone.rows_affected != 1 {
                    return Err("nothing deleted".into());
                }
                Ok(())
            }
        }
    };
    out.push(Workload {
        name: "delete",
        title: "delete one FGOccurrence row by id",
        contenders: vec![
            contender(SCOPED_DELETE, move |call| {
                let s = s.clone();
                async move {
                    s.delete::<fg_occurrence::Entity, _>(doomed(call)).await?;
                    Ok(())
                }
            })
            .keyed("delete-one/scoped"),
            contender(RAW_DELETE, raw_delete(raw.clone())).keyed("delete-one/raw"),
            contender(RAW_DELETE_CRATE, raw_delete(raw_crate.clone()))
                .keyed("delete-one/raw-crate-pool"),
        ],
        baseline: RAW_DELETE,
        goals: vec![
            Goal {
                key: Some("delete-one"),
                what: "scoped single delete within 1.5x of raw SeaORM",
                scoped: SCOPED_DELETE,
                raw: RAW_DELETE,
                max: 1.5,
            },
            Goal {
                key: None,
                what: "scoped single delete within 1.5x of raw SeaORM on the crate's pool options",
                scoped: SCOPED_DELETE,
                raw: RAW_DELETE_CRATE,
                max: 1.5,
            },
        ],
        prepare: Some(refill),
        rounds: cfg.rounds,
        ops: light(cfg),
    });

    // 3d. Insert 10,000 rows in one transaction; with 8 clients, each inserts its own 10,000.
    let s = acme.clone();
    let r = raw.clone();
    let raw_copy = |p: sqlx::PgPool| {
        move |call: Call| {
            let p = p.clone();
            async move {
                let text = bulk_copy_text(call.client);
                let mut copy = p.copy_in_raw(COPY_OCCURRENCES).await?;
                copy.send(text.as_bytes()).await?;
                let n = copy.finish().await?;
                check_count(n)
            }
        }
    };
    let mut contenders = vec![
        contender("TenantScope::insert_many", move |call| {
            let s = s.clone();
            async move {
                let n = s.insert_many(bulk_rows(call.client, false)).await?;
                check_count(n)
            }
        }),
        contender("raw SeaORM insert_many, one transaction", move |call| {
            let r = r.clone();
            async move {
                let rows = bulk_rows(call.client, true);
                let tx = r.begin().await?;
                let mut n = 0;
                for chunk in rows.chunks(65_535 / 8) {
                    n += fg_occurrence::Entity::insert_many(chunk.to_vec())
                        .exec_without_returning(&tx)
                        .await?;
                }
                tx.commit().await?;
                check_count(n)
            }
        }),
        contender(RAW_COPY, raw_copy(pool.clone())).keyed("bulk-copy/raw"),
        contender(
            RAW_COPY_CRATE,
            raw_copy(raw_crate.get_postgres_connection_pool().clone()),
        )
        .keyed("bulk-copy/raw-crate-pool"),
    ];
    let ap = app.get_postgres_connection_pool().clone();
    // The scoped COPY path's floor: its statements at the driver, without the crate's Rust work
    // and foreign-key pre-check.
    contenders.push(contender(
        "floor: sqlx, app role, COPY to TEMP + INSERT SELECT",
        move |call| {
            let p = ap.clone();
            async move {
                let text = bulk_copy_text(call.client);
                let mut tx = p
                    .begin_with(sqlx::AssertSqlSafe(flakeguard_db::tenant_begin_sql(
                        &OrgId::new(ORG)?,
                    )))
                    .await?;
                sqlx::raw_sql(
                    r#"CREATE TEMP TABLE _stage (LIKE "FGOccurrence" INCLUDING DEFAULTS) ON COMMIT DROP"#,
                )
                .execute(&mut *tx)
                .await?;
                let mut copy = tx
                    .copy_in_raw(&COPY_OCCURRENCES.replace("\"FGOccurrence\"", "_stage"))
                    .await?;
                copy.send(text.as_bytes()).await?;
                copy.finish().await?;
                let n = sqlx::query(r#"INSERT INTO "FGOccurrence" SELECT * FROM _stage"#)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                check_count(n)
            }
        },
    ));
    let s = acme.clone();
    contenders.push(
        contender(SCOPED_COPY, move |call| {
            let s = s.clone();
            async move {
                let n = s.insert_many_copy(bulk_rows(call.client, false)).await?;
                check_count(n)
            }
        })
        .keyed("bulk-copy/scoped"),
    );
    out.push(Workload {
        name: "bulk",
        title: "insert 10,000 FGOccurrence rows in one transaction",
        contenders,
        baseline: "raw SeaORM insert_many, one transaction",
        goals: vec![
            Goal {
                key: None,
                what: "scoped insert_many within 1.05x of raw insert_many",
                scoped: "TenantScope::insert_many",
                raw: "raw SeaORM insert_many, one transaction",
                max: 1.05,
            },
            Goal {
                key: Some("bulk-copy"),
                what: "scoped COPY within 1.05x of raw COPY",
                scoped: SCOPED_COPY,
                raw: RAW_COPY,
                max: 1.05,
            },
            Goal {
                key: None,
                what: "scoped COPY within 1.05x of raw COPY on the crate's pool options",
                scoped: SCOPED_COPY,
                raw: RAW_COPY_CRATE,
                max: 1.05,
            },
            Goal {
                key: None,
                what: "scoped COPY within 1.1x of raw insert_many",
                scoped: SCOPED_COPY,
                raw: "raw SeaORM insert_many, one transaction",
                max: 1.1,
            },
        ],
        prepare: Some(truncate),
        rounds: cfg.bulk_rounds,
        ops: Box::new(|_| 1),
    });
    Ok(out)
}

const SCOPED_COPY: &str = "TenantScope::insert_many_copy";
const RAW_COPY: &str = "raw COPY (sqlx copy_in_raw)";
const RAW_COPY_CRATE: &str = "raw COPY, crate's pool options";

fn check_count(n: u64) -> Res {
    if n as usize == BULK_ROWS {
        Ok(())
    } else {
        Err(format!("inserted {n} rows, not {BULK_ROWS}").into())
    }
}

fn dashboard_workload(
    cfg: &Config,
    app: &DatabaseConnection,
    raw: &DatabaseConnection,
) -> Workload {
    let r = raw.clone();
    let r2 = raw.clone();
    let a = app.clone();
    let a2 = app.clone();
    Workload {
        name: "dashboard",
        title: "per-test failure rate of one organization, 1,000,000 occurrences, 100 organizations",
        contenders: vec![
            contender("RLS: TenantScope::query_raw, same SQL", move |call| {
                let a = a.clone();
                async move {
                    let org = dash_org(call.client * 7 + call.op);
                    let s = scope(&a, &org)?;
                    let rows = s.query_raw(dashboard_stmt(DASHBOARD_SQL, &org)).await?;
                    check_dash(rows.len())
                }
            }),
            contender("no RLS: superuser, same SQL", move |call| {
                let r = r.clone();
                async move {
                    let org = dash_org(call.client * 7 + call.op);
                    let rows = r.query_all_raw(dashboard_stmt(DASHBOARD_SQL, &org)).await?;
                    check_dash(rows.len())
                }
            }),
            contender(
                "no RLS: superuser, same SQL, in a transaction",
                move |call| {
                    let r = r2.clone();
                    async move {
                        let org = dash_org(call.client * 7 + call.op);
                        let tx = r.begin().await?;
                        let rows = tx
                            .query_all_raw(dashboard_stmt(DASHBOARD_SQL, &org))
                            .await?;
                        tx.commit().await?;
                        check_dash(rows.len())
                    }
                },
            ),
            contender(
                "RLS only: query_raw without its own orgId filter",
                move |call| {
                    let a = a2.clone();
                    async move {
                        let org = dash_org(call.client * 7 + call.op);
                        let s = scope(&a, &org)?;
                        let rows = s
                            .query_raw(dashboard_stmt(DASHBOARD_RLS_ONLY_SQL, &org))
                            .await?;
                        check_dash(rows.len())
                    }
                },
            ),
        ],
        baseline: "no RLS: superuser, same SQL",
        goals: vec![Goal {
            key: Some("dashboard"),
            what: "dashboard query under RLS within 1.1x of the same query without",
            scoped: "RLS: TenantScope::query_raw, same SQL",
            raw: "no RLS: superuser, same SQL",
            max: 1.1,
        }],
        prepare: None,
        rounds: cfg.dash_rounds,
        ops: {
            let long = cfg.long;
            Box::new(move |c| match (long, c) {
                (false, 1) => 10,
                (false, _) => 4,
                (true, 1) => 20,
                (true, _) => 8,
            })
        },
    }
}

fn check_dash(n: usize) -> Res {
    if n == DASH_TESTS {
        Ok(())
    } else {
        Err(format!("{n} tests in the dashboard, not {DASH_TESTS}").into())
    }
}

async fn explain(
    label: &str,
    db: &DatabaseConnection,
    scope: Option<&TenantScope>,
    sql: &str,
    org: &str,
) -> Res {
    let stmt = dashboard_stmt(&format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"), org);
    let rows = match scope {
        Some(s) => s.query_raw(stmt).await?,
        None => db.query_all_raw(stmt).await?,
    };
    println!("\nEXPLAIN ANALYZE, {label}:");
    for row in rows {
        let line: String = row.try_get("", "QUERY PLAN")?;
        println!("  {line}");
    }
    Ok(())
}

/// What the Rust lock's check of a caller's filter costs, measured apart from the noise of a
/// round trip: rendering the point read's statement with the check (`ScopedSelect::statement`,
/// a cache hit) against rendering it without (SeaORM's `QueryTrait::build`), as a share of
/// the scoped point read itself, all in this process.
async fn lock_check_cost(app: &DatabaseConnection, n: u32) -> Res {
    use flakeguard_db::sea_orm::QueryTrait;
    let s = scope(app, ORG)?;
    let id = test_id(ORG, 1);
    let time = |f: &mut dyn FnMut() -> Res| -> Res<f64> {
        let started = Instant::now();
        for _ in 0..n {
            f()?;
        }
        Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(n))
    };
    let mut checked = || -> Res {
        s.find::<fg_test_case::Entity>()
            .filter(fg_test_case::Column::Id.eq(id.as_str()))
            .statement()?;
        Ok(())
    };
    let mut plain = || -> Res {
        fg_test_case::Entity::find()
            .filter(fg_test_case::Column::OrgId.eq(ORG))
            .filter(fg_test_case::Column::Id.eq(id.as_str()))
            .build(DbBackend::Postgres);
        Ok(())
    };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        with.push(time(&mut checked)?);
        without.push(time(&mut plain)?);
    }
    let reads = 500;
    let started = Instant::now();
    for _ in 0..reads {
        s.find_by_id::<fg_test_case::Entity, _>(id.clone())
            .await?
            .ok_or("missing row")?;
    }
    let read_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(reads);
    let (with, without) = (median(with), median(without));
    let cost = (with - without).max(0.0);
    println!(
        "\nthe Rust lock's check of a point read's filter (cached): {with:.2} us to build and \
         check, {without:.2} us to build alone; {cost:.2} us = {:.2}% of a scoped point read \
         ({read_us:.1} us, 1 client)",
        100.0 * cost / read_us
    );
    println!(
        "goal lock-check clients=1 ratio={:.4}",
        1.0 + cost / read_us
    );
    Ok(())
}

/// Round trips per operation of each contender with a `trips` key (and the other light ones),
/// through [`TripCounter`], one client. The critical path is what an operation waits for: from
/// its call to its return, the ping on acquire included; "all" adds what the pool sends after
/// the operation returned (the ping on release, a queued ROLLBACK).
async fn count_trips(cfg: &Config, db: &TestDatabase) -> Res {
    let to_raw = TripCounter::start(db.url()).await?;
    let to_app = TripCounter::start(&db.app_url().await?).await?;
    let count = || to_raw.count() + to_app.count();
    // Raw SeaORM on its default pool options, and on the crate's.
    let raw = Database::connect(to_raw.url()).await?;
    let raw_crate = Database::connect(flakeguard_db::connect_options(&to_raw.url())).await?;
    let app = flakeguard_db::connect(&to_app.url())
        .await?
        .unscoped_connection()
        .clone();
    let piped = pipelined(&to_app.url()).await?;
    let mut workloads = read_workloads(cfg, &app, &raw, &raw_crate, &piped)?;
    let admin = db.connect().await?;
    workloads.extend(write_workloads(cfg, &app, &raw, &raw_crate, &admin, None)?);
    println!("\nround trips per operation (1 client): critical path / all");
    let mut lines = Vec::new();
    for w in workloads.iter().filter(|w| cfg.selects(w.name)) {
        let ops = if w.name == "bulk" { 1 } else { 30 };
        for c in &w.contenders {
            if let Some(p) = &w.prepare {
                p().await?;
            }
            sample(&c.op, usize::MAX - 1, 1, ops.min(3)).await?;
            if let Some(p) = &w.prepare {
                p().await?;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let start = count();
            let mut critical = 0;
            for op in 0..ops {
                let before = count();
                (c.op)(Call {
                    round: usize::MAX - 2,
                    client: 0,
                    op,
                })
                .await?;
                critical += count() - before;
                // Let the release ping go by before the next operation starts.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let all = (count() - start) as f64 / ops as f64;
            let critical = critical as f64 / ops as f64;
            println!(
                "  {:<10} {:<48} {critical:>5.1} / {all:>5.1}",
                w.name, c.name
            );
            if let Some(key) = c.key {
                lines.push(format!("trips {key} {}", critical.round()));
            }
        }
    }
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// The process's resident memory, current and peak (`VmRSS`, `VmHWM`), in MiB.
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `TenantScope::insert_many_copy_stream` of 100,000 and of 1,000,000 `FGOccurrence` rows,
/// made one by one as the stream is read, and the same rows read back with
/// `ScopedSelect::stream` (and, for 100,000, with `all` for scale): the time, and the process's
/// peak resident memory while each ran (the peak is reset before each run,
/// `/proc/self/clear_refs`).
async fn stream_memory(long: bool) -> Res {
    const STREAM_TESTS: usize = 1_000;
    const STREAM_RUNS: usize = 1_000;
    let db = TestDatabase::new().await?;
    let admin = db.connect().await?;
    exec(
        &admin,
        &format!(
            r#"INSERT INTO "Organization" (id, name, slug, "updatedAt") VALUES ('{ORG}', 'Acme', '{ORG}', now());
               INSERT INTO "FGRepository" (id, "orgId", owner, name, "installationId", "updatedAt")
               VALUES ('repo-{ORG}', '{ORG}', '{ORG}', 'web', 'inst', now());
               INSERT INTO "FGTestCase" (id, "orgId", "repoId", suite, name, "updatedAt")
               SELECT 'tc-{ORG}-' || g, '{ORG}', 'repo-{ORG}', 'unit', 'test_' || g, now()
               FROM generate_series(1, {STREAM_TESTS}) g;
               INSERT INTO "FGWorkflowRun" (id, "orgId", "repoId", "runId", status, "updatedAt")
               SELECT 'run-{ORG}-' || g, '{ORG}', 'repo-{ORG}', g::text, 'completed', now()
               FROM generate_series(1, {STREAM_RUNS}) g;
               ANALYZE"#
        ),
    )
    .await?;
    let app = flakeguard_db::connect(&db.app_url().await?).await?;
    let s = app.scope(OrgId::new(ORG)?);
    println!(
        "\nstreamed COPY: rows made one at a time, sent in chunks of {}",
        flakeguard_db::COPY_CHUNK_ROWS
    );
    let sizes: &[usize] = if long {
        &[100_000, 1_000_000, 100_000]
    } else {
        &[100_000, 1_000_000]
    };
    for &n in sizes {
        exec(&admin, r#"TRUNCATE "FGOccurrence""#).await?;
        // Resets VmHWM to the current resident size (Linux 4.0 and later).
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let (rss_before, _) = memory_mib();
        let started = Instant::now();
        let rows = futures_util::stream::iter(0..n).map(|k| {
            occurrence(
                format!("m{k}"),
                k % STREAM_TESTS,
                k / STREAM_TESTS % STREAM_RUNS,
                false,
            )
        });
        let inserted = s.insert_many_copy_stream(rows).await?;
        let secs = started.elapsed().as_secs_f64();
        let (_, peak) = memory_mib();
        if inserted as usize != n {
            return Err(format!("streamed {inserted} rows, not {n}").into());
        }
        println!(
            "  {n:>9} rows: {secs:>6.1} s ({:>7.0} rows/s), peak resident memory {peak:.1} MiB \
             (before: {rss_before:.1} MiB{})",
            n as f64 / secs,
            if reset { "" } else { "; peak not reset" }
        );
        println!("memory rows={n} seconds={secs:.2} peak_rss_mib={peak:.1}");

        // And back out: ScopedSelect::stream, rows as the server sends them.
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let (rss_before, _) = memory_mib();
        let started = Instant::now();
        let mut read = 0usize;
        let mut rows = s.find::<fg_occurrence::Entity>().stream();
        while let Some(row) = rows.next().await {
            row?;
            read += 1;
        }
        drop(rows);
        let secs = started.elapsed().as_secs_f64();
        let (_, peak) = memory_mib();
        if read != n {
            return Err(format!("streamed out {read} rows, not {n}").into());
        }
        println!(
            "  {n:>9} rows read with ScopedSelect::stream: {secs:>6.1} s, peak resident memory \
             {peak:.1} MiB (before: {rss_before:.1} MiB{})",
            if reset { "" } else { "; peak not reset" }
        );
        println!("memory-read rows={n} seconds={secs:.2} peak_rss_mib={peak:.1}");
    }
    // 100,000 rows held at once, for scale: last, since the allocator keeps what it freed.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let all = s
        .find::<fg_occurrence::Entity>()
        .limit(100_000)
        .all()
        .await?;
    let (_, peak) = memory_mib();
    println!(
        "  {:>9} rows read with ScopedSelect::all: peak resident memory {peak:.1} MiB{}",
        all.len(),
        if reset { "" } else { " (peak not reset)" }
    );
    Ok(())
}

/// Server-side planning plus execution of each of the `unit` workload's five queries, as the
/// scope sends them (the application role, in a tenant transaction, with the tenant predicates)
/// and as raw SeaORM sends them (the superuser): medians of `n` runs of `EXPLAIN ANALYZE`.
async fn explain_five(app: &DatabaseConnection, raw: &DatabaseConnection, n: usize) -> Res {
    use flakeguard_db::sea_orm::QueryTrait;
    let s = scope(app, ORG)?;
    let (case, repo, file) = (test_id(ORG, 5), repo_id(ORG), "src/f6.ts".to_owned());
    let count = |st: Statement| Statement {
        sql: format!("SELECT COUNT(*) AS num_items FROM ({}) AS sub", st.sql),
        ..st
    };
    let pg = DbBackend::Postgres;
    let queries: Vec<(&str, Statement, Statement)> = vec![
        (
            "test case by id",
            s.find::<fg_test_case::Entity>()
                .filter(fg_test_case::Column::Id.eq(&case))
                .limit(1)
                .statement()?,
            fg_test_case::Entity::find_by_id(case.clone())
                .limit(1)
                .build(pg),
        ),
        (
            "its flake score",
            s.find::<fg_flake_score::Entity>()
                .filter(fg_flake_score::Column::TestId.eq(&case))
                .limit(1)
                .statement()?,
            fg_flake_score::Entity::find()
                .filter(fg_flake_score::Column::TestId.eq(&case))
                .limit(1)
                .build(pg),
        ),
        (
            "its repository",
            s.find::<fg_repository::Entity>()
                .filter(fg_repository::Column::Id.eq(&repo))
                .limit(1)
                .statement()?,
            fg_repository::Entity::find_by_id(repo.clone())
                .limit(1)
                .build(pg),
        ),
        (
            "the repository's 5 latest runs",
            s.find::<fg_workflow_run::Entity>()
                .filter(fg_workflow_run::Column::RepoId.eq(&repo))
                .order_by_desc(fg_workflow_run::Column::CreatedAt)
                .limit(5)
                .statement()?,
            fg_workflow_run::Entity::find()
                .filter(fg_workflow_run::Column::RepoId.eq(&repo))
                .order_by_desc(fg_workflow_run::Column::CreatedAt)
                .limit(5)
                .build(pg),
        ),
        (
            "count of test cases in the file",
            count(
                s.find::<fg_test_case::Entity>()
                    .filter(fg_test_case::Column::RepoId.eq(&repo))
                    .filter(fg_test_case::Column::File.eq(file.clone()))
                    .statement()?,
            ),
            count(
                fg_test_case::Entity::find()
                    .filter(fg_test_case::Column::RepoId.eq(&repo))
                    .filter(fg_test_case::Column::File.eq(file.clone()))
                    .build(pg),
            ),
        ),
    ];
    let explain = |st: &Statement| Statement {
        sql: format!("EXPLAIN (ANALYZE) {}", st.sql),
        ..st.clone()
    };
    println!(
        "\nthe five queries, server-side, medians of {n} runs (ms): planning + execution = total"
    );
    println!(
        "  {:<34} {:>24} {:>24} {:>7}",
        "query", "scoped", "raw", "ratio"
    );
    let (mut sum_s, mut sum_r) = (0.0, 0.0);
    for (what, scoped, plain) in &queries {
        let (mut ts, mut tr) = (Vec::new(), Vec::new());
        for i in 0..n {
            for k in 0..2 {
                if (k + i) % 2 == 0 {
                    ts.push(plan_times(&s.query_raw(explain(scoped)).await?)?);
                } else {
                    tr.push(plan_times(&raw.query_all_raw(explain(plain)).await?)?);
                }
            }
        }
        let split = |t: &[(f64, f64)]| {
            let (p, e) = (
                median(t.iter().map(|x| x.0).collect()),
                median(t.iter().map(|x| x.1).collect()),
            );
            (p, e, median(t.iter().map(|x| x.0 + x.1).collect()))
        };
        if *what == "count of test cases in the file" {
            for (side, rows) in [
                ("scoped", s.query_raw(explain(scoped)).await?),
                ("raw", raw.query_all_raw(explain(plain)).await?),
            ] {
                println!("  plan of the count, {side}:");
                for row in rows {
                    let line: String = row.try_get("", "QUERY PLAN")?;
                    println!("    {line}");
                }
            }
        }
        let ((ps, es, s_total), (pr, er, r_total)) = (split(&ts), split(&tr));
        sum_s += s_total;
        sum_r += r_total;
        println!(
            "  {what:<34} {ps:>6.3} + {es:>6.3} = {s_total:>6.3} {pr:>6.3} + {er:>6.3} = {r_total:>6.3} {:>6.2}x",
            s_total / r_total
        );
    }
    println!(
        "  {:<34} {:>24.3} {:>24.3} {:>6.2}x",
        "all five",
        sum_s,
        sum_r,
        sum_s / sum_r
    );
    Ok(())
}

/// Server-side planning and execution of one single-row insert, `n` runs of each side (each
/// rolled back, the order rotating): the raw `INSERT ... VALUES` as the superuser, the same as
/// the application role in a tenant transaction (what row-level security's WITH CHECK adds),
/// and the scope's `INSERT ... SELECT ... WHERE EXISTS` (what the ownership check inside the
/// statement adds). Prints the scope's plan and the medians.
async fn explain_single_insert(
    app: &DatabaseConnection,
    raw: &DatabaseConnection,
    n: usize,
) -> Res {
    const COLUMNS: &str = r#""id", "orgId", "testId", "runId", "status", "durationMs", "attempt""#;
    let values = format!(
        r#"INSERT INTO "FGOccurrence" ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *"#
    );
    let folded = format!(
        r#"INSERT INTO "FGOccurrence" ({COLUMNS}) SELECT $1, $2, $3, $4, $5, $6, $7
           WHERE EXISTS (SELECT 1 FROM "FGTestCase" WHERE "FGTestCase"."orgId" = $2 AND "FGTestCase"."id" = $3)
             AND EXISTS (SELECT 1 FROM "FGWorkflowRun" WHERE "FGWorkflowRun"."orgId" = $2 AND "FGWorkflowRun"."id" = $4)
           RETURNING *"#
    );
    let sides = [
        (
            "INSERT ... VALUES, superuser, no RLS",
            raw,
            false,
            values.clone(),
        ),
        ("INSERT ... VALUES, app role, RLS", app, true, values),
        (
            "the scope's INSERT ... SELECT ... WHERE EXISTS, app role, RLS",
            app,
            true,
            folded,
        ),
    ];
    let mut times = vec![Vec::new(); sides.len()];
    let mut plan = Vec::new();
    for i in 0..n {
        for k0 in 0..sides.len() {
            let k = (k0 + i) % sides.len();
            let (_, db, tenant, sql) = &sides[k];
            let pool = db.get_postgres_connection_pool();
            let mut tx = if *tenant {
                pool.begin_with(sqlx::AssertSqlSafe(flakeguard_db::tenant_begin_sql(
                    &OrgId::new(ORG)?,
                )))
                .await?
            } else {
                pool.begin().await?
            };
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "EXPLAIN (ANALYZE, BUFFERS) {sql}"
            )))
            .bind(format!("x{i}"))
            .bind(ORG)
            .bind(test_id(ORG, i % TESTS))
            .bind(run_id(ORG, i % RUNS))
            .bind("passed")
            .bind(12_i32)
            .bind(1_i32)
            .bind(chrono::Utc::now())
            .fetch_all(&mut *tx)
            .await?;
            tx.rollback().await?;
            let mut total = 0.0;
            if k == 2 {
                plan.clear();
            }
            for row in rows {
                let line: String = sqlx::Row::try_get(&row, 0)?;
                for prefix in ["Planning Time:", "Execution Time:"] {
                    total += explain_ms(&line, prefix).unwrap_or(0.0);
                }
                if k == 2 {
                    plan.push(line);
                }
            }
            times[k].push(total);
        }
    }
    println!("\nEXPLAIN ANALYZE of the scope's single insert (last of {n}):");
    for line in &plan {
        println!("  {line}");
    }
    let base = median(times[0].clone());
    println!("\nsingle-row insert, server-side planning + execution, medians of {n} runs each:");
    for (k, (label, ..)) in sides.iter().enumerate() {
        let m = median(times[k].clone());
        println!("  {label:<64} {:>7.3} ms   {:.2}x", m, m / base);
    }
    Ok(())
}

/// EXPLAIN ANALYZE of inserting one bulk sample's 10,000 rows with INSERT ... SELECT from a
/// staging table, as the superuser and as the application role under row-level security, each
/// rolled back: `n` runs of each, the table emptied before each run and the order alternating.
/// Prints the last plan of each side and the medians of the execution times.
async fn explain_bulk(
    app: &DatabaseConnection,
    raw: &DatabaseConnection,
    admin: &DatabaseConnection,
    n: usize,
) -> Res {
    let sides = [
        ("no RLS (superuser)", raw, false),
        ("RLS (app role, tenant set)", app, true),
    ];
    let mut times = [Vec::new(), Vec::new()];
    let mut plans = [Vec::new(), Vec::new()];
    for i in 0..n {
        for k0 in 0..2 {
            let k = (k0 + i) % 2;
            let (_, db, tenant) = sides[k];
            exec(admin, r#"TRUNCATE "FGOccurrence""#).await?;
            let mut tx = db.get_postgres_connection_pool().begin().await?;
            if tenant {
                sqlx::query("SET LOCAL app.current_tenant_id = 'acme'")
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::raw_sql(
                r#"CREATE TEMP TABLE _stage (LIKE "FGOccurrence" INCLUDING DEFAULTS) ON COMMIT DROP"#,
            )
            .execute(&mut *tx)
            .await?;
            let mut copy = tx
                .copy_in_raw(&COPY_OCCURRENCES.replace("\"FGOccurrence\"", "_stage"))
                .await?;
            copy.send(bulk_copy_text(0).as_bytes()).await?;
            copy.finish().await?;
            let rows = sqlx::query(
                r#"EXPLAIN (ANALYZE, BUFFERS) INSERT INTO "FGOccurrence" SELECT * FROM _stage"#,
            )
            .fetch_all(&mut *tx)
            .await?;
            tx.rollback().await?;
            plans[k].clear();
            for row in rows {
                let line: String = sqlx::Row::try_get(&row, 0)?;
                if let Some(ms) = line
                    .strip_prefix("Execution Time:")
                    .and_then(|t| t.trim().trim_end_matches(" ms").parse::<f64>().ok())
                {
                    times[k].push(ms);
                }
                plans[k].push(line);
            }
        }
    }
    for (k, (label, _, _)) in sides.iter().enumerate() {
        println!("\nEXPLAIN ANALYZE of a 10,000-row INSERT ... SELECT, {label} (last of {n}):");
        for line in &plans[k] {
            println!("  {line}");
        }
    }
    let base = median(times[0].clone());
    println!("\nbulk INSERT ... SELECT, server-side execution, medians of {n} runs each:");
    for (k, (label, _, _)) in sides.iter().enumerate() {
        let m = median(times[k].clone());
        println!("  {label:<28} {m:>8.1} ms   {:.3}x", m / base);
    }
    Ok(())
}

/// Server-side planning and execution times of the dashboard query (medians over `n` runs of
/// `EXPLAIN (ANALYZE, TIMING OFF)`, the two sides alternating): what row-level security costs
/// inside PostgreSQL, without round trips or client work.
async fn server_times(
    raw: &DatabaseConnection,
    app: &DatabaseConnection,
    platform: &DatabaseConnection,
    n: usize,
) -> Res {
    let labels = [
        "no RLS (superuser)",
        "no RLS, superuser in a tenant transaction",
        "RLS (TenantScope)",
        "RLS only, no orgId filter",
        "no RLS, non-superuser with BYPASSRLS",
    ];
    let mut plan = vec![Vec::new(); labels.len()];
    let mut execute = vec![Vec::new(); labels.len()];
    for i in 0..n {
        let org = dash_org(i * 13);
        let s = scope(app, &org)?;
        for k0 in 0..labels.len() {
            let k = (k0 + i) % labels.len();
            let sql = if k == 3 {
                DASHBOARD_RLS_ONLY_SQL
            } else {
                DASHBOARD_SQL
            };
            let stmt = dashboard_stmt(&format!("EXPLAIN (ANALYZE, TIMING OFF) {sql}"), &org);
            let rows = match k {
                0 => raw.query_all_raw(stmt).await?,
                4 => platform.query_all_raw(stmt).await?,
                1 => {
                    let tx = raw.begin().await?;
                    tx.execute_unprepared(
                        &flakeguard_db::tenant_begin_sql(&OrgId::new(&org)?)
                            .replacen("BEGIN; ", "", 1),
                    )
                    .await?;
                    let rows = tx.query_all_raw(stmt).await?;
                    tx.commit().await?;
                    rows
                }
                _ => s.query_raw(stmt).await?,
            };
            let (planning, execution) = plan_times(&rows)?;
            plan[k].push(planning);
            execute[k].push(execution);
        }
    }
    println!(
        "\nserver-side times of the dashboard query, medians of {n} runs (EXPLAIN ANALYZE, TIMING OFF; order rotating):"
    );
    let base = median(execute[0].clone());
    for (k, label) in labels.iter().enumerate() {
        let e = median(execute[k].clone());
        println!(
            "  {label:<42} planning {:>6.3} ms   execution {e:>7.3} ms   execution ratio {:.3}x",
            median(plan[k].clone()),
            e / base
        );
    }
    Ok(())
}

async fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        })
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    format!("{nproc} CPU(s) ({cpu}), MemTotal {mem}")
}

/// The dashboard workload on the dashboard dataset, with its plans and server-side times.
async fn dashboard(
    cfg: &Config,
    db: &TestDatabase,
    app: &DatabaseConnection,
    raw: &DatabaseConnection,
    outcomes: &mut Vec<Outcome>,
    all_goals: &mut Vec<(&'static str, Goal)>,
) -> Res {
    let org = dash_org(41);
    let s = scope(app, &org)?;
    // Twice each, so that the plans shown are of a warm cache.
    for _ in 0..2 {
        raw.query_all_raw(dashboard_stmt(DASHBOARD_SQL, &org))
            .await?;
        s.query_raw(dashboard_stmt(DASHBOARD_SQL, &org)).await?;
    }
    explain("no RLS (superuser)", raw, None, DASHBOARD_SQL, &org).await?;
    explain(
        "RLS (app role in a TenantScope)",
        app,
        Some(&s),
        DASHBOARD_SQL,
        &org,
    )
    .await?;
    explain(
        "RLS only, no orgId filter in the SQL",
        app,
        Some(&s),
        DASHBOARD_RLS_ONLY_SQL,
        &org,
    )
    .await?;
    let platform = flakeguard_db::connect(&db.platform_url().await?)
        .await?
        .unscoped_connection()
        .clone();
    server_times(raw, app, &platform, if cfg.long { 101 } else { 31 }).await?;
    let w = dashboard_workload(cfg, app, raw);
    for clients in [1, 8] {
        let o = run_workload(&w, clients).await?;
        print_outcome(&o);
        outcomes.push(o);
    }
    all_goals.extend(w.goals.into_iter().map(|g| (w.name, g)));
    Ok(())
}

#[tokio::main]
async fn main() -> Res {
    let cfg = Config::from_args()?;
    println!(
        "flakeguard-db benchmark ({} mode): {}",
        if cfg.long { "long" } else { "quick" },
        machine().await
    );
    let started = Instant::now();
    let mut outcomes = Vec::new();
    let mut all_goals: Vec<(&'static str, Goal)> = Vec::new();

    if [
        "point", "unit", "list", "insert", "update", "delete", "bulk",
    ]
    .iter()
    .any(|w| cfg.selects(w))
    {
        let db = TestDatabase::new().await?;
        // Seeding and emptying tables go through a pool of their own: a server process that
        // has done the seeding's big allocations runs later queries measurably faster than a
        // fresh one (glibc keeps the memory), which would favour whichever side used it.
        let admin = db.connect().await?;
        let version: String = admin
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT version() AS v",
            ))
            .await?
            .ok_or("no version")?
            .try_get("", "v")?;
        println!("server: {version}");
        seed_main(&admin).await?;
        if cfg.trips {
            count_trips(&cfg, &db).await?;
        }
        // Raw SeaORM on its default pool options (the baseline), and on the options the
        // crate's `connect` uses; the scoped side through the crate's `connect`.
        let raw = db.connect().await?;
        let raw_crate = Database::connect(flakeguard_db::connect_options(db.url())).await?;
        let app = flakeguard_db::connect(&db.app_url().await?)
            .await?
            .unscoped_connection()
            .clone();
        // A second database, the same but for FGOccurrence's composite tenant keys, for what
        // those keys cost on a single-row insert.
        let keyless_db = TestDatabase::new().await?;
        let keyless = keyless_db.connect().await?;
        seed_main(&keyless).await?;
        exec(
            &keyless,
            r#"ALTER TABLE "FGOccurrence" DROP CONSTRAINT "FGOccurrence_orgId_testId_fkey",
                 DROP CONSTRAINT "FGOccurrence_orgId_runId_fkey",
                 DROP CONSTRAINT "FGOccurrence_orgId_jobId_fkey""#,
        )
        .await?;
        let piped = pipelined(&db.app_url().await?).await?;
        let mut workloads = read_workloads(&cfg, &app, &raw, &raw_crate, &piped)?;
        workloads.extend(write_workloads(
            &cfg,
            &app,
            &raw,
            &raw_crate,
            &admin,
            Some(&keyless),
        )?);
        for w in workloads.into_iter().filter(|w| cfg.selects(w.name)) {
            for clients in [1, 8] {
                let o = run_workload(&w, clients).await?;
                print_outcome(&o);
                outcomes.push(o);
            }
            all_goals.extend(w.goals.into_iter().map(|g| (w.name, g)));
        }
        if cfg.wants("bulk") {
            explain_bulk(&app, &raw, &admin, if cfg.long { 9 } else { 5 }).await?;
        }
        if cfg.wants("unit") {
            explain_five(&app, &raw, if cfg.long { 51 } else { 21 }).await?;
        }
        if cfg.wants("insert") {
            explain_single_insert(&app, &raw, if cfg.long { 101 } else { 31 }).await?;
        }
        if cfg.wants("point") {
            lock_check_cost(&app, if cfg.long { 20_000 } else { 5_000 }).await?;
        }
    }

    if cfg.wants("stream") {
        stream_memory(cfg.long).await?;
    }

    if cfg.wants("dashboard") || cfg.wants("reports") {
        let db = TestDatabase::new().await?;
        let admin = db.connect().await?;
        let t = Instant::now();
        seed_dashboard(&admin).await?;
        drop(admin);
        let raw = db.connect().await?;
        let app = db.connect_as_app().await?;
        println!(
            "\ndashboard dataset: {} occurrences generated in {:.1} s",
            DASH_ORGS * DASH_TESTS * DASH_RUNS,
            t.elapsed().as_secs_f64()
        );
        if cfg.wants("reports") {
            reports::server_times(&raw, &app, if cfg.long { 51 } else { 21 }).await?;
            for w in reports::workloads(&cfg, &app, &raw) {
                for clients in [1, 8] {
                    let o = run_workload(&w, clients).await?;
                    print_outcome(&o);
                    outcomes.push(o);
                }
                all_goals.extend(w.goals.into_iter().map(|g| (w.name, g)));
            }
        }
        if cfg.wants("dashboard") {
            dashboard(&cfg, &db, &app, &raw, &mut outcomes, &mut all_goals).await?;
        }
    }

    if cfg.wants("citus") {
        citus::run(&cfg, &mut outcomes).await?;
    }

    println!("\nGoals");
    let mut verdicts = Vec::new();
    for (workload, goal) in &all_goals {
        for o in outcomes.iter().filter(|o| o.workload == *workload) {
            let (Some(s), Some(r)) = (o.median(goal.scoped), o.median(goal.raw)) else {
                continue;
            };
            verdicts.push(Verdict {
                key: goal.key,
                what: goal.what,
                clients: o.clients,
                ratio: s / r,
                max: goal.max,
            });
        }
    }
    for v in &verdicts {
        println!(
            "  {} {:<72} {} client(s): {:.2}x (goal <= {:.2}x)",
            if v.ratio <= v.max { "PASS" } else { "MISS" },
            v.what,
            v.clients,
            v.ratio,
            v.max
        );
    }
    for v in &verdicts {
        if let Some(key) = v.key {
            println!("goal {key} clients={} ratio={:.4}", v.clients, v.ratio);
        }
    }
    println!("\ntotal time {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
