//! `distribute`: turns the migrated schema on a Citus coordinator into a distributed one.
//!
//! - Every table with a NOT NULL `"orgId"` (tenant and child tables) is distributed by
//!   `"orgId"`, all in one co-location group, so that one tenant's rows of every table live on
//!   the same shard group and a tenant's query (and its joins) runs on one node.
//! - Every other table of the schema becomes a reference table, copied to every node:
//!   `"User"` and `"IngestionJob"` (global), `"Organization"` (the tenant root) and `"Task"`
//!   (whose `"orgId"` may be NULL, which a distribution column may not). docs/DESIGN.md says why
//!   `"Organization"` is a reference table.
//!
//! Citus requires, on distributed tables, what the single-node schema does not:
//!
//! - every primary key and unique constraint includes `"orgId"`: those that do not get it as
//!   their first column, under the same name. For a key that holds one organization's rows
//!   anyway (`"FGJob"`'s `("runId", "jobId")`: a run belongs to one organization) nothing
//!   changes; uniqueness that was global (GitHub ids) becomes per organization;
//! - every foreign key between distributed tables includes `"orgId"`: the single-column ones
//!   are dropped, since each has the composite twin of migration step 8, which enforces the
//!   same reference and more;
//! - no such foreign key has `ON UPDATE CASCADE` (ids are never updated) nor `ON DELETE SET
//!   NULL`: those become `NO ACTION`, so that deleting a parent still referenced there is refused
//!   rather than leaving a dangling reference.
//!
//! # Design
//!
//! Citus refuses to distribute a table that a local table references, or that references one,
//! and refuses `ALTER TABLE` with several subcommands once a table is managed by it. So the
//! command runs in four phases, each safe to interrupt:
//!
//! 1. **Keys**, in one transaction, before Citus touches any table: the foreign keys between
//!    tables to distribute are dropped (the composite ones recorded first, as the DDL that
//!    restores them, in the coordinator's table `flakeguard_distribution`), primary keys and
//!    unique constraints gain `"orgId"`, and the foreign keys to `"Organization"` lose `ON UPDATE
//!    CASCADE`. A failure leaves the database as it was.
//! 2. **Tables**, one call each (`create_reference_table`, `create_distributed_table`): a table
//!    already done is skipped.
//! 3. **Foreign keys**: each recorded composite key is added back, then marked restored.
//! 4. **The tenant setting**: `ALTER DATABASE ... SET citus.propagate_set_commands = 'local'`,
//!    so that the scope's `SET LOCAL` reaches the workers (new sessions only).
//!
//! A failure in phases 2 to 4 leaves a partly distributed database that the next run resumes
//! from where it stopped. A run that finds everything done changes nothing and says so. The
//! whole command holds the migration lock.

use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};

use crate::runner::{MigrateError, MigrationLock};
use crate::{Migrator, MigratorTrait};

/// The coordinator's bookkeeping table of the composite foreign keys phase 1 dropped.
pub const BOOKKEEPING_TABLE: &str = "flakeguard_distribution";

/// Tables of the schema that are not FlakeGuard data and stay on the coordinator alone.
const LOCAL_TABLES: &[&str] = &["seaql_migrations", BOOKKEEPING_TABLE];

/// What one run of [`distribute`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distribution {
    /// Each change made, in order, for a person to read. Empty when the database was already
    /// distributed and nothing changed.
    pub actions: Vec<String>,
}

impl Distribution {
    /// Whether the run found nothing left to do.
    pub fn nothing_to_do(&self) -> bool {
        self.actions.is_empty()
    }
}

/// A table of the schema as `distribute` sees it.
#[derive(Debug, Clone)]
struct TableState {
    name: String,
    /// It has a NOT NULL `"orgId"`: it is distributed by it.
    tenant: bool,
    /// Its Citus kind: `Some('h')` distributed, `Some('n')` reference or Citus-local, `None`
    /// a plain table.
    citus: Option<(char, char)>,
}

/// A primary key, unique constraint or foreign key of a table of the schema.
#[derive(Debug, Clone)]
struct Constraint {
    table: String,
    name: String,
    kind: char,
    columns: Vec<String>,
    def: String,
    /// For a foreign key: the referenced table, its columns, and the delete and update
    /// actions (`pg_constraint.confdeltype` / `confupdtype`).
    references: Option<(String, Vec<String>, char, char)>,
}

/// Turns the migrated schema on a Citus coordinator into the distributed one (see the module
/// documentation). Run it as the database owner or a superuser, after `up`.
///
/// Refuses, changing nothing, on a server without Citus, on a node that is not the coordinator,
/// without a worker, and while migration steps are pending. A second run does nothing and says
/// so ([`Distribution::nothing_to_do`]).
pub async fn distribute(db: &DatabaseConnection) -> Result<Distribution, MigrateError> {
    refuse_unless_ready(db).await?;
    let lock = MigrationLock::acquire(db).await?;
    let result = distribute_locked(db).await;
    lock.release().await;
    result
}

/// The schema `distribute` makes of `single`, the single-server schema (see the module
/// documentation): what `validate` expects of a distributed database.
pub fn citus_variant(single: &crate::catalog::Schema) -> crate::catalog::Schema {
    let mut out = single.clone();
    let tenant = |t: &crate::catalog::Table| t.columns.get("orgId").is_some_and(|c| !c.nullable);
    let tenants: Vec<String> = single
        .tables
        .iter()
        .filter(|(_, t)| tenant(t))
        .map(|(name, _)| name.clone())
        .collect();
    for name in &tenants {
        let Some(table) = out.tables.get_mut(name) else {
            continue;
        };
        for cols in table
            .primary_key
            .values_mut()
            .chain(table.uniques.values_mut())
        {
            if !cols.iter().any(|c| c == "orgId") {
                cols.insert(0, "orgId".to_owned());
            }
        }
        table.foreign_keys.retain(|_, fk| {
            !tenants.contains(&fk.ref_table) || fk.columns.iter().any(|c| c == "orgId")
        });
        for fk in table.foreign_keys.values_mut() {
            if tenants.contains(&fk.ref_table) && fk.on_delete.starts_with("SET NULL") {
                fk.on_delete = "NO ACTION".to_owned();
            }
        }
    }
    out
}

/// What `validate` checks of a distributed database beside its catalog: every table of
/// `expected` with a NOT NULL "orgId" distributed by it, all in one co-location group, every
/// other one a reference table, and the database's `citus.propagate_set_commands`. Returns the
/// problems and the number of tables checked.
pub async fn check_distribution(
    db: &DatabaseConnection,
    expected: &crate::catalog::Schema,
) -> Result<(Vec<String>, usize), MigrateError> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT c.relname AS t, p.partmethod::text AS m, p.repmodel::text AS r, \
                    p.colocationid::int8 AS g, \
                    coalesce(column_to_column_name(p.logicalrelid, p.partkey), '') AS col \
             FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid",
        ))
        .await
        .map_err(MigrateError::db_at("read the distribution"))?;
    let mut live = std::collections::BTreeMap::new();
    for row in rows {
        let err = MigrateError::db_at("read the distribution");
        let t: String = row.try_get("", "t").map_err(err)?;
        let m: String = row.try_get("", "m").map_err(err)?;
        let r: String = row.try_get("", "r").map_err(err)?;
        let g: i64 = row.try_get("", "g").map_err(err)?;
        let col: String = row.try_get("", "col").map_err(err)?;
        live.insert(t, (m, r, g, col));
    }
    let mut problems = Vec::new();
    let mut groups = std::collections::BTreeSet::new();
    for (name, table) in &expected.tables {
        let tenant = table.columns.get("orgId").is_some_and(|c| !c.nullable);
        match (live.get(name), tenant) {
            (None, _) => problems.push(format!("{name} is not managed by Citus")),
            (Some((m, _, g, col)), true) if m == "h" && col == "orgId" => {
                groups.insert(*g);
            }
            (Some((m, _, _, col)), true) => problems.push(format!(
                "{name} should be distributed by \"orgId\", but is {} {col:?}",
                if m == "h" {
                    "distributed by"
                } else {
                    "not distributed, column"
                }
            )),
            (Some((m, r, _, _)), false) if m == "n" && r == "t" => {}
            (Some(_), false) => problems.push(format!("{name} should be a reference table")),
        }
    }
    if groups.len() > 1 {
        problems.push(format!(
            "the distributed tables are in {} co-location groups, not one",
            groups.len()
        ));
    }
    if !setting_is_local(db).await? {
        problems.push(
            "citus.propagate_set_commands is not 'local' for this database: the tenant's SET \
             LOCAL does not reach the workers"
                .to_owned(),
        );
    }
    Ok((problems, expected.tables.len()))
}

/// Whether the Citus extension is installed in `db`.
pub async fn has_citus(db: &DatabaseConnection) -> Result<bool, MigrateError> {
    Ok(citus_version(db).await?.is_some())
}

/// Whether `db` is a Citus database with any table of the schema distributed.
pub async fn is_distributed(db: &DatabaseConnection) -> Result<bool, MigrateError> {
    if citus_version(db).await?.is_none() {
        return Ok(false);
    }
    let n = scalar_i64(
        db,
        "read the distribution",
        "SELECT count(*) AS n FROM pg_dist_partition WHERE partmethod = 'h'",
    )
    .await?;
    Ok(n > 0)
}

/// Whether `db` is the Citus coordinator (call only where Citus is installed).
pub(crate) async fn is_coordinator(db: &DatabaseConnection) -> Result<bool, MigrateError> {
    let n = scalar_i64(
        db,
        "check the node",
        "SELECT CASE WHEN citus_is_coordinator() THEN 1 ELSE 0 END::int8 AS n",
    )
    .await?;
    Ok(n == 1)
}

async fn refuse_unless_ready(db: &DatabaseConnection) -> Result<(), MigrateError> {
    let Some(version) = citus_version(db).await? else {
        return Err(MigrateError::NotCitus(
            "the citus extension is not installed in this database (run it on a Citus \
             coordinator, after CREATE EXTENSION citus)"
                .to_owned(),
        ));
    };
    if !is_coordinator(db).await? {
        return Err(MigrateError::NotCitus(format!(
            "this node is not the Citus coordinator (citus {version}); connect to the coordinator"
        )));
    }
    let workers = scalar_i64(
        db,
        "check the nodes",
        "SELECT count(*) AS n FROM pg_dist_node \
         WHERE groupid <> 0 AND isactive AND noderole = 'primary'",
    )
    .await?;
    if workers == 0 {
        return Err(MigrateError::NotCitus(
            "the coordinator has no active worker; add the workers first \
             (SELECT citus_add_node(host, port))"
                .to_owned(),
        ));
    }
    let pending = Migrator::get_pending_migrations(db)
        .await
        .map_err(|source| MigrateError::Database {
            operation: "read history",
            source,
        })?;
    if let Some(first) = pending.first() {
        return Err(MigrateError::NotCitus(format!(
            "{} migration step(s) are pending, from {}; run `up` first",
            pending.len(),
            first.name()
        )));
    }
    Ok(())
}

async fn distribute_locked(db: &DatabaseConnection) -> Result<Distribution, MigrateError> {
    let mut out = Distribution::default();
    let tables = read_tables(db).await?;
    let constraints = read_constraints(db).await?;
    keys(db, &tables, &constraints, &mut out).await?;
    distribute_tables(db, &tables, &constraints, &mut out).await?;
    restore_foreign_keys(db, &mut out).await?;
    tenant_setting(db, &mut out).await?;
    Ok(out)
}

/// Phase 1 (see the module documentation), in one transaction; nothing when it is done.
async fn keys(
    db: &DatabaseConnection,
    tables: &[TableState],
    constraints: &[Constraint],
    out: &mut Distribution,
) -> Result<(), MigrateError> {
    let tenant = |t: &str| tables.iter().any(|s| s.name == t && s.tenant);
    // Foreign keys go first: a primary key cannot be dropped while one depends on it.
    let (mut drops, mut rekeys, mut refks) = (Vec::new(), Vec::new(), Vec::new());
    let mut actions = Vec::new();
    let mut recorded = Vec::new();
    for c in constraints.iter().filter(|c| tenant(&c.table)) {
        let has_org = c.columns.iter().any(|col| col == "orgId");
        match (c.kind, &c.references) {
            ('f', Some((parent, parent_cols, on_delete, _))) if tenant(parent) => {
                if has_org {
                    recorded.push(format!(
                        "INSERT INTO {BOOKKEEPING_TABLE} (constraint_name, table_name, ddl) \
                         VALUES ({}, {}, {}) ON CONFLICT (constraint_name) DO NOTHING",
                        literal(&c.name),
                        literal(&c.table),
                        literal(&add_foreign_key(c, parent, parent_cols, *on_delete)),
                    ));
                    actions.push(format!(
                        "foreign key {} set aside until its tables are distributed",
                        c.name
                    ));
                } else {
                    let twin = constraints.iter().any(|t| {
                        t.table == c.table
                            && t.kind == 'f'
                            && t.references.as_ref().map(|r| &r.0) == Some(parent)
                            && t.columns.len() == c.columns.len() + 1
                            && t.columns[0] == "orgId"
                            && t.columns[1..] == c.columns[..]
                    });
                    if !twin {
                        return Err(MigrateError::NotCitus(format!(
                            "foreign key {} of {} has no composite twin with \"orgId\"; \
                             the schema is not the one `up` builds",
                            c.name, c.table
                        )));
                    }
                    actions.push(format!(
                        "foreign key {} dropped: its composite twin with \"orgId\" stays",
                        c.name
                    ));
                }
                drops.push(format!(
                    "ALTER TABLE {} DROP CONSTRAINT {}",
                    ident(&c.table),
                    ident(&c.name)
                ));
            }
            ('f', Some((parent, parent_cols, on_delete, 'c'))) if has_org => {
                // A reference to a reference table ("Organization") through "orgId".
                refks.push(format!(
                    "ALTER TABLE {t} DROP CONSTRAINT {n}; ALTER TABLE {t} ADD CONSTRAINT {n} {d}",
                    t = ident(&c.table),
                    n = ident(&c.name),
                    d = foreign_key_def(c, parent, parent_cols, *on_delete),
                ));
                actions.push(format!("foreign key {} without ON UPDATE CASCADE", c.name));
            }
            ('p' | 'u', None) if !has_org => {
                let def = c.def.replacen('(', "(\"orgId\", ", 1);
                rekeys.push(format!(
                    "ALTER TABLE {t} DROP CONSTRAINT {n}; ALTER TABLE {t} ADD CONSTRAINT {n} {def}",
                    t = ident(&c.table),
                    n = ident(&c.name),
                ));
                actions.push(format!("{} is now {def}", c.name));
            }
            _ => {}
        }
    }
    if let Some(done) = tables.iter().find(|t| t.citus.is_some()) {
        // Phase 1 ran before any table was distributed: after it, the composite foreign keys
        // are back, and only a key Citus would refuse means something else changed the schema.
        if rekeys.is_empty() && refks.is_empty() && drops.len() == recorded.len() {
            return Ok(());
        }
        return Err(MigrateError::NotCitus(format!(
            "{} is already managed by Citus but the keys of the tables to distribute are not \
             ready; was it distributed by hand? Undistribute it (undistribute_table) and run \
             distribute again",
            done.name
        )));
    }
    if drops.is_empty() && rekeys.is_empty() && refks.is_empty() {
        return Ok(());
    }
    let script = std::iter::once(format!(
        "CREATE TABLE IF NOT EXISTS {BOOKKEEPING_TABLE} (constraint_name text PRIMARY KEY, \
         table_name text NOT NULL, ddl text NOT NULL, restored_at timestamptz)"
    ))
    .chain(recorded)
    .chain(drops)
    .chain(rekeys)
    .chain(refks)
    .collect::<Vec<_>>()
    .join(";\n");
    // One simple query: PostgreSQL runs it as one transaction.
    db.execute_unprepared(&script)
        .await
        .map_err(|source| MigrateError::Distribute {
            step: "prepare the keys".to_owned(),
            source,
            partly: false,
        })?;
    out.actions.extend(actions);
    Ok(())
}

/// Phase 2: reference tables (the referenced ones first), then distributed ones.
async fn distribute_tables(
    db: &DatabaseConnection,
    tables: &[TableState],
    constraints: &[Constraint],
    out: &mut Distribution,
) -> Result<(), MigrateError> {
    let mut reference: Vec<&TableState> = tables.iter().filter(|t| !t.tenant).collect();
    // Referenced before referencing: a reference table may not reference a local one.
    let refs = |t: &str| -> Vec<String> {
        constraints
            .iter()
            .filter(|c| c.table == t && c.kind == 'f')
            .filter_map(|c| c.references.as_ref().map(|r| r.0.clone()))
            .filter(|r| r != t)
            .collect()
    };
    let mut ordered: Vec<&TableState> = Vec::new();
    while !reference.is_empty() {
        let before = reference.len();
        reference.retain(|t| {
            let ready = refs(&t.name).iter().all(|r| {
                ordered.iter().any(|o| &o.name == r)
                    || !tables.iter().any(|s| &s.name == r && !s.tenant)
            });
            if ready {
                ordered.push(t);
            }
            !ready
        });
        if reference.len() == before {
            return Err(MigrateError::NotCitus(format!(
                "the reference tables {} reference each other in a cycle",
                reference
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    for t in ordered {
        match t.citus {
            Some((_, 't')) => continue,
            // A Citus-local table: Citus makes one of a table that references a reference
            // table (an earlier, interrupted run); it converts like a plain one.
            None | Some(('n', 's')) => {}
            Some(kind) => {
                return Err(MigrateError::NotCitus(format!(
                    "{} is managed by Citus as {kind:?}, not as a reference table; \
                     undistribute it (undistribute_table) and run distribute again",
                    t.name
                )));
            }
        }
        run(
            db,
            &format!("create the reference table {}", t.name),
            &format!(
                "SELECT create_reference_table({})",
                literal(&ident(&t.name))
            ),
        )
        .await?;
        out.actions.push(format!("{} is a reference table", t.name));
    }
    let mut anchor = tables
        .iter()
        .find(|t| t.tenant && matches!(t.citus, Some(('h', _))))
        .map(|t| t.name.clone());
    for t in tables.iter().filter(|t| t.tenant) {
        match t.citus {
            Some(('h', _)) => continue,
            None | Some(('n', 's')) => {}
            Some(kind) => {
                return Err(MigrateError::NotCitus(format!(
                    "{} is managed by Citus as {kind:?}, not distributed; undistribute it \
                     (undistribute_table) and run distribute again",
                    t.name
                )));
            }
        }
        let colocate = anchor.as_deref().map_or("none".to_owned(), ident);
        run(
            db,
            &format!("distribute {}", t.name),
            &format!(
                "SELECT create_distributed_table({}, 'orgId', colocate_with => {})",
                literal(&ident(&t.name)),
                literal(&colocate),
            ),
        )
        .await?;
        out.actions
            .push(format!("{} is distributed by \"orgId\"", t.name));
        anchor.get_or_insert_with(|| t.name.clone());
    }
    Ok(())
}

/// Phase 3: the composite foreign keys phase 1 set aside, added back.
async fn restore_foreign_keys(
    db: &DatabaseConnection,
    out: &mut Distribution,
) -> Result<(), MigrateError> {
    let exists = scalar_i64(
        db,
        "read the bookkeeping",
        &format!(
            "SELECT count(*) AS n FROM pg_class \
             WHERE oid = to_regclass('public.{BOOKKEEPING_TABLE}')"
        ),
    )
    .await?;
    if exists == 0 {
        return Ok(());
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT b.constraint_name, b.table_name, b.ddl, \
                 EXISTS (SELECT 1 FROM pg_constraint c \
                         WHERE c.conname = b.constraint_name \
                           AND c.conrelid = to_regclass(format('public.%I', b.table_name))) AS present \
                 FROM {BOOKKEEPING_TABLE} b WHERE b.restored_at IS NULL ORDER BY 1"
            ),
        ))
        .await
        .map_err(MigrateError::db_at("read the bookkeeping"))?;
    for row in rows {
        let get = |col: &str| -> Result<String, MigrateError> {
            row.try_get("", col)
                .map_err(MigrateError::db_at("read the bookkeeping"))
        };
        let (name, ddl) = (get("constraint_name")?, get("ddl")?);
        let present: bool = row
            .try_get("", "present")
            .map_err(MigrateError::db_at("read the bookkeeping"))?;
        if !present {
            run(db, &format!("restore the foreign key {name}"), &ddl).await?;
            out.actions.push(format!("foreign key {name} restored"));
        }
        run(
            db,
            &format!("record the foreign key {name}"),
            &format!(
                "UPDATE {BOOKKEEPING_TABLE} SET restored_at = now() WHERE constraint_name = {}",
                literal(&name)
            ),
        )
        .await?;
    }
    Ok(())
}

/// Phase 4: the database setting that carries `SET LOCAL` to the workers.
async fn tenant_setting(
    db: &DatabaseConnection,
    out: &mut Distribution,
) -> Result<(), MigrateError> {
    if setting_is_local(db).await? {
        return Ok(());
    }
    run(
        db,
        "set citus.propagate_set_commands",
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET citus.propagate_set_commands = %L', \
         current_database(), 'local'); END $$",
    )
    .await?;
    out.actions.push(
        "citus.propagate_set_commands = 'local' for this database (sessions opened from now on)"
            .to_owned(),
    );
    Ok(())
}

/// Whether the database has `citus.propagate_set_commands = 'local'` (for every role).
async fn setting_is_local(db: &DatabaseConnection) -> Result<bool, MigrateError> {
    let n = scalar_i64(
        db,
        "read the database's settings",
        "SELECT count(*) AS n FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase \
         WHERE d.datname = current_database() AND s.setrole = 0 \
           AND 'citus.propagate_set_commands=local' = ANY (s.setconfig)",
    )
    .await?;
    Ok(n > 0)
}

/// `ADD CONSTRAINT` of a composite foreign key as Citus accepts it (see [`foreign_key_def`]).
fn add_foreign_key(
    c: &Constraint,
    parent: &str,
    parent_cols: &[String],
    on_delete: char,
) -> String {
    format!(
        "ALTER TABLE {} ADD CONSTRAINT {} {}",
        ident(&c.table),
        ident(&c.name),
        foreign_key_def(c, parent, parent_cols, on_delete)
    )
}

/// A foreign key's definition without what Citus refuses on one that includes the
/// distribution column: no `ON UPDATE` action, and `ON DELETE SET NULL` / `SET DEFAULT` as
/// `NO ACTION`. `CASCADE` and `RESTRICT` on delete stay.
fn foreign_key_def(
    c: &Constraint,
    parent: &str,
    parent_cols: &[String],
    on_delete: char,
) -> String {
    let cols = |cs: &[String]| cs.iter().map(|s| ident(s)).collect::<Vec<_>>().join(", ");
    let on_delete = match on_delete {
        'c' => " ON DELETE CASCADE",
        'r' => " ON DELETE RESTRICT",
        _ => "",
    };
    format!(
        "FOREIGN KEY ({}) REFERENCES {}({}){on_delete}",
        cols(&c.columns),
        ident(parent),
        cols(parent_cols)
    )
}

async fn read_tables(db: &DatabaseConnection) -> Result<Vec<TableState>, MigrateError> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT c.relname AS name, \
                    EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                            AND a.attname = 'orgId' AND a.attnotnull AND NOT a.attisdropped) AS tenant, \
                    p.partmethod::text AS method, p.repmodel::text AS model \
             FROM pg_class c LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid \
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') \
               AND citus_table_is_visible(c.oid) \
             ORDER BY c.relname",
        ))
        .await
        .map_err(MigrateError::db_at("read the tables"))?;
    let mut out = Vec::new();
    for row in rows {
        let err = MigrateError::db_at("read the tables");
        let name: String = row.try_get("", "name").map_err(err)?;
        if LOCAL_TABLES.contains(&name.as_str()) {
            continue;
        }
        let method: Option<String> = row.try_get("", "method").map_err(err)?;
        let model: Option<String> = row.try_get("", "model").map_err(err)?;
        let first = |s: Option<String>| s.and_then(|s| s.chars().next());
        out.push(TableState {
            tenant: row.try_get("", "tenant").map_err(err)?,
            citus: first(method).zip(first(model)),
            name,
        });
    }
    Ok(out)
}

async fn read_constraints(db: &DatabaseConnection) -> Result<Vec<Constraint>, MigrateError> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT c.relname AS tbl, co.conname AS name, co.contype::text AS kind, \
                    pg_get_constraintdef(co.oid) AS def, p.relname AS parent, \
                    ARRAY(SELECT a.attname::text FROM unnest(co.conkey) WITH ORDINALITY k(n, i) \
                          JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.n \
                          ORDER BY k.i) AS cols, \
                    ARRAY(SELECT a.attname::text FROM unnest(co.confkey) WITH ORDINALITY k(n, i) \
                          JOIN pg_attribute a ON a.attrelid = co.confrelid AND a.attnum = k.n \
                          ORDER BY k.i) AS parent_cols, \
                    co.confdeltype::text AS on_delete, co.confupdtype::text AS on_update \
             FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid \
             LEFT JOIN pg_class p ON p.oid = co.confrelid \
             WHERE co.connamespace = 'public'::regnamespace AND co.contype IN ('p', 'u', 'f') \
               AND citus_table_is_visible(c.oid) \
             ORDER BY c.relname, co.conname",
        ))
        .await
        .map_err(MigrateError::db_at("read the constraints"))?;
    let mut out = Vec::new();
    for row in rows {
        let err = || MigrateError::db_at("read the constraints");
        let kind: String = row.try_get("", "kind").map_err(err())?;
        let kind = kind.chars().next().unwrap_or(' ');
        let parent: Option<String> = row.try_get("", "parent").map_err(err())?;
        let action = |col: &str| -> Result<char, MigrateError> {
            let s: String = row.try_get("", col).map_err(err())?;
            Ok(s.chars().next().unwrap_or('a'))
        };
        let references = match parent {
            Some(parent) if kind == 'f' => Some((
                parent,
                row.try_get("", "parent_cols").map_err(err())?,
                action("on_delete")?,
                action("on_update")?,
            )),
            _ => None,
        };
        out.push(Constraint {
            table: row.try_get("", "tbl").map_err(err())?,
            name: row.try_get("", "name").map_err(err())?,
            kind,
            columns: row.try_get("", "cols").map_err(err())?,
            def: row.try_get("", "def").map_err(err())?,
            references,
        });
    }
    Ok(out)
}

async fn citus_version(db: &DatabaseConnection) -> Result<Option<String>, MigrateError> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT extversion FROM pg_extension WHERE extname = 'citus'",
        ))
        .await
        .map_err(MigrateError::db_at("check for Citus"))?;
    row.map(|r| r.try_get::<String>("", "extversion"))
        .transpose()
        .map_err(MigrateError::db_at("check for Citus"))
}

async fn scalar_i64(
    db: &DatabaseConnection,
    operation: &'static str,
    sql: &str,
) -> Result<i64, MigrateError> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .map_err(MigrateError::db_at(operation))?;
    match row {
        Some(r) => r.try_get("", "n").map_err(MigrateError::db_at(operation)),
        None => Ok(0),
    }
}

async fn run(db: &DatabaseConnection, step: &str, sql: &str) -> Result<(), MigrateError> {
    db.execute_unprepared(sql)
        .await
        .map(|_| ())
        .map_err(|source: DbErr| MigrateError::Distribute {
            step: step.to_owned(),
            source,
            partly: true,
        })
}

/// A quoted identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A quoted string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
