//! A throwaway PostgreSQL for tests and examples (feature `testing`).
//!
//! [`TestDatabase::new`] gives a fresh, fully migrated database and its URL; the database is
//! removed when the value is dropped.
//!
//! - With `DATABASE_URL` set, the databases are created on that server (the URL's user must be
//!   allowed to `CREATE DATABASE`; a superuser is simplest).
//! - Without it, the first call starts a private server from the machine's PostgreSQL binaries
//!   in a temporary directory, on a free port of 127.0.0.1. It is shared by every test of the
//!   process and stopped, with its directory removed, when the process exits, however it exits.
//!   When the process runs as root, the server runs as the `postgres` OS user (`initdb` and
//!   `postgres` refuse root). When the binaries are missing the error says what to install.
//!
//! Migrations run once per process into a template database; each [`TestDatabase`] is a copy of
//! it (`CREATE DATABASE ... TEMPLATE ...`), which keeps a suite fast on small machines.
//!
//! A database whose test panicked is kept (its name is printed) so that it can be inspected.
//!
//! [`TestDatabase::restart_server`] stops the throwaway server and starts it again on the same
//! port and data directory, for tests of what happens when the database goes away.
//!
//! ```no_run
//! # async fn demo() -> flakeguard_db::Result<()> {
//! let db = flakeguard_db::testing::TestDatabase::new().await?;
//! let conn = db.connect().await?;
//! // ... use `conn`, or hand `db.url()` to the code under test ...
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! Crates that start a temporary server exist, but none fits this machine's constraints: they
//! download binaries (no network here), or require `sudo` to leave root and panic on every
//! failure. What is written here is the part no crate does: find the installed binaries, drop
//! root through `setpriv`, and tie the server's life to the test process. That tie is a small
//! shell supervisor whose standard input is a pipe from this process: when the process ends for
//! any reason the pipe closes, and the supervisor stops the server and deletes its directory.
//! A `static` server could not do this itself, since statics are never dropped. The same pipe
//! carries the one command the supervisor knows, `restart`, which it acknowledges on its
//! standard output.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tokio::sync::OnceCell;

use crate::{Error, Operation, Result};
use flakeguard_migration::{Migrator, MigratorTrait};

/// The application role of tests: LOGIN, member of `flakeguard_app`, password = name.
pub const APP_ROLE: &str = "flakeguard_test_app";

/// The cross-tenant role of tests: LOGIN, BYPASSRLS, member of `flakeguard_app`,
/// password = name.
pub const PLATFORM_ROLE: &str = "flakeguard_test_platform";

/// How long a throwaway server may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the supervisor may take to stop the server and start it again.
const RESTART_TIMEOUT: Duration = Duration::from_secs(60);

/// A fresh database on a PostgreSQL server, dropped when this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    server: Arc<Server>,
    /// Keeps the template alive while copies of it are in use.
    _template: Option<Arc<Template>>,
}

impl TestDatabase {
    /// A fresh database with every migration applied.
    pub async fn new() -> Result<Self> {
        let server = server().await?;
        let template = Template::get(&server).await?;
        let name = fresh_name("flakeguard_test");
        server
            .admin(&format!(
                "CREATE DATABASE {} TEMPLATE {}",
                quote_ident(&name),
                quote_ident(&template.name)
            ))
            .await?;
        Ok(Self::with(server, name, Some(template)))
    }

    /// A fresh, empty database with no migration applied (for tests of the migrations).
    pub async fn empty() -> Result<Self> {
        let server = server().await?;
        let name = fresh_name("flakeguard_test");
        server
            .admin(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .await?;
        Ok(Self::with(server, name, None))
    }

    fn with(server: Arc<Server>, name: String, template: Option<Arc<Template>>) -> Self {
        let url = server.url_for(&name);
        TestDatabase {
            name,
            url,
            server,
            _template: template,
        }
    }

    /// The database's URL, for example `postgres://postgres@127.0.0.1:5432/flakeguard_test_x`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of the same server with another database name (for example to connect as
    /// another role, use [`TestDatabase::url_as`]).
    pub fn server_url(&self) -> &str {
        &self.server.base_url
    }

    /// The URL of this database for another user and password.
    pub fn url_as(&self, user: &str, password: &str) -> Result<String> {
        let mut url = url::Url::parse(&self.url)
            .map_err(|e| Error::Config(format!("database URL does not parse: {e}")))?;
        url.set_username(user)
            .and_then(|()| url.set_password(Some(password)))
            .map_err(|()| Error::Config("database URL cannot carry a user".to_owned()))?;
        Ok(url.into())
    }

    /// The URL of this database for [`APP_ROLE`]: a LOGIN role that is a member of
    /// `flakeguard_app`, neither superuser nor owner, so row-level security applies to it.
    /// The role is created on the server if missing.
    pub async fn app_url(&self) -> Result<String> {
        self.server.ensure_role(APP_ROLE, "").await?;
        self.url_as(APP_ROLE, APP_ROLE)
    }

    /// A pool connected as [`APP_ROLE`], subject to row-level security: what an application
    /// should use.
    pub async fn connect_as_app(&self) -> Result<DatabaseConnection> {
        let url = self.app_url().await?;
        Database::connect(&url)
            .await
            .map_err(|e| Error::database(Operation::Connect, e))
    }

    /// The URL of this database for [`PLATFORM_ROLE`]: a LOGIN role with BYPASSRLS, for
    /// [`CrossTenant`](crate::CrossTenant). Created on the server if missing.
    pub async fn platform_url(&self) -> Result<String> {
        self.server.ensure_role(PLATFORM_ROLE, "BYPASSRLS").await?;
        self.url_as(PLATFORM_ROLE, PLATFORM_ROLE)
    }

    /// Opens a connection pool to this database as the server's administrative user (a
    /// superuser for the throwaway server): row-level security does not apply to it.
    pub async fn connect(&self) -> Result<DatabaseConnection> {
        Database::connect(&self.url)
            .await
            .map_err(|e| Error::database(Operation::Connect, e))
    }

    /// Restarts the throwaway server: stops it (a fast shutdown: open connections are
    /// terminated, committed transactions are written out by the shutdown checkpoint), starts it
    /// again on the same port and data directory, and returns once it accepts connections.
    /// Every database survives, with its rows; every open connection, of any pool, is broken.
    ///
    /// The server is shared by every test of the process, so a test that restarts it belongs
    /// in a test binary (a file of `tests/`) of its own.
    ///
    /// Returns [`Error::Config`] when `DATABASE_URL` is set: the server is someone else's.
    ///
    /// ```no_run
    /// # async fn demo() -> flakeguard_db::Result<()> {
    /// let db = flakeguard_db::testing::TestDatabase::new().await?;
    /// let pool = db.connect_as_app().await?;
    /// // ... operations in flight on `pool` fail while the server is down ...
    /// db.restart_server().await?;
    /// // ... and `pool` serves new ones again, on fresh connections.
    /// # Ok(()) }
    /// ```
    pub async fn restart_server(&self) -> Result<()> {
        if self.server.supervisor.is_none() {
            return Err(Error::Config(
                "cannot restart the server of DATABASE_URL; restart_server works on the \
                 throwaway server only (unset DATABASE_URL)"
                    .to_owned(),
            ));
        }
        let server = Arc::clone(&self.server);
        let exchange = tokio::task::spawn_blocking(move || match &server.supervisor {
            Some(supervisor) => supervisor.restart(),
            None => Ok(()),
        });
        match tokio::time::timeout(RESTART_TIMEOUT, exchange).await {
            Ok(Ok(result)) => result?,
            Ok(Err(e)) => {
                return Err(Error::TestServer {
                    message: format!("server restart task failed: {e}"),
                    source: None,
                });
            }
            Err(_) => {
                return Err(Error::TestServer {
                    message: format!(
                        "the supervisor did not restart the server within {}s",
                        RESTART_TIMEOUT.as_secs()
                    ),
                    source: None,
                });
            }
        }
        self.server.wait_until_ready().await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "flakeguard-db: keeping database {} of a failed test: {}",
                self.name, self.url
            );
            return;
        }
        let sql = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&self.name)
        );
        if let Err(e) = self.server.admin_blocking(&sql) {
            eprintln!(
                "flakeguard-db: could not drop test database {}: {e}",
                self.name
            );
        }
    }
}

/// The database of an example program: with DATABASE_URL set, that database, migrated (the
/// URL's role must be allowed to migrate); otherwise a throwaway one, connected as [`APP_ROLE`]
/// so that row-level security applies. Prints which. Keep the returned [`TestDatabase`] alive
/// while the connection is in use: dropping it removes the throwaway database.
pub async fn connect_example() -> Result<(DatabaseConnection, Option<TestDatabase>)> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => {
            println!("using DATABASE_URL");
            let db = crate::connect(url.trim()).await?;
            crate::migrate(&db).await?;
            println!("schema migrated");
            Ok((db, None))
        }
        _ => {
            println!("starting a throwaway PostgreSQL (set DATABASE_URL to use your own server)");
            let tmp = TestDatabase::new().await?;
            println!("  database {} migrated", tmp.name());
            let db = tmp.connect_as_app().await?;
            println!("  connected as {APP_ROLE}, a member of flakeguard_app");
            Ok((db, Some(tmp)))
        }
    }
}

/// A migrated database that fresh test databases are copied from.
#[derive(Debug)]
struct Template {
    name: String,
    server: Arc<Server>,
}

/// The template of this process, while any test database made from it is alive.
static TEMPLATE: Mutex<Weak<Template>> = Mutex::new(Weak::new());
/// Serializes template creation, so that concurrent tests migrate only once.
static TEMPLATE_INIT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Template {
    async fn get(server: &Arc<Server>) -> Result<Arc<Template>> {
        let _guard = TEMPLATE_INIT.lock().await;
        if let Some(t) = lock(&TEMPLATE).upgrade() {
            return Ok(t);
        }
        let name = fresh_name("flakeguard_template");
        server
            .admin(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .await?;
        let template = Arc::new(Template {
            name,
            server: Arc::clone(server),
        });
        let url = server.url_for(&template.name);
        let conn = Database::connect(&url)
            .await
            .map_err(|e| Error::database(Operation::Connect, e))?;
        let migrated = Migrator::up(&conn, None).await;
        // No copy can be made while a connection to the template is open.
        let closed = conn.close().await;
        migrated.map_err(|e| Error::database(Operation::Migrate, e))?;
        closed.map_err(|e| Error::database(Operation::Admin, e))?;
        *lock(&TEMPLATE) = Arc::downgrade(&template);
        Ok(template)
    }
}

impl Drop for Template {
    fn drop(&mut self) {
        let sql = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&self.name)
        );
        if let Err(e) = self.server.admin_blocking(&sql) {
            eprintln!("flakeguard-db: could not drop template {}: {e}", self.name);
        }
    }
}

/// A PostgreSQL server: the one in DATABASE_URL or a private throwaway one.
#[derive(Debug)]
struct Server {
    /// URL of the server's maintenance database, as a superuser (or a user with CREATEDB).
    base_url: String,
    /// The supervisor of a throwaway server; `None` for DATABASE_URL.
    supervisor: Option<Supervisor>,
}

static SERVER: OnceCell<Arc<Server>> = OnceCell::const_new();

async fn server() -> Result<Arc<Server>> {
    SERVER
        .get_or_try_init(|| async {
            match std::env::var("DATABASE_URL") {
                Ok(url) if !url.trim().is_empty() => Ok(Arc::new(Server {
                    base_url: url.trim().to_owned(),
                    supervisor: None,
                })),
                _ => {
                    let supervisor = tokio::task::spawn_blocking(Supervisor::start)
                        .await
                        .map_err(|e| Error::TestServer {
                            message: format!("server start-up task failed: {e}"),
                            source: None,
                        })??;
                    let server = Arc::new(Server {
                        base_url: supervisor.url.clone(),
                        supervisor: Some(supervisor),
                    });
                    server.wait_until_ready().await?;
                    Ok(server)
                }
            }
        })
        .await
        .cloned()
}

impl Server {
    fn url_for(&self, database: &str) -> String {
        match url::Url::parse(&self.base_url) {
            Ok(mut url) => {
                url.set_path(&format!("/{database}"));
                url.into()
            }
            // An unparsable DATABASE_URL fails at the first connection with the driver's message.
            Err(_) => self.base_url.clone(),
        }
    }

    /// Runs one statement on the server's maintenance database.
    async fn admin(&self, sql: &str) -> Result<()> {
        let conn = Database::connect(&self.base_url)
            .await
            .map_err(|e| Error::database(Operation::Connect, e))?;
        let result = conn.execute_unprepared(sql).await;
        let _ = conn.close().await;
        result
            .map(|_| ())
            .map_err(|e| Error::database(Operation::Admin, e))
    }

    /// Creates a LOGIN role (password = name) in `flakeguard_app` unless it exists. Roles are
    /// shared by the server's databases, and concurrent tests may race to create one.
    async fn ensure_role(&self, role: &str, attributes: &str) -> Result<()> {
        let sql = format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'flakeguard_app') THEN
                 CREATE ROLE flakeguard_app NOLOGIN;
               END IF;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                 CREATE ROLE {role} LOGIN PASSWORD '{role}' {attributes} IN ROLE flakeguard_app;
               END IF;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;"
        );
        self.admin(&sql).await
    }

    /// [`Server::admin`] from synchronous code (a `Drop`), on a thread of its own.
    fn admin_blocking(&self, sql: &str) -> Result<()> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| Error::TestServer {
                            message: "cannot build a runtime for clean-up".to_owned(),
                            source: Some(e),
                        })?;
                    rt.block_on(self.admin(sql))
                })
                .join()
                .unwrap_or_else(|_| {
                    Err(Error::TestServer {
                        message: "clean-up thread panicked".to_owned(),
                        source: None,
                    })
                })
        })
    }

    async fn wait_until_ready(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            match Database::connect(&self.base_url).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    return Ok(());
                }
                Err(e) if started.elapsed() > STARTUP_TIMEOUT => {
                    let log = self
                        .supervisor
                        .as_ref()
                        .and_then(|s| std::fs::read_to_string(&s.log).ok())
                        .unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(10).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    return Err(Error::TestServer {
                        message: format!(
                            "server did not accept connections within {}s: {e}; server log: {}",
                            STARTUP_TIMEOUT.as_secs(),
                            tail.join(" | ")
                        ),
                        source: None,
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

/// A throwaway server under its shell supervisor.
#[derive(Debug)]
struct Supervisor {
    url: String,
    /// The server's log file, quoted in start-up errors.
    log: PathBuf,
    /// The supervisor's pipes. Its standard input is the lifeline: closing it (at process exit)
    /// stops the server. A `restart` line sent on it is acknowledged on its standard output.
    pipes: Mutex<SupervisorPipes>,
    _child: Child,
}

#[derive(Debug)]
struct SupervisorPipes {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// Starts initdb and postgres, then reads commands on stdin until this process's end (EOF) to
/// stop the server and remove the directory. The one command is `restart`: stop postgres (fast
/// shutdown, which ends with a checkpoint) and start it again on the same port and data
/// directory, then print `restarted PID`. Arguments: $1 directory, $2 bin dir, $3 port, $4
/// "root" if the server must run as the postgres OS user.
///
/// SIGPIPE is ignored so that an acknowledgement written after this process died cannot kill
/// the supervisor before it has cleaned up.
const SUPERVISOR_SCRIPT: &str = r#"
dir=$1; bin=$2; port=$3; as=
trap '' PIPE
if [ "$4" = root ]; then
  chown -R postgres: "$dir"
  as="setpriv --reuid=postgres --regid=postgres --init-groups --"
fi
if ! $as "$bin/initdb" -D "$dir/data" -U postgres -A trust -N -E UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
  echo "failed: initdb: $(tail -n 20 "$dir/initdb.log" | tr '\n' ' ')"
  rm -rf "$dir"
  exit 1
fi
start() {
  $as "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 \
    >>"$dir/server.log" 2>&1 &
  pid=$!
}
start
echo "started $pid"
while read -r command; do
  case "$command" in
    restart)
      kill -INT "$pid" 2>/dev/null
      wait "$pid"
      start
      echo "restarted $pid"
      ;;
    *)
      echo "unknown command: $command"
      ;;
  esac
done
kill -INT "$pid" 2>/dev/null
wait "$pid"
rm -rf "$dir"
"#;

impl Supervisor {
    fn start() -> Result<Supervisor> {
        let bin = find_binaries()?;
        let root = running_as_root();
        if root && !user_exists("postgres") {
            return Err(Error::TestServer {
                message: "running as root, and there is no `postgres` OS user to run the server \
                          as; create one (`useradd postgres`) or set DATABASE_URL"
                    .to_owned(),
                source: None,
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("flakeguard-pg-")
            .tempdir()
            .map_err(|e| io_error("cannot create a temporary directory", e))?
            // The supervisor removes it, after the server has stopped.
            .keep();
        let port = free_port()?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR_SCRIPT)
            .arg("flakeguard-pg")
            .arg(&dir)
            .arg(&bin)
            .arg(port.to_string())
            .arg(if root { "root" } else { "user" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io_error("cannot run sh to supervise the server", e))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::TestServer {
                message: "supervisor has no pipes".to_owned(),
                source: None,
            });
        };
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .map_err(|e| io_error("cannot read from the supervisor", e))?;
        if !line.starts_with("started") {
            let _ = child.wait();
            return Err(Error::TestServer {
                message: format!(
                    "could not initialize a cluster with {}: {}",
                    bin.display(),
                    line.trim()
                ),
                source: None,
            });
        }
        let mut stdin = stdin;
        // A flush proves the pipe is open.
        stdin
            .flush()
            .map_err(|e| io_error("supervisor pipe closed", e))?;
        Ok(Supervisor {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            log: dir.join("server.log"),
            pipes: Mutex::new(SupervisorPipes { stdin, stdout }),
            _child: child,
        })
    }

    /// Asks the supervisor to restart the server and waits for its acknowledgement (not for
    /// the server to accept connections). Blocking: call it off the async runtime.
    fn restart(&self) -> Result<()> {
        // One exchange at a time: concurrent restarts run one after the other.
        let mut pipes = lock(&self.pipes);
        pipes
            .stdin
            .write_all(b"restart\n")
            .and_then(|()| pipes.stdin.flush())
            .map_err(|e| io_error("cannot send restart to the supervisor", e))?;
        let mut line = String::new();
        let read = pipes
            .stdout
            .read_line(&mut line)
            .map_err(|e| io_error("cannot read the supervisor's reply", e))?;
        if read == 0 || !line.starts_with("restarted") {
            return Err(Error::TestServer {
                message: format!(
                    "the supervisor did not restart the server (it answered {:?})",
                    line.trim()
                ),
                source: None,
            });
        }
        Ok(())
    }
}

/// Finds a directory holding both `initdb` and `postgres`.
///
/// Order: `$PG_BIN_DIR`, `pg_config --bindir`, the newest `/usr/lib/postgresql/*/bin`, `$PATH`.
fn find_binaries() -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        candidates.push(dir.into());
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        candidates.push(String::from_utf8_lossy(&out.stdout).trim().into());
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                Some((v, e.path().join("bin")))
            })
            .collect();
        versions.sort_by_key(|v| std::cmp::Reverse(v.0));
        candidates.extend(versions.into_iter().map(|(_, p)| p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    first_with_binaries(candidates)
}

/// The first directory of `candidates` holding both `initdb` and `postgres`, or the error that
/// says what to install.
fn first_with_binaries(candidates: Vec<PathBuf>) -> Result<PathBuf> {
    candidates
        .iter()
        .find(|dir| is_file(&dir.join("initdb")) && is_file(&dir.join("postgres")))
        .cloned()
        .ok_or(Error::PostgresNotFound {
            searched: candidates,
        })
}

fn is_file(path: &Path) -> bool {
    path.metadata().map(|m| m.is_file()).unwrap_or(false)
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A port of 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| io_error("cannot find a free port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| io_error("cannot find a free port", e))
}

fn io_error(message: &str, source: std::io::Error) -> Error {
    Error::TestServer {
        message: message.to_owned(),
        source: Some(source),
    }
}

/// A database name no other test (in this or another process) will pick.
fn fresh_name(prefix: &str) -> String {
    format!("{prefix}_{}", flakeguard_entity::stamps::new_id())
}

/// Quotes an identifier for PostgreSQL.
fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another test panicked; the value is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_say_what_to_install_or_to_set_database_url() {
        let empty = tempfile::tempdir().unwrap();
        let err = first_with_binaries(vec![empty.path().to_owned()]).unwrap_err();
        assert!(matches!(err, Error::PostgresNotFound { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("apt-get install postgresql"), "{text}");
        assert!(text.contains("DATABASE_URL"), "{text}");
        assert!(text.contains(&empty.path().display().to_string()), "{text}");

        for bin in ["initdb", "postgres"] {
            std::fs::write(empty.path().join(bin), "").unwrap();
        }
        assert_eq!(
            first_with_binaries(vec![empty.path().to_owned()]).unwrap(),
            empty.path()
        );
    }
}
