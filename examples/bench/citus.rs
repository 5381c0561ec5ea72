//! The `citus` workloads: the scope on a distributed Citus cluster (a coordinator and two
//! workers on this machine, `flakeguard_db::testing::CitusDatabase`) against the scope on one
//! server, both as the application role, on the same data: point read, single insert, the
//! five-query transaction and the dashboard query. The one-server side is the baseline; no goal
//! is set, the ratios are what the cluster costs. Skipped, saying so, where Citus is not
//! installed.
//!
//! Every node of the cluster runs on the same two cores as the client, so each statement pays
//! the coordinator's planning and its hop to a worker on top of the worker's own work, with no
//! second machine to spread over: a worst case for latency, and no measure of how a cluster of
//! real machines scales.

use flakeguard_db::migration::distribute::distribute;
use flakeguard_db::sea_orm::DatabaseConnection;
use flakeguard_db::testing::{CitusDatabase, TestDatabase};

use super::{
    Config, Contender, DASH_ORGS, DASH_RUNS, DASH_TESTS, Outcome, Res, SCOPED_FIVE, SCOPED_INSERT,
    SCOPED_POINT, Workload, dashboard_workload, pipelined, print_outcome, read_workloads,
    run_workload, seed_dashboard, seed_main, write_workloads,
};

const SINGLE: &str = "one server: TenantScope (app role, RLS)";
const CLUSTER: &str = "Citus, 2 workers: TenantScope (app role, RLS)";
const DASHBOARD_SCOPED: &str = "RLS: TenantScope::query_raw, same SQL";

/// One side of the comparison: a migrated, seeded database's pools, the application role's
/// and the superuser's, and the application role's URL.
struct Side {
    app: DatabaseConnection,
    admin: DatabaseConnection,
    app_url: String,
}

impl Side {
    /// Seeds `admin`'s database, distributes it when `distributed`, then opens the application
    /// role's pool (after `distribute`: the tenant setting reaches the workers in sessions
    /// opened after it).
    async fn new(
        admin: DatabaseConnection,
        app_url: String,
        seed: fn(&DatabaseConnection) -> SeedFuture<'_>,
        distributed: bool,
    ) -> Res<Side> {
        seed(&admin).await?;
        if distributed {
            distribute(&admin).await?;
        }
        let app = flakeguard_db::connect(&app_url)
            .await?
            .unscoped_connection()
            .clone();
        Ok(Side {
            app,
            admin,
            app_url,
        })
    }
}

/// Both sides, seeded by `seed`, with the databases they live in (dropped with them); `None`
/// where Citus is not installed (the skip printed).
async fn sides(
    seed: fn(&DatabaseConnection) -> SeedFuture<'_>,
) -> Res<Option<((TestDatabase, Side), (CitusDatabase, Side))>> {
    let Some(cluster) = CitusDatabase::new_or_skip("the citus benchmark").await? else {
        return Ok(None);
    };
    let single = TestDatabase::new().await?;
    let one = Side::new(
        single.connect().await?,
        single.app_url().await?,
        seed,
        false,
    )
    .await?;
    let two = Side::new(
        cluster.connect().await?,
        cluster.app_url().await?,
        seed,
        true,
    )
    .await?;
    Ok(Some(((single, one), (cluster, two))))
}

/// Runs `w` at 1 and 8 clients, printing each outcome and keeping its ratio.
async fn run_pair(
    w: &Workload,
    ratios: &mut Vec<(&'static str, usize, f64)>,
    outcomes: &mut Vec<Outcome>,
) -> Res {
    for clients in [1, 8] {
        let o = run_workload(w, clients).await?;
        print_outcome(&o);
        ratios.push(ratio(&o));
        outcomes.push(o);
    }
    Ok(())
}

type SeedFuture<'a> = futures_util::future::BoxFuture<'a, Res>;

fn seed_main_boxed(db: &DatabaseConnection) -> SeedFuture<'_> {
    Box::pin(seed_main(db))
}

fn seed_dashboard_boxed(db: &DatabaseConnection) -> SeedFuture<'_> {
    Box::pin(seed_dashboard(db))
}

fn take(w: &mut Workload, name: &str) -> Res<Contender> {
    let i = w
        .contenders
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| format!("no contender {name:?} in {}", w.name))?;
    Ok(w.contenders.remove(i))
}

/// `one`'s contender `name` on one server against `other`'s on the cluster.
fn pair(
    name: &'static str,
    title: &'static str,
    mut one: Workload,
    mut other: Workload,
    contender: &str,
) -> Res<Workload> {
    let mut single = take(&mut one, contender)?;
    let mut cluster = take(&mut other, contender)?;
    single.name = SINGLE;
    single.key = None;
    cluster.name = CLUSTER;
    cluster.key = None;
    let prepare = match (one.prepare.take(), other.prepare.take()) {
        (Some(a), Some(b)) => Some(std::sync::Arc::new(move || {
            let (a, b) = (a.clone(), b.clone());
            Box::pin(async move {
                a().await?;
                b().await
            }) as SeedFuture<'static>
        }) as super::Prepare),
        (a, b) => a.or(b),
    };
    Ok(Workload {
        name,
        title,
        contenders: vec![single, cluster],
        baseline: SINGLE,
        goals: Vec::new(),
        prepare,
        rounds: one.rounds,
        ops: one.ops,
    })
}

fn find(workloads: &mut Vec<Workload>, name: &str) -> Res<Workload> {
    let i = workloads
        .iter()
        .position(|w| w.name == name)
        .ok_or_else(|| format!("no workload {name}"))?;
    Ok(workloads.remove(i))
}

/// Runs the `citus` workloads, printing each outcome and one machine-readable line per
/// workload and client count, `citus <workload> clients=<n> ratio=<r>` (cluster / one server).
pub async fn run(cfg: &Config, outcomes: &mut Vec<Outcome>) -> Res {
    let mut ratios = Vec::new();
    {
        let Some(((_single, one), (_cluster, two))) = sides(seed_main_boxed).await? else {
            return Ok(());
        };
        println!(
            "\ncitus: a coordinator and {} workers on this machine, the schema distributed",
            flakeguard_db::testing::CITUS_WORKERS
        );
        let (one_piped, two_piped) = (
            pipelined(&one.app_url).await?,
            pipelined(&two.app_url).await?,
        );
        let reads = |s: &Side, p| read_workloads(cfg, &s.app, &s.admin, &s.admin, p);
        let writes = |s: &Side| write_workloads(cfg, &s.app, &s.admin, &s.admin, &s.admin, None);
        let (mut reads_one, mut reads_two) = (reads(&one, &one_piped)?, reads(&two, &two_piped)?);
        let workloads = [
            pair(
                "citus-point",
                "point read of one FGTestCase by id: one server vs Citus",
                find(&mut reads_one, "point")?,
                find(&mut reads_two, "point")?,
                SCOPED_POINT,
            )?,
            pair(
                "citus-insert",
                "insert one FGOccurrence row: one server vs Citus",
                find(&mut writes(&one)?, "insert")?,
                find(&mut writes(&two)?, "insert")?,
                SCOPED_INSERT,
            )?,
            pair(
                "citus-unit",
                "five queries in one transaction: one server vs Citus",
                find(&mut reads_one, "unit")?,
                find(&mut reads_two, "unit")?,
                SCOPED_FIVE,
            )?,
        ];
        for w in &workloads {
            run_pair(w, &mut ratios, outcomes).await?;
        }
    }
    {
        let t = std::time::Instant::now();
        let Some(((_single, one), (_cluster, two))) = sides(seed_dashboard_boxed).await? else {
            return Ok(());
        };
        println!(
            "\ncitus: dashboard dataset ({} occurrences) on one server and distributed in {:.1} s",
            DASH_ORGS * DASH_TESTS * DASH_RUNS,
            t.elapsed().as_secs_f64()
        );
        let w = pair(
            "citus-dashboard",
            "per-test failure rate of one organization, 1,000,000 occurrences: one server vs Citus",
            dashboard_workload(cfg, &one.app, &one.admin),
            dashboard_workload(cfg, &two.app, &two.admin),
            DASHBOARD_SCOPED,
        )?;
        run_pair(&w, &mut ratios, outcomes).await?;
    }
    for (workload, clients, r) in ratios {
        println!("citus {workload} clients={clients} ratio={r:.4}");
    }
    Ok(())
}

fn ratio(o: &Outcome) -> (&'static str, usize, f64) {
    let r = match (o.median(CLUSTER), o.median(SINGLE)) {
        (Some(c), Some(s)) => c / s,
        _ => f64::NAN,
    };
    (o.workload, o.clients, r)
}
