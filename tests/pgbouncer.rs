//! Isolation behind PgBouncer in transaction pooling mode: the workload of
//! `tests/concurrency.rs` (200 tasks, 50 organizations, deliberate failures and dropped
//! transactions) runs through a PgBouncer that hands each transaction whichever server
//! connection is free, and the same checks hold: no task sees or changes another organization's
//! row, every committed row is there at the end and every rolled-back one absent.
//!
//! The test starts its own PgBouncer (Debian: `apt-get install pgbouncer`) on a free port of
//! 127.0.0.1, in front of the test database's server (the throwaway PostgreSQL, or
//! DATABASE_URL's server, which PgBouncer must then reach over TCP; it logs in as the test's
//! application role with that role's password). Where the binary is missing the test says so
//! and passes without running.
//!
//! What the application must configure is in README.md, "Behind PgBouncer".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use flakeguard_db::sea_orm::sqlx::postgres::PgConnectOptions;
use flakeguard_db::sea_orm::{Database, DatabaseConnection};
use flakeguard_db::testing::{APP_ROLE, TestDatabase, free_port, running_as_root};
use support::workload::{self, Config};

/// Where PgBouncer is looked for, after `$PATH`.
const PGBOUNCER_PATHS: &[&str] = &["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"];

fn find_pgbouncer() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("pgbouncer"));
    on_path
        .chain(PGBOUNCER_PATHS.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

fn seed() -> u64 {
    std::env::var("FLAKEGUARD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

/// A PgBouncer of this test, stopped when dropped (also when the test panics).
///
/// It runs under a small shell whose standard input is a pipe from this process, as the
/// throwaway PostgreSQL does: when the pipe closes (on drop, or when the test process dies
/// however it dies) the shell stops PgBouncer. The directory (configuration, log) goes with
/// the guard.
struct PgBouncer {
    port: u16,
    /// PgBouncer's output (it logs to stderr when no logfile is set).
    log: PathBuf,
    lifeline: Option<ChildStdin>,
    child: Child,
    _dir: tempfile::TempDir,
}

/// `$@`: the command that runs PgBouncer. SIGTERM is PgBouncer's immediate shutdown (SIGINT
/// would wait for clients to leave).
const GUARD_SCRIPT: &str = r#"
"$@" &
pid=$!
cat >/dev/null
kill -TERM "$pid" 2>/dev/null
wait "$pid"
"#;

impl PgBouncer {
    /// Starts PgBouncer in transaction mode in front of `server` (host, port), for `database`,
    /// and waits until it accepts connections.
    async fn start(binary: &Path, server: &PgConnectOptions, database: &str) -> PgBouncer {
        let root = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("flakeguard-pgbouncer-")
            .tempdir()
            .unwrap();
        let port = free_port().unwrap();
        let log = dir.path().join("pgbouncer.log");
        // PgBouncer trusts its clients (as the throwaway server trusts 127.0.0.1); auth_file
        // lists the users it accepts, with the passwords it logs in to the server with, should
        // the server ask for one.
        std::fs::write(
            dir.path().join("userlist.txt"),
            format!("\"{APP_ROLE}\" \"{APP_ROLE}\"\n"),
        )
        .unwrap();
        let ini = format!(
            "[databases]
{database} = host={host} port={server_port} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {userlist}
pool_mode = transaction
; fewer server connections than the application's pool has: transactions of different
; client connections share server connections, which is the point of the test
default_pool_size = 4
max_client_conn = 100
; sqlx sends extra_float_digits at start-up; PgBouncer does not track it
ignore_startup_parameters = extra_float_digits
; sqlx names every statement it prepares (sqlx_s_1, ...) and, with its cache off, never
; closes them: drop them when a transaction gives its server connection back, or the next
; client to prepare sqlx_s_1 there fails with 42P05, already exists
server_reset_query = DEALLOCATE ALL
server_reset_query_always = 1
",
            host = server.get_host(),
            server_port = server.get_port(),
            userlist = dir.path().join("userlist.txt").display(),
        );
        let config = dir.path().join("pgbouncer.ini");
        std::fs::write(&config, ini).unwrap();

        let mut command = Command::new("sh");
        command.arg("-c").arg(GUARD_SCRIPT).arg("pgbouncer-guard");
        if root {
            // PgBouncer refuses to run as root; the directory must be the postgres user's.
            let status = Command::new("chown")
                .arg("-R")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown of {} failed", dir.path().display());
            command.args([
                "setpriv",
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ]);
        }
        command.arg(binary).arg(&config);
        let output = std::fs::File::create(&log).unwrap();
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap();
        let mut lifeline = child.stdin.take().unwrap();
        lifeline.flush().unwrap();
        let mut bouncer = PgBouncer {
            port,
            log,
            lifeline: Some(lifeline),
            child,
            _dir: dir,
        };
        bouncer.wait_until_ready().await;
        bouncer
    }

    async fn wait_until_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("pgbouncer exited ({status}): {}", self.log_tail());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "pgbouncer did not listen on port {} within 30s: {}",
                self.port,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// A URL of `database` through this PgBouncer, as the application role.
    fn url(&self, database: &str) -> String {
        format!(
            "postgres://{APP_ROLE}:{APP_ROLE}@127.0.0.1:{}/{database}",
            self.port
        )
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // Closing the pipe tells the shell to stop PgBouncer.
        drop(self.lifeline.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The application's pool through PgBouncer: 8 connections, and no statement cache (see
/// README.md, "Behind PgBouncer").
async fn app_pool(url: String) -> DatabaseConnection {
    let mut opts = flakeguard_db::connect_options(&url);
    opts.max_connections(8)
        .min_connections(1)
        .map_sqlx_postgres_opts(|o| o.statement_cache_capacity(0));
    Database::connect(opts).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_holds_behind_pgbouncer_in_transaction_mode() {
    let Some(binary) = find_pgbouncer() else {
        // Straight to stderr, past the test harness's capture, so that the skip shows.
        let _ = writeln!(
            std::io::stderr(),
            "tests/pgbouncer.rs: SKIPPED: PgBouncer is not installed (no pgbouncer on PATH or in \
             /usr/sbin); install it (Debian/Ubuntu: `apt-get install pgbouncer`) to run this test"
        );
        return;
    };
    let seed = seed();
    eprintln!("workload seed {seed} (replay with FLAKEGUARD_SEED={seed})");
    let db = TestDatabase::new().await.unwrap();
    // Creates the application role on the server.
    db.app_url().await.unwrap();
    let server: PgConnectOptions = db.url().parse().unwrap();
    let bouncer = PgBouncer::start(&binary, &server, db.name()).await;
    eprintln!(
        "pgbouncer {} on 127.0.0.1:{}",
        binary.display(),
        bouncer.port
    );

    let pool = app_pool(bouncer.url(db.name())).await;
    let orgs = workload::orgs(&pool, 50, "bouncer").await;
    let cfg = Config {
        tasks: 200,
        ops_per_task: 4,
        seed,
        drop_within_ms: 80,
    };
    let ledger = workload::run(&pool, &orgs, cfg, false).await;

    // The global tables' handle works through it too: each statement is a transaction.
    let global = flakeguard_db::GlobalTables::new(pool.clone());
    for i in 0..20 {
        let user = global
            .insert(flakeguard_db::entity::user::ActiveModel {
                email: flakeguard_db::sea_orm::Set(format!("bouncer-{i}@example.com")),
                ..Default::default()
            })
            .await
            .unwrap();
        let found = global
            .find_by_id::<flakeguard_db::entity::user::Entity, _>(user.id.clone())
            .await
            .unwrap();
        assert_eq!(found, Some(user));
    }
    pool.close().await.unwrap();

    // Audited as the superuser, directly on PostgreSQL.
    let admin = db.connect().await.unwrap();
    let violations = workload::violations(&admin, &ledger).await;
    eprintln!("through pgbouncer: {}", ledger.summary());
    assert!(
        violations.is_empty(),
        "seed {seed}: {violations:#?}\npgbouncer log:\n{}",
        bouncer.log_tail()
    );
    assert!(
        !ledger.committed.is_empty() && !ledger.absent.is_empty(),
        "seed {seed}: the mix did not exercise commits and rollbacks"
    );
}
