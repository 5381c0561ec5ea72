//! A snapshot of the database catalog: tables, columns, keys, indexes, extended statistics,
//! enums, row-level security and grants, each by name; and the differences between two
//! snapshots.
//!
//! The snapshot is what `validate`, `adopt` and the tests compare: the live database against
//! a reference built by applying this crate's migrations to a scratch database.

use std::collections::BTreeMap;

use sea_orm_migration::sea_orm::{ConnectionTrait, DbErr, QueryResult, Statement};

/// A column as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The type as `docs/SCHEMA.md` spells it: `text`, `bigint`, `timestamptz`, `text[]`, an
    /// enum's name...
    pub sql_type: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// The default as a bare value (`user`, `0`, `{}`, `now()`), if any.
    pub default: Option<String>,
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    /// The referencing columns, in order.
    pub columns: Vec<String>,
    /// The referenced table.
    pub ref_table: String,
    /// The referenced columns, in order.
    pub ref_columns: Vec<String>,
    /// The ON DELETE rule: `CASCADE`, `SET NULL`, `RESTRICT`, `SET DEFAULT` or `NO ACTION`.
    pub on_delete: String,
}

/// One table: columns, keys and indexes, each by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Columns by name.
    pub columns: BTreeMap<String, Column>,
    /// The primary key constraint by name, with its columns.
    pub primary_key: BTreeMap<String, Vec<String>>,
    /// Unique constraints by name, with their columns.
    pub uniques: BTreeMap<String, Vec<String>>,
    /// Indexes that back no constraint, by name, with their columns (`unique ` before the first
    /// column of a unique index).
    pub indexes: BTreeMap<String, Vec<String>>,
    /// Foreign keys by constraint name.
    pub foreign_keys: BTreeMap<String, ForeignKey>,
    /// Extended statistics objects by name, with their columns (sorted by name).
    pub statistics: BTreeMap<String, Vec<String>>,
}

/// Row-level security and the application role's grants of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// ROW LEVEL SECURITY enabled.
    pub enabled: bool,
    /// ROW LEVEL SECURITY forced (applies to the owner too).
    pub forced: bool,
    /// Policies by name: command, USING and WITH CHECK as PostgreSQL prints them.
    pub policies: BTreeMap<String, String>,
    /// The privileges of `flakeguard_app`, comma-separated and sorted.
    pub app_grants: String,
}

/// A schema: tables, enum types, and each table's row-level security and grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    /// Tables by name (without `seaql_migrations`).
    pub tables: BTreeMap<String, Table>,
    /// Enum types by name, with their labels in order.
    pub enums: BTreeMap<String, Vec<String>>,
    /// Row-level security and grants by table name.
    pub security: BTreeMap<String, Security>,
}

impl Schema {
    /// Sums `f` over the tables, for example `schema.count(|t| t.indexes.len())`.
    pub fn count(&self, f: impl Fn(&Table) -> usize) -> usize {
        self.tables.values().map(f).sum()
    }
}

async fn rows<C: ConnectionTrait>(db: &C, sql: &str) -> Result<Vec<QueryResult>, DbErr> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
}

fn s(row: &QueryResult, col: &str) -> Result<String, DbErr> {
    row.try_get::<String>("", col)
}

fn list(row: &QueryResult, col: &str) -> Result<Vec<String>, DbErr> {
    Ok(s(row, col)?.split(',').map(str::to_owned).collect())
}

/// The marker a unique constraint's column list ends with when it treats NULLs as equal
/// (`UNIQUE NULLS NOT DISTINCT`, PostgreSQL 15).
pub const NULLS_NOT_DISTINCT: &str = "NULLS NOT DISTINCT";

/// On a Citus node the shards of distributed and reference tables are relations of their own
/// (`<table>_<shardid>`) beside the tables, in raw catalog queries too; they, and the
/// coordinator's bookkeeping of `distribute`, are not the schema.
async fn drop_citus_shards<C: ConnectionTrait>(db: &C, schema: &mut Schema) -> Result<(), DbErr> {
    if rows(
        db,
        "SELECT 1 AS one FROM pg_extension WHERE extname = 'citus'",
    )
    .await?
    .is_empty()
    {
        return Ok(());
    }
    let shards = rows(
        db,
        "SELECT c.relname::text || '_' || s.shardid::text AS t \
         FROM pg_dist_shard s JOIN pg_class c ON c.oid = s.logicalrelid",
    )
    .await?;
    let bookkeeping = crate::distribute::BOOKKEEPING_TABLE.to_owned();
    for t in shards
        .iter()
        .map(|r| s(r, "t"))
        .chain(std::iter::once(Ok(bookkeeping)))
    {
        let t = t?;
        schema.tables.remove(&t);
        schema.security.remove(&t);
    }
    Ok(())
}

/// Reads the public schema from the catalog, ignoring SeaORM's own `seaql_migrations`.
pub async fn read<C: ConnectionTrait>(db: &C) -> Result<Schema, DbErr> {
    let mut schema = Schema::default();
    let tables = rows(
        db,
        "SELECT c.relname::text AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'seaql_migrations'",
    )
    .await?;
    for r in tables {
        schema.tables.insert(s(&r, "t")?, Table::default());
    }
    let columns = rows(
        db,
        "SELECT c.relname::text AS t, a.attname::text AS col,
                format_type(a.atttypid, a.atttypmod) AS ty, a.attnotnull AS notnull,
                pg_get_expr(d.adbin, d.adrelid) AS def
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attnum > 0
           AND NOT a.attisdropped AND c.relname <> 'seaql_migrations'",
    )
    .await?;
    for r in columns {
        let table = schema.tables.entry(s(&r, "t")?).or_default();
        table.columns.insert(
            s(&r, "col")?,
            Column {
                sql_type: normalize_type(&s(&r, "ty")?),
                nullable: !r.try_get::<bool>("", "notnull")?,
                default: r
                    .try_get::<Option<String>>("", "def")?
                    .and_then(|d| normalize_default(&d)),
            },
        );
    }
    let constraints = rows(
        db,
        "SELECT c.relname::text AS t, con.conname::text AS name, con.contype::text AS kind,
                (SELECT string_agg(a.attname::text, ',' ORDER BY k.ord)
                   FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
                   JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num) AS cols,
                coalesce(rc.relname::text, '') AS ref_table,
                coalesce((SELECT string_agg(a.attname::text, ',' ORDER BY k.ord)
                   FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
                   JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num), '') AS ref_cols,
                con.confdeltype::text AS on_delete,
                coalesce((SELECT string_agg(quote_ident(a.attname::text), ', ' ORDER BY k.ord)
                   FROM unnest(con.confdelsetcols) WITH ORDINALITY k(num, ord)
                   JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num), '') AS del_cols,
                coalesce((SELECT i.indnullsnotdistinct FROM pg_index i
                   WHERE i.indexrelid = con.conindid AND con.contype = 'u'), false) AS nnd
         FROM pg_constraint con
         JOIN pg_class c ON c.oid = con.conrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_class rc ON rc.oid = con.confrelid
         WHERE n.nspname = 'public' AND con.contype IN ('p', 'u', 'f')
           AND c.relname <> 'seaql_migrations'",
    )
    .await?;
    for r in constraints {
        let table = schema.tables.entry(s(&r, "t")?).or_default();
        let name = s(&r, "name")?;
        let cols = list(&r, "cols")?;
        match s(&r, "kind")?.as_str() {
            "p" => {
                table.primary_key.insert(name, cols);
            }
            "u" => {
                let mut cols = cols;
                if r.try_get::<bool>("", "nnd")? {
                    cols.push(NULLS_NOT_DISTINCT.to_owned());
                }
                table.uniques.insert(name, cols);
            }
            _ => {
                let del_cols = s(&r, "del_cols")?;
                let set_null = if del_cols.is_empty() {
                    "SET NULL".to_owned()
                } else {
                    format!("SET NULL ({del_cols})")
                };
                let on_delete = match s(&r, "on_delete")?.as_str() {
                    "c" => "CASCADE",
                    "n" => set_null.as_str(),
                    "r" => "RESTRICT",
                    "d" => "SET DEFAULT",
                    _ => "NO ACTION",
                };
                table.foreign_keys.insert(
                    name,
                    ForeignKey {
                        columns: cols,
                        ref_table: s(&r, "ref_table")?,
                        ref_columns: list(&r, "ref_cols")?,
                        on_delete: on_delete.to_owned(),
                    },
                );
            }
        }
    }
    // Indexes that do not back a primary key or unique constraint.
    let indexes = rows(
        db,
        "SELECT c.relname::text AS t, i.relname::text AS name,
                CASE WHEN ix.indisunique THEN 'unique ' ELSE '' END ||
                (SELECT string_agg(coalesce(a.attname::text, '(expression)'), ',' ORDER BY k.ord)
                   FROM unnest(ix.indkey) WITH ORDINALITY k(num, ord)
                   LEFT JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.num) AS cols
         FROM pg_index ix
         JOIN pg_class i ON i.oid = ix.indexrelid
         JOIN pg_class c ON c.oid = ix.indrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relname <> 'seaql_migrations'
           AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = ix.indexrelid
                           AND con.contype IN ('p', 'u'))",
    )
    .await?;
    for r in indexes {
        let table = schema.tables.entry(s(&r, "t")?).or_default();
        table.indexes.insert(s(&r, "name")?, list(&r, "cols")?);
    }
    let statistics = rows(
        db,
        // PostgreSQL keeps a statistics object's columns in table order, which means nothing
        // for the object: they are compared as a set, by name.
        "SELECT c.relname::text AS t, s.stxname::text AS name,
                (SELECT string_agg(a.attname::text, ',' ORDER BY a.attname::text)
                   FROM unnest(s.stxkeys) WITH ORDINALITY k(num, ord)
                   JOIN pg_attribute a ON a.attrelid = s.stxrelid AND a.attnum = k.num) AS cols
         FROM pg_statistic_ext s
         JOIN pg_class c ON c.oid = s.stxrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public'",
    )
    .await?;
    for r in statistics {
        let table = schema.tables.entry(s(&r, "t")?).or_default();
        table.statistics.insert(s(&r, "name")?, list(&r, "cols")?);
    }
    let enums = rows(
        db,
        "SELECT t.typname::text AS name, string_agg(e.enumlabel::text, ',' ORDER BY e.enumsortorder) AS labels
         FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
         JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname = 'public' GROUP BY t.typname",
    )
    .await?;
    for r in enums {
        schema.enums.insert(s(&r, "name")?, list(&r, "labels")?);
    }
    let security = rows(
        db,
        "SELECT c.relname::text AS t, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced,
                coalesce((SELECT string_agg(g.privilege_type::text, ',' ORDER BY g.privilege_type)
                   FROM information_schema.role_table_grants g
                   WHERE g.grantee = 'flakeguard_app' AND g.table_schema = 'public'
                     AND g.table_name = c.relname), '') AS grants
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'seaql_migrations'",
    )
    .await?;
    for r in security {
        schema.security.insert(
            s(&r, "t")?,
            Security {
                enabled: r.try_get("", "enabled")?,
                forced: r.try_get("", "forced")?,
                policies: BTreeMap::new(),
                app_grants: s(&r, "grants")?,
            },
        );
    }
    let policies = rows(
        db,
        "SELECT tablename::text AS t, policyname::text AS name,
                cmd::text || ' USING ' || coalesce(qual, '') || ' CHECK ' || coalesce(with_check, '') AS def
         FROM pg_policies WHERE schemaname = 'public'",
    )
    .await?;
    for r in policies {
        schema
            .security
            .entry(s(&r, "t")?)
            .or_default()
            .policies
            .insert(s(&r, "name")?, s(&r, "def")?);
    }
    drop_citus_shards(db, &mut schema).await?;
    Ok(schema)
}

/// Reduces a type name to the spelling SCHEMA.md uses.
pub fn normalize_type(ty: &str) -> String {
    let ty = ty.trim();
    if ty.starts_with("timestamp") && ty.ends_with("with time zone") {
        return "timestamptz".to_owned();
    }
    match ty {
        "character varying" => "text".to_owned(),
        "character varying[]" => "text[]".to_owned(),
        _ => ty.trim_matches('"').to_owned(),
    }
}

/// Reduces a default expression to a bare value: `'user'::text` -> `user`,
/// `CURRENT_TIMESTAMP` -> `now()`, `'{}'::jsonb` -> `{}`, `0.0` -> `0`.
pub fn normalize_default(expr: &str) -> Option<String> {
    let mut v = expr.trim().to_owned();
    // Strip trailing casts, possibly several (`'{}'::text[]`, `'PENDING'::"TaskStatus"`).
    while let Some(i) = v.rfind("::") {
        if v[..i].ends_with('\'') || v[..i].ends_with(')') || !v[..i].contains('\'') {
            v.truncate(i);
        } else {
            break;
        }
    }
    let v = v.trim().trim_matches('\'').to_owned();
    let v = match v.as_str() {
        "CURRENT_TIMESTAMP" | "now()" | "CURRENT_TIMESTAMP(3)" => "now()".to_owned(),
        _ => v,
    };
    if v.is_empty() && !expr.contains("''") {
        return None;
    }
    Some(match v.parse::<f64>() {
        Ok(n) => format!("{n}"),
        Err(_) => v,
    })
}

/// Every difference between what is expected and what is there, one line each.
pub fn diff(expected: &Schema, actual: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for (name, labels) in &expected.enums {
        match actual.enums.get(name) {
            None => out.push(format!("enum \"{name}\" missing")),
            Some(l) if l != labels => {
                out.push(format!("enum \"{name}\": expected {labels:?}, found {l:?}"))
            }
            _ => {}
        }
    }
    for name in actual.enums.keys() {
        if !expected.enums.contains_key(name) {
            out.push(format!("enum \"{name}\" not expected"));
        }
    }
    for (tname, exp) in &expected.tables {
        let Some(act) = actual.tables.get(tname) else {
            out.push(format!("table \"{tname}\" missing"));
            continue;
        };
        diff_map(&mut out, tname, "column", &exp.columns, &act.columns);
        diff_map(
            &mut out,
            tname,
            "primary key",
            &exp.primary_key,
            &act.primary_key,
        );
        diff_map(
            &mut out,
            tname,
            "unique constraint",
            &exp.uniques,
            &act.uniques,
        );
        diff_map(&mut out, tname, "index", &exp.indexes, &act.indexes);
        diff_map(
            &mut out,
            tname,
            "foreign key",
            &exp.foreign_keys,
            &act.foreign_keys,
        );
        diff_map(
            &mut out,
            tname,
            "statistics",
            &exp.statistics,
            &act.statistics,
        );
    }
    for tname in actual.tables.keys() {
        if !expected.tables.contains_key(tname) {
            out.push(format!("table \"{tname}\" not expected"));
        }
    }
    for (tname, exp) in &expected.security {
        match actual.security.get(tname) {
            Some(act) if act == exp => {}
            act => out.push(format!(
                "{tname}: row security: expected {exp:?}, found {act:?}"
            )),
        }
    }
    for tname in actual.security.keys() {
        if !expected.security.contains_key(tname) {
            out.push(format!("{tname}: row security not expected"));
        }
    }
    out
}

fn diff_map<V: PartialEq + std::fmt::Debug>(
    out: &mut Vec<String>,
    table: &str,
    kind: &str,
    expected: &BTreeMap<String, V>,
    actual: &BTreeMap<String, V>,
) {
    for (name, e) in expected {
        match actual.get(name) {
            None => out.push(format!("{table}: {kind} {name} missing")),
            Some(a) if a != e => out.push(format!(
                "{table}: {kind} {name}: expected {e:?}, found {a:?}"
            )),
            _ => {}
        }
    }
    for name in actual.keys() {
        if !expected.contains_key(name) {
            out.push(format!("{table}: {kind} {name} not expected"));
        }
    }
}

/// The schema without its row-level security and grants, for comparison with SCHEMA.md.
pub fn without_security(mut schema: Schema) -> Schema {
    schema.security.clear();
    schema
}
