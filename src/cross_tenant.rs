//! [`CrossTenant`]: explicit access across organizations, for maintenance and platform reports.

use futures_util::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, ExecResult, QueryResult, Statement};

use crate::error::{Context, Operation};
use crate::tx::{Pool, Tx};
use crate::{Error, OrgId, Result, TenantScope};

/// Access to every organization's rows at once, for maintenance and platform reports.
///
/// **Not for request handling.** It is built only from its own, separately configured
/// connection, whose role bypasses row-level security (`BYPASSRLS`, or a superuser), and it
/// checks that when it connects: a connection of the application's role would silently see
/// nothing. Nothing in this crate hands one out by default.
///
/// ```sql
/// -- once, as a superuser: a role for platform jobs, kept apart from the application's role
/// CREATE ROLE flakeguard_platform LOGIN PASSWORD '...' BYPASSRLS IN ROLE flakeguard_app;
/// ```
///
/// ```no_run
/// # async fn f() -> flakeguard_db::Result<()> {
/// use flakeguard_db::CrossTenant;
/// use flakeguard_db::entity::organization;
/// use flakeguard_db::sea_orm::EntityTrait;
///
/// let platform = CrossTenant::connect("postgres://flakeguard_platform:...@db/flakeguard").await?;
/// let every_org = organization::Entity::find().all(platform.connection()).await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CrossTenant {
    db: Pool,
}

impl CrossTenant {
    /// Connects to `url`, whose role must bypass row-level security.
    pub async fn connect(url: &str) -> Result<Self> {
        let db = crate::connect(url).await?;
        Self::new(db.unscoped_connection().clone()).await
    }

    /// Wraps an existing pool, after checking that its role bypasses row-level security.
    pub async fn new(db: DatabaseConnection) -> Result<Self> {
        let handle = CrossTenant { db: Pool::new(db) };
        let ctx = Context::new(Operation::Connect);
        let row = handle
            .run(ctx.clone(), |tx| {
                tx.query_one_raw(Statement::from_string(
                    tx.get_database_backend(),
                    "SELECT rolname::text AS name, (rolbypassrls OR rolsuper) AS bypass \
                     FROM pg_roles WHERE rolname = current_user",
                ))
            })
            .await?
            .ok_or_else(|| {
                Error::Config(
                    "the connection's role (current_user) is missing from pg_roles".to_owned(),
                )
            })?;
        let decode = |e| Error::from_db(ctx.clone(), e);
        let name: String = row.try_get("", "name").map_err(decode)?;
        let bypass: bool = row.try_get("", "bypass").map_err(decode)?;
        if !bypass {
            return Err(Error::Config(format!(
                "cross-tenant access needs a role with BYPASSRLS (or a superuser); \
                 role {name:?} is subject to row-level security and would see no rows"
            )));
        }
        Ok(handle)
    }

    /// Runs `f` in a transaction of its own (as every statement of the crate, so that it works
    /// behind PgBouncer), with driver errors mapped to `ctx`.
    async fn run<T, F>(&self, ctx: Context, f: F) -> Result<T>
    where
        F: for<'c> FnOnce(&'c Tx) -> BoxFuture<'c, Result<T, DbErr>>,
    {
        crate::db::in_transaction(&self.db, &ctx, f).await
    }

    /// The unrestricted connection: queries see every organization's rows.
    pub fn connection(&self) -> &DatabaseConnection {
        self.db.orm()
    }

    /// A scope for one organization on this connection: the crate's tenant predicate still
    /// applies, row-level security does not.
    pub fn scope(&self, org: OrgId) -> TenantScope {
        TenantScope::on(self.db.clone(), org)
    }

    /// Runs a raw query across every organization's rows, in a transaction of its own.
    pub async fn query_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>> {
        self.run(Context::new(Operation::Raw), |tx| tx.query_all_raw(stmt))
            .await
    }

    /// Executes a raw statement across every organization's rows, in a transaction of its own.
    pub async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult> {
        self.run(Context::new(Operation::Raw), |tx| tx.execute_raw(stmt))
            .await
    }

    /// The ids of every organization.
    pub async fn organization_ids(&self) -> Result<Vec<OrgId>> {
        let ctx = Context {
            operation: Operation::Find,
            tenant: None,
            table: Some("Organization"),
        };
        let rows = self
            .run(ctx.clone(), |tx| {
                tx.query_all_raw(Statement::from_string(
                    tx.get_database_backend(),
                    r#"SELECT id FROM "Organization" ORDER BY id"#,
                ))
            })
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = r
                    .try_get("", "id")
                    .map_err(|e| Error::from_db(ctx.clone(), e))?;
                OrgId::new(id)
            })
            .collect()
    }
}
