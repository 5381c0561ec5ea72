//! `isolate-tenant`: gives one organization of a distributed database a shard of its own, and
//! moves that shard to another worker.
//!
//! An organization whose rows outgrow the shard it shares with others is split off with Citus's
//! `isolate_tenant_to_new_shard` (every co-located table at once, `CASCADE`): its shard group
//! then holds that organization alone. `citus_move_shard_placement` then moves the group to the
//! worker named, or to the one holding the fewest bytes of distributed shards. Both run while the
//! application runs: reads go on throughout; writes to the shards being split or copied (the
//! tenant's, and those of the tenants that shared its shard) wait until the copy is done, then
//! go on. Nothing is refused to the application: a transaction caught in a lock cycle with the
//! copy is ended by Citus's deadlock detection, a retriable error (SQLSTATE 40P01).
//!
//! # Design
//!
//! Citus can copy a shard in two ways: by logical replication, which blocks writes only for the
//! final switch, or by `COPY` with writes blocked (`shard_transfer_mode => 'block_writes'`).
//! This command uses the second. Citus's logical replication applies the rows as a role of its
//! own, neither superuser nor `BYPASSRLS`, and PostgreSQL refuses that on a table with FORCE ROW
//! LEVEL SECURITY, which every tenant table has (migration step 7): checked on this schema, the
//! apply worker fails on the first row ("cannot replicate into relation with row-level security
//! enabled"), retries, and the split waits for it (40 minutes, until stopped). Citus's own default mode (`auto`) picks logical
//! replication for tables with primary keys, so a shard move or rebalance started by hand must
//! name `block_writes` too.
//!
//! Everything that can refuse is checked before anything changes: a distributed database, the
//! coordinator, an organization that exists, a target that is an active worker. Each of Citus's
//! two calls is atomic (a failed split or move leaves the old shard in place and
//! queues its leftovers for Citus's own clean-up), so a run that fails after the split leaves a
//! valid database with the tenant isolated on its old worker; running again with the target
//! moves it. A run that finds the tenant already alone, and on the target if one is given, does
//! nothing and says so. The whole command holds the migration lock, so that it never runs
//! beside `up` or `distribute`.

use std::fmt;

use sea_orm_migration::sea_orm::{
    ConnectionTrait, DatabaseConnection, DbErr, QueryResult, Statement, Value,
};

use crate::distribute::{is_coordinator, is_distributed};
use crate::runner::{MigrateError, MigrationLock};

/// A node of the cluster, as Citus names it (`pg_dist_node`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Node {
    /// The host name the coordinator reaches it by.
    pub host: String,
    /// Its port.
    pub port: u16,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl std::str::FromStr for Node {
    type Err = String;

    /// `host:port`, as the coordinator knows the worker.
    fn from_str(s: &str) -> Result<Node, String> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} is not HOST:PORT"))?;
        let port = port
            .parse()
            .map_err(|_| format!("{port:?} in {s:?} is not a port number"))?;
        if host.is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        Ok(Node {
            host: host.to_owned(),
            port,
        })
    }
}

/// What one run of [`isolate_tenant`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantMove {
    /// The tenant's shard of the co-location group's first table, after the run; its
    /// co-located shards (every tenant table) moved with it.
    pub shard_id: i64,
    /// The worker that held the tenant before the run.
    pub from: Node,
    /// The worker that holds it after the run.
    pub to: Node,
    /// Each change made, in order, for a person to read. Empty when there was nothing to do.
    pub actions: Vec<String>,
}

impl TenantMove {
    /// Whether the run found nothing left to do.
    pub fn nothing_to_do(&self) -> bool {
        self.actions.is_empty()
    }
}

/// The tenant's shard as the coordinator records it.
#[derive(Debug)]
struct Placement {
    shard_id: i64,
    alone: bool,
    node: Node,
}

/// Gives organization `org_id` a shard group of its own and moves it to worker `to`, or, when
/// `to` is `None`, to the worker holding the fewest bytes of distributed shards (see the
/// module documentation). Run it on the coordinator, as the database owner or a superuser,
/// while the application runs.
///
/// Refuses, changing nothing, on a database that is not distributed, on a node other than the
/// coordinator, for an organization that does not exist, and for a `to` that is not an active
/// worker. Without `to`, a tenant that already has a shard of its own is left where it is.
pub async fn isolate_tenant(
    db: &DatabaseConnection,
    org_id: &str,
    to: Option<&Node>,
) -> Result<TenantMove, MigrateError> {
    refuse_unless_distributed(db).await?;
    let lock = MigrationLock::acquire(db).await?;
    let result = isolate_locked(db, org_id, to).await;
    lock.release().await;
    result
}

fn refuse(reason: impl Into<String>) -> MigrateError {
    MigrateError::Isolate(reason.into())
}

async fn refuse_unless_distributed(db: &DatabaseConnection) -> Result<(), MigrateError> {
    if !is_distributed(db).await? {
        return Err(refuse(
            "the database is not distributed on Citus (run `flakeguard-migration distribute` \
             on the coordinator first)",
        ));
    }
    if !is_coordinator(db).await? {
        return Err(refuse(
            "this node is not the Citus coordinator; connect to the coordinator",
        ));
    }
    Ok(())
}

async fn isolate_locked(
    db: &DatabaseConnection,
    org_id: &str,
    to: Option<&Node>,
) -> Result<TenantMove, MigrateError> {
    let known = query(
        db,
        "look the organization up",
        r#"SELECT count(*) AS n FROM "Organization" WHERE id = $1"#,
        vec![org_id.into()],
    )
    .await?;
    if count(&known, "look the organization up")? == 0 {
        return Err(refuse(format!("there is no organization {org_id:?}")));
    }
    let anchor = anchor_table(db).await?;
    let before = placement(db, &anchor, org_id).await?;
    let workers = workers(db).await?;
    let target = match to {
        Some(node) if !workers.iter().any(|(w, _)| w == node) => {
            let names: Vec<String> = workers.iter().map(|(w, _)| w.to_string()).collect();
            return Err(refuse(format!(
                "{node} is not an active worker of this cluster (workers: {})",
                names.join(", ")
            )));
        }
        Some(node) => Some(node.clone()),
        None if before.alone => None,
        // The least loaded worker but the tenant's own; none when there is no other.
        None => workers
            .iter()
            .filter(|(w, _)| *w != before.node)
            .min_by_key(|(w, bytes)| (*bytes, w.to_string()))
            .map(|(w, _)| w.clone()),
    };
    let split = !before.alone;
    let target = target.filter(|t| *t != before.node);

    let mut out = TenantMove {
        shard_id: before.shard_id,
        from: before.node.clone(),
        to: before.node.clone(),
        actions: Vec::new(),
    };
    if split {
        query(
            db,
            "isolate the tenant",
            "SELECT isolate_tenant_to_new_shard($1::regclass, $2::text, 'CASCADE', \
             shard_transfer_mode => 'block_writes')::int8 AS n",
            vec![anchor.clone().into(), org_id.into()],
        )
        .await
        .map_err(|e| failed(e, false))?;
        let now = placement(db, &anchor, org_id).await?;
        out.actions.push(format!(
            "organization {org_id} isolated to shard {} (from shard {}) on {}",
            now.shard_id, before.shard_id, now.node
        ));
        out.shard_id = now.shard_id;
    }
    if let Some(target) = &target {
        query(
            db,
            "move the tenant's shards",
            "SELECT count(*) AS n FROM citus_move_shard_placement($1, $2, $3::int4, $4, \
             $5::int4, shard_transfer_mode => 'block_writes')",
            vec![
                out.shard_id.into(),
                before.node.host.clone().into(),
                i32::from(before.node.port).into(),
                target.host.clone().into(),
                i32::from(target.port).into(),
            ],
        )
        .await
        // Split here or before: either way the tenant has a shard of its own.
        .map_err(|e| failed(e, true))?;
        let now = placement(db, &anchor, org_id).await?;
        out.actions.push(format!(
            "shard {} of organization {org_id} and its co-located shards moved from {} to {}",
            now.shard_id, before.node, now.node
        ));
        out.to = now.node;
    }
    Ok(out)
}

/// A failure of one of Citus's calls: `isolated` when the tenant has a shard of its own.
fn failed(e: MigrateError, isolated: bool) -> MigrateError {
    match e {
        MigrateError::Database { operation, source } => MigrateError::IsolateFailed {
            step: operation.to_owned(),
            source,
            isolated,
        },
        other => other,
    }
}

/// The co-location group's first distributed table (any would do: `CASCADE` splits and moves
/// the whole group).
async fn anchor_table(db: &DatabaseConnection) -> Result<String, MigrateError> {
    let rows = query(
        db,
        "read the distribution",
        "SELECT logicalrelid::regclass::text AS t FROM pg_dist_partition \
         WHERE partmethod = 'h' ORDER BY colocationid, 1 LIMIT 1",
        Vec::new(),
    )
    .await?;
    rows.first()
        .map(|r| r.try_get::<String>("", "t"))
        .transpose()
        .map_err(MigrateError::db_at("read the distribution"))?
        .ok_or_else(|| refuse("the database has no distributed table"))
}

async fn placement(
    db: &DatabaseConnection,
    anchor: &str,
    org_id: &str,
) -> Result<Placement, MigrateError> {
    let operation = "read the tenant's shard";
    let rows = query(
        db,
        operation,
        "SELECT s.shardid AS id, (s.shardminvalue = s.shardmaxvalue) AS alone, \
                p.nodename AS host, p.nodeport::int4 AS port \
         FROM pg_dist_shard s JOIN pg_dist_shard_placement p USING (shardid) \
         WHERE s.shardid = get_shard_id_for_distribution_column($1::regclass, $2::text)",
        vec![anchor.into(), org_id.into()],
    )
    .await?;
    let [row] = rows.as_slice() else {
        return Err(refuse(format!(
            "the tenant's shard of {anchor} has {} placements; expected one",
            rows.len()
        )));
    };
    let err = MigrateError::db_at(operation);
    Ok(Placement {
        shard_id: row.try_get("", "id").map_err(err)?,
        alone: row.try_get("", "alone").map_err(err)?,
        node: node(row, err)?,
    })
}

fn node(row: &QueryResult, err: impl Fn(DbErr) -> MigrateError) -> Result<Node, MigrateError> {
    let port: i32 = row.try_get("", "port").map_err(&err)?;
    Ok(Node {
        host: row.try_get("", "host").map_err(&err)?,
        port: u16::try_from(port)
            .map_err(|_| refuse(format!("the cluster records port {port}")))?,
    })
}

/// The active workers that take shards, with the bytes of distributed shards each holds.
async fn workers(db: &DatabaseConnection) -> Result<Vec<(Node, i64)>, MigrateError> {
    let operation = "read the workers";
    let rows = query(
        db,
        operation,
        "SELECT n.nodename AS host, n.nodeport::int4 AS port, \
                coalesce(sum(s.shard_size), 0)::int8 AS bytes \
         FROM pg_dist_node n \
         LEFT JOIN citus_shards s ON s.nodename = n.nodename AND s.nodeport = n.nodeport \
              AND s.citus_table_type = 'distributed' \
         WHERE n.groupid <> 0 AND n.isactive AND n.noderole = 'primary' AND n.shouldhaveshards \
         GROUP BY 1, 2 ORDER BY 1, 2",
        Vec::new(),
    )
    .await?;
    let err = MigrateError::db_at(operation);
    rows.iter()
        .map(|r| Ok((node(r, err)?, r.try_get("", "bytes").map_err(err)?)))
        .collect()
}

async fn query(
    db: &DatabaseConnection,
    operation: &'static str,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<QueryResult>, MigrateError> {
    db.query_all_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        values,
    ))
    .await
    .map_err(MigrateError::db_at(operation))
}

fn count(rows: &[QueryResult], operation: &'static str) -> Result<i64, MigrateError> {
    match rows.first() {
        Some(r) => r.try_get("", "n").map_err(MigrateError::db_at(operation)),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::Node;

    #[test]
    fn a_node_is_host_colon_port_and_anything_else_is_refused_by_name() {
        let node: Node = "worker-2.internal:5432"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((node.host.as_str(), node.port), ("worker-2.internal", 5432));
        assert_eq!(node.to_string(), "worker-2.internal:5432");
        for (bad, says) in [
            ("worker-2", "is not HOST:PORT"),
            (":5432", "has no host"),
            ("w:port", "is not a port number"),
            ("w:70000", "is not a port number"),
        ] {
            let err = bad.parse::<Node>().expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
