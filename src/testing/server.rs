//! The PostgreSQL server test databases live on: DATABASE_URL's, or a throwaway one started
//! from the machine's binaries under a [`Supervisor`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database};
use tokio::sync::OnceCell;

use super::supervisor::Supervisor;
use crate::{Error, Operation, Result};

/// How long a throwaway server may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A PostgreSQL server: the one in DATABASE_URL or a private throwaway one.
#[derive(Debug)]
pub(crate) struct Server {
    /// URL of the server's maintenance database, as a superuser (or a user with CREATEDB).
    pub(crate) base_url: String,
    /// The supervisor of a throwaway server; `None` for DATABASE_URL.
    pub(crate) supervisor: Option<Supervisor>,
}

static SERVER: OnceCell<Arc<Server>> = OnceCell::const_new();

pub(crate) async fn server() -> Result<Arc<Server>> {
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
    pub(crate) fn url_for(&self, database: &str) -> String {
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
    pub(crate) async fn admin(&self, sql: &str) -> Result<()> {
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
    pub(crate) async fn ensure_role(&self, role: &str, attributes: &str) -> Result<()> {
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
    pub(crate) fn admin_blocking(&self, sql: &str) -> Result<()> {
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

    pub(crate) async fn wait_until_ready(&self) -> Result<()> {
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

/// Finds a directory holding both `initdb` and `postgres`.
///
/// Order: `$PG_BIN_DIR`, `pg_config --bindir`, the newest `/usr/lib/postgresql/*/bin`, `$PATH`.
pub(crate) fn find_binaries() -> Result<PathBuf> {
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
pub(crate) fn first_with_binaries(candidates: Vec<PathBuf>) -> Result<PathBuf> {
    candidates
        .iter()
        .find(|dir| is_file(&dir.join("initdb")) && is_file(&dir.join("postgres")))
        .cloned()
        .ok_or(Error::PostgresNotFound {
            searched: candidates,
        })
}

pub(crate) fn is_file(path: &Path) -> bool {
    path.metadata().map(|m| m.is_file()).unwrap_or(false)
}

pub(crate) fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
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
