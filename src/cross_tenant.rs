//! [`CrossTenant`]: explicit access across organizations, for maintenance and platform reports.

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait};

use crate::error::{Context, Operation};
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
    db: DatabaseConnection,
}

impl CrossTenant {
    /// Connects to `url`, whose role must bypass row-level security.
    pub async fn connect(url: &str) -> Result<Self> {
        let db = crate::connect(url).await?;
        Self::new(db).await
    }

    /// Wraps an existing pool, after checking that its role bypasses row-level security.
    pub async fn new(db: DatabaseConnection) -> Result<Self> {
        // In a transaction, like every statement of the crate, to work behind PgBouncer.
        let tx = db
            .begin()
            .await
            .map_err(|e| Error::database(Operation::Connect, e))?;
        let row = tx
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT rolname::text AS name, (rolbypassrls OR rolsuper) AS bypass \
                 FROM pg_roles WHERE rolname = current_user",
            ))
            .await
            .map_err(|e| Error::database(Operation::Connect, e))?;
        tx.commit()
            .await
            .map_err(|e| Error::database(Operation::Connect, e))?;
        let (name, bypass) = match row {
            Some(r) => (
                r.try_get::<String>("", "name").unwrap_or_default(),
                r.try_get::<bool>("", "bypass").unwrap_or(false),
            ),
            None => (String::new(), false),
        };
        if !bypass {
            return Err(Error::Config(format!(
                "cross-tenant access needs a role with BYPASSRLS (or a superuser); \
                 role {name:?} is subject to row-level security and would see no rows"
            )));
        }
        Ok(CrossTenant { db })
    }

    /// The unrestricted connection: queries see every organization's rows.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// A scope for one organization on this connection: the crate's tenant predicate still
    /// applies, row-level security does not.
    pub fn scope(&self, org: OrgId) -> TenantScope {
        TenantScope::new(self.db.clone(), org)
    }

    /// The ids of every organization.
    pub async fn organization_ids(&self) -> Result<Vec<OrgId>> {
        let fail = |e| Error::Database {
            context: Context {
                operation: Operation::Find,
                tenant: None,
                table: Some("Organization"),
            },
            source: e,
        };
        let tx = self.db.begin().await.map_err(fail)?;
        let rows = tx
            .query_all_raw(Statement::from_string(
                self.db.get_database_backend(),
                r#"SELECT id FROM "Organization" ORDER BY id"#,
            ))
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        rows.iter()
            .map(|r| {
                let id: String = r
                    .try_get("", "id")
                    .map_err(|e| Error::database(Operation::Find, e))?;
                OrgId::new(id)
            })
            .collect()
    }
}
