//! [`CitusDatabase`]: a fresh database on a throwaway Citus cluster (a coordinator and two
//! workers on 127.0.0.1), for tests of code that must also run distributed.
//!
//! # Design
//!
//! The cluster's three servers are throwaway servers like [`TestDatabase`](super::TestDatabase)'s,
//! each under its own supervisor (root-safe, removed when the process exits), started with
//! `shared_preload_libraries = 'citus'`. One cluster serves every test of a process. Citus keeps
//! its cluster metadata per database, so each [`CitusDatabase`] is made on every node, gets the
//! extension on every node, and has the workers registered on the coordinator; that takes about
//! a second, so there is no template to copy. Roles are per node and are created on every node
//! (a role made in a database without the extension is not propagated).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use sea_orm::{Database, DatabaseConnection};
use tokio::sync::OnceCell;

use super::server::{Server, find_binaries};
use super::supervisor::Supervisor;
use super::{APP_ROLE, PLATFORM_ROLE, fresh_name, quote_ident};
use crate::{Error, Operation, Result};
use flakeguard_migration::{Migrator, MigratorTrait};

/// How many workers a test cluster has.
pub const CITUS_WORKERS: usize = 2;

/// Settings every node of a test cluster starts with: Citus itself; prepared transactions,
/// which Citus's two-phase commit across nodes needs; and 8 shards a distributed table (Citus's default is 32), which keeps
/// distributing a schema of 25 tables quick on a small machine.
const NODE_SETTINGS: &[&str] = &[
    "shared_preload_libraries=citus",
    "max_prepared_transactions=100",
    "citus.shard_count=8",
];

/// The library Citus installs into PostgreSQL's `pkglibdir`, for the binaries the throwaway
/// servers use: `Ok(path)` when it is there, [`Error::CitusNotFound`] when it is not.
pub fn citus_library() -> Result<PathBuf> {
    let bin = find_binaries()?;
    let libdir = Command::new(bin.join("pg_config"))
        .arg("--pkglibdir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .unwrap_or_else(|| bin.join("../lib"));
    let library = libdir.join("citus.so");
    if super::server::is_file(&library) {
        Ok(library)
    } else {
        Err(Error::CitusNotFound { searched: library })
    }
}

/// The cluster of this process: the coordinator first, then the workers.
#[derive(Debug)]
struct Cluster {
    nodes: Vec<Server>,
}

static CLUSTER: OnceCell<Arc<Cluster>> = OnceCell::const_new();

/// Serializes making and dropping databases on the cluster: Citus's node registration of two
/// databases made at once can fail on the workers' connections.
static CHANGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn cluster() -> Result<Arc<Cluster>> {
    CLUSTER
        .get_or_try_init(|| async {
            citus_library()?;
            let mut nodes = Vec::with_capacity(1 + CITUS_WORKERS);
            for _ in 0..=CITUS_WORKERS {
                let supervisor =
                    tokio::task::spawn_blocking(|| Supervisor::start_with(NODE_SETTINGS))
                        .await
                        .map_err(|e| Error::TestServer {
                            message: format!("server start-up task failed: {e}"),
                            source: None,
                        })??;
                nodes.push(Server {
                    base_url: supervisor.url.clone(),
                    supervisor: Some(supervisor),
                });
            }
            for node in &nodes {
                node.wait_until_ready().await?;
            }
            Ok(Arc::new(Cluster { nodes }))
        })
        .await
        .cloned()
}

impl Cluster {
    fn port(node: &Server) -> Result<u16> {
        url::Url::parse(&node.base_url)
            .ok()
            .and_then(|u| u.port())
            .ok_or_else(|| Error::Config(format!("no port in {}", node.base_url)))
    }

    /// Runs `sql` on database `db` of `node` as the superuser.
    async fn run(node: &Server, db: &str, sql: &str) -> Result<()> {
        let conn = Database::connect(node.url_for(db))
            .await
            .map_err(|e| Error::database(Operation::Connect, e))?;
        let result = sea_orm::ConnectionTrait::execute_unprepared(&conn, sql).await;
        let _ = conn.close().await;
        result
            .map(|_| ())
            .map_err(|e| Error::database(Operation::Admin, e))
    }

    /// Creates `role` on every node (see [`Server::ensure_role`]).
    async fn ensure_role(&self, role: &str, attributes: &str) -> Result<()> {
        for node in self.nodes.iter().rev() {
            node.ensure_role(role, attributes).await?;
        }
        Ok(())
    }
}

/// A fresh database on a throwaway Citus cluster, with every migration applied, dropped (on
/// every node) when this value is dropped.
///
/// The schema is the single-node one: its tables are local to the coordinator until the
/// database is distributed. Where Citus is not installed, [`CitusDatabase::new`] fails with
/// [`Error::CitusNotFound`]: a test should then say so and skip (see
/// [`CitusDatabase::new_or_skip`]).
///
/// ```no_run
/// # async fn demo() -> flakeguard_db::Result<()> {
/// use flakeguard_db::testing::CitusDatabase;
/// let Some(db) = CitusDatabase::new_or_skip("my test").await? else {
///     return Ok(()); // Citus is not installed here; the skip was printed
/// };
/// let app = flakeguard_db::connect(&db.app_url().await?).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct CitusDatabase {
    name: String,
    url: String,
    cluster: Arc<Cluster>,
}

impl CitusDatabase {
    /// A fresh database on the cluster (started on first use), with the Citus extension on
    /// every node, the workers registered on the coordinator, and every migration applied on
    /// the coordinator.
    pub async fn new() -> Result<Self> {
        let cluster = cluster().await?;
        let name = fresh_name("flakeguard_citus");
        let db = CitusDatabase {
            url: cluster.nodes[0].url_for(&name),
            name,
            cluster,
        };
        db.create().await?;
        let conn = db.connect().await?;
        let migrated = Migrator::up(&conn, None).await;
        let _ = conn.close().await;
        migrated.map_err(|e| Error::database(Operation::Migrate, e))?;
        Ok(db)
    }

    /// [`CitusDatabase::new`], or `None` after printing that `test` is skipped, when Citus is
    /// not installed for the machine's PostgreSQL.
    pub async fn new_or_skip(test: &str) -> Result<Option<Self>> {
        match Self::new().await {
            Ok(db) => Ok(Some(db)),
            Err(e @ Error::CitusNotFound { .. }) => {
                eprintln!("SKIPPED {test}: {e}");
                println!("SKIPPED {test}: {e}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn create(&self) -> Result<()> {
        let _one_at_a_time = CHANGES.lock().await;
        let q = quote_ident(&self.name);
        for node in &self.cluster.nodes {
            node.admin(&format!("CREATE DATABASE {q}")).await?;
            Cluster::run(node, &self.name, "CREATE EXTENSION citus").await?;
        }
        let coordinator = &self.cluster.nodes[0];
        let mut sql = format!(
            "SELECT citus_set_coordinator_host('127.0.0.1', {});",
            Cluster::port(coordinator)?
        );
        for worker in &self.cluster.nodes[1..] {
            sql.push_str(&format!(
                "SELECT citus_add_node('127.0.0.1', {});",
                Cluster::port(worker)?
            ));
        }
        Cluster::run(coordinator, &self.name, &sql).await
    }

    /// The coordinator's URL of this database, as the superuser.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name (the same on every node).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URLs of this database on each worker, as the superuser (for checks of what the
    /// shards hold; applications connect to the coordinator).
    pub fn worker_urls(&self) -> Vec<String> {
        self.cluster.nodes[1..]
            .iter()
            .map(|node| node.url_for(&self.name))
            .collect()
    }

    fn url_as(&self, user: &str) -> Result<String> {
        super::url_with_user(&self.url, user, user)
    }

    /// The coordinator's URL of this database for [`APP_ROLE`] (subject to row-level
    /// security), created on every node if missing.
    pub async fn app_url(&self) -> Result<String> {
        self.cluster.ensure_role(APP_ROLE, "").await?;
        self.url_as(APP_ROLE)
    }

    /// The coordinator's URL of this database for [`PLATFORM_ROLE`] (BYPASSRLS), created on
    /// every node if missing.
    pub async fn platform_url(&self) -> Result<String> {
        self.cluster.ensure_role(PLATFORM_ROLE, "BYPASSRLS").await?;
        self.url_as(PLATFORM_ROLE)
    }

    /// A pool to this database on the coordinator, as the superuser.
    pub async fn connect(&self) -> Result<DatabaseConnection> {
        Database::connect(&self.url)
            .await
            .map_err(|e| Error::database(Operation::Connect, e))
    }
}

impl Drop for CitusDatabase {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "flakeguard-db: keeping Citus database {} of a failed test: {}",
                self.name, self.url
            );
            return;
        }
        let sql = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&self.name)
        );
        // On a thread of its own: a `Drop` may run inside the runtime, where waiting for the
        // lock would block it.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let _one_at_a_time = CHANGES.blocking_lock();
                for node in &self.cluster.nodes {
                    if let Err(e) = node.admin_blocking(&sql) {
                        eprintln!(
                            "flakeguard-db: could not drop Citus database {}: {e}",
                            self.name
                        );
                    }
                }
            });
        });
    }
}
