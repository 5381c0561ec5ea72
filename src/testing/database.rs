//! [`TestDatabase`]: a fresh, migrated database per test, copied from a template that is
//! migrated once per process.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sea_orm::{Database, DatabaseConnection};

use super::server::{Server, server};
use super::{APP_ROLE, PLATFORM_ROLE, fresh_name, lock, quote_ident};
use crate::{Error, Operation, Result};
use flakeguard_migration::{Migrator, MigratorTrait};

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

    /// The URL of the server's maintenance database (`postgres`) as its administrative user,
    /// for work beyond this database (creating another database or a role). For this database
    /// as another role, use [`TestDatabase::url_as`].
    pub fn server_url(&self) -> &str {
        &self.server.base_url
    }

    /// The URL of this database for another user and password.
    pub fn url_as(&self, user: &str, password: &str) -> Result<String> {
        super::url_with_user(&self.url, user, password)
    }

    /// The URL of this database for [`APP_ROLE`]: a LOGIN role that is a member of
    /// `flakeguard_app`, neither superuser nor owner, so row-level security applies to it.
    /// The role is created on the server if missing.
    pub async fn app_url(&self) -> Result<String> {
        self.server.ensure_role(APP_ROLE, "").await?;
        self.url_as(APP_ROLE, APP_ROLE)
    }

    /// A pool connected as [`APP_ROLE`], subject to row-level security: what an application
    /// should use. It has the pool options of [`connect`](crate::connect)
    /// ([`connect_options`](crate::connect_options)), so that code under test meets the pool
    /// it meets in production.
    pub async fn connect_as_app(&self) -> Result<DatabaseConnection> {
        let url = self.app_url().await?;
        Database::connect(crate::connect_options(&url))
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
