//! Shared test support: reading the catalog, reading docs/SCHEMA.md, comparing the two.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

pub mod tenants;

/// A column as the catalog (or SCHEMA.md) describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub sql_type: String,
    pub nullable: bool,
    pub default: Option<String>,
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
    pub on_delete: String,
}

/// One table: columns, keys, indexes, each by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub columns: BTreeMap<String, Column>,
    pub primary_key: BTreeMap<String, Vec<String>>,
    pub uniques: BTreeMap<String, Vec<String>>,
    pub indexes: BTreeMap<String, Vec<String>>,
    pub foreign_keys: BTreeMap<String, ForeignKey>,
}

/// Row-level security and grants of one table (SCHEMA.md does not list these).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    pub enabled: bool,
    pub forced: bool,
    /// name -> (command, USING, WITH CHECK)
    pub policies: BTreeMap<String, String>,
    /// privileges of flakeguard_app, comma-separated and sorted
    pub app_grants: String,
}

/// A schema: tables and enum types, and row-level security where read from a database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    pub tables: BTreeMap<String, Table>,
    pub enums: BTreeMap<String, Vec<String>>,
    pub security: BTreeMap<String, Security>,
}

impl Schema {
    pub fn count(&self, f: impl Fn(&Table) -> usize) -> usize {
        self.tables.values().map(f).sum()
    }
}

async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("catalog query failed: {e}\n{sql}"))
}

fn s(row: &sea_orm::QueryResult, col: &str) -> String {
    row.try_get::<String>("", col).unwrap()
}

fn list(row: &sea_orm::QueryResult, col: &str) -> Vec<String> {
    s(row, col).split(',').map(str::to_owned).collect()
}

/// Reads the public schema from the catalog, ignoring SeaORM's own `seaql_migrations`.
pub async fn read_catalog(db: &DatabaseConnection) -> Schema {
    let mut schema = Schema::default();
    let tables = rows(
        db,
        "SELECT c.relname::text AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'seaql_migrations'",
    )
    .await;
    for r in tables {
        schema.tables.insert(s(&r, "t"), Table::default());
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
    .await;
    for r in columns {
        let table = schema.tables.entry(s(&r, "t")).or_default();
        table.columns.insert(
            s(&r, "col"),
            Column {
                sql_type: normalize_type(&s(&r, "ty")),
                nullable: !r.try_get::<bool>("", "notnull").unwrap(),
                default: r
                    .try_get::<Option<String>>("", "def")
                    .unwrap()
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
                con.confdeltype::text AS on_delete
         FROM pg_constraint con
         JOIN pg_class c ON c.oid = con.conrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_class rc ON rc.oid = con.confrelid
         WHERE n.nspname = 'public' AND con.contype IN ('p', 'u', 'f')
           AND c.relname <> 'seaql_migrations'",
    )
    .await;
    for r in constraints {
        let table = schema.tables.entry(s(&r, "t")).or_default();
        let name = s(&r, "name");
        let cols = list(&r, "cols");
        match s(&r, "kind").as_str() {
            "p" => {
                table.primary_key.insert(name, cols);
            }
            "u" => {
                table.uniques.insert(name, cols);
            }
            _ => {
                let on_delete = match s(&r, "on_delete").as_str() {
                    "c" => "CASCADE",
                    "n" => "SET NULL",
                    "r" => "RESTRICT",
                    "d" => "SET DEFAULT",
                    _ => "NO ACTION",
                };
                table.foreign_keys.insert(
                    name,
                    ForeignKey {
                        columns: cols,
                        ref_table: s(&r, "ref_table"),
                        ref_columns: list(&r, "ref_cols"),
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
    .await;
    for r in indexes {
        let table = schema.tables.entry(s(&r, "t")).or_default();
        table.indexes.insert(s(&r, "name"), list(&r, "cols"));
    }
    let enums = rows(
        db,
        "SELECT t.typname::text AS name, string_agg(e.enumlabel::text, ',' ORDER BY e.enumsortorder) AS labels
         FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
         JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname = 'public' GROUP BY t.typname",
    )
    .await;
    for r in enums {
        schema.enums.insert(s(&r, "name"), list(&r, "labels"));
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
    .await;
    for r in security {
        schema.security.insert(
            s(&r, "t"),
            Security {
                enabled: r.try_get("", "enabled").unwrap(),
                forced: r.try_get("", "forced").unwrap(),
                policies: BTreeMap::new(),
                app_grants: s(&r, "grants"),
            },
        );
    }
    let policies = rows(
        db,
        "SELECT tablename::text AS t, policyname::text AS name,
                cmd::text || ' USING ' || coalesce(qual, '') || ' CHECK ' || coalesce(with_check, '') AS def
         FROM pg_policies WHERE schemaname = 'public'",
    )
    .await;
    for r in policies {
        schema
            .security
            .entry(s(&r, "t"))
            .or_default()
            .policies
            .insert(s(&r, "name"), s(&r, "def"));
    }
    schema
}

/// Reduces a type name to the spelling SCHEMA.md uses.
fn normalize_type(ty: &str) -> String {
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
fn normalize_default(expr: &str) -> Option<String> {
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

/// Parses docs/SCHEMA.md into the same shape as [`read_catalog`].
pub fn parse_schema_md(md: &str) -> Schema {
    let mut schema = Schema::default();
    let mut current: Option<String> = None;
    for line in md.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("## ") {
            let name = name.trim();
            current = (name != "Totals").then(|| name.to_owned());
            if let Some(t) = &current {
                schema.tables.insert(t.clone(), Table::default());
            }
            continue;
        }
        if current.is_none() {
            // Enum list: - `"TaskStatus"`: PENDING, IN_PROGRESS, ...
            if let Some(rest) = line.strip_prefix("- `\"")
                && let Some((name, labels)) = rest.split_once("\"`:")
            {
                schema.enums.insert(
                    name.to_owned(),
                    labels.split(',').map(|l| l.trim().to_owned()).collect(),
                );
            }
            continue;
        }
        let table = schema.tables.get_mut(current.as_deref().unwrap()).unwrap();
        if line.starts_with('|') {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if cells.len() < 4 || cells[0] == "column" || cells[0].starts_with("---") {
                continue;
            }
            table.columns.insert(
                cells[0].to_owned(),
                Column {
                    sql_type: cells[1].trim_matches('"').to_owned(),
                    nullable: cells[2] == "yes",
                    default: doc_default(cells[3]),
                },
            );
        } else if let Some(rest) = line.strip_prefix("- primary key: ") {
            let (name, cols) = name_and_cols(rest);
            table.primary_key.insert(name, cols);
        } else if let Some(rest) = line.strip_prefix("- unique: ") {
            let (name, cols) = name_and_cols(rest);
            table.uniques.insert(name, cols);
        } else if let Some(rest) = line.strip_prefix("- index: ") {
            let (name, cols) = name_and_cols(rest);
            table.indexes.insert(name, cols);
        } else if let Some(rest) = line.strip_prefix("- foreign key: ") {
            let (name, cols) = name_and_cols(rest);
            let after = rest.split_once(" references ").unwrap().1;
            let (ref_table, after) = after.trim_start_matches('"').split_once('"').unwrap();
            let (ref_cols, after) = after.trim_start_matches('(').split_once(')').unwrap();
            let on_delete = after.split_once("on delete ").unwrap().1.trim().to_owned();
            table.foreign_keys.insert(
                name,
                ForeignKey {
                    columns: cols,
                    ref_table: ref_table.to_owned(),
                    ref_columns: split_cols(ref_cols),
                    on_delete,
                },
            );
        }
    }
    schema
}

fn doc_default(cell: &str) -> Option<String> {
    let cell = cell.trim();
    if cell.is_empty() || cell.starts_with("(cuid2") || cell.starts_with("(set by") {
        return None;
    }
    let cell = cell.split(" (").next().unwrap_or(cell);
    normalize_default(cell)
}

/// `` `Name_key` ("a", "b") `` -> ("Name_key", ["a", "b"]).
fn name_and_cols(rest: &str) -> (String, Vec<String>) {
    let rest = rest.trim_start_matches('`');
    let (name, after) = rest.split_once('`').unwrap();
    let cols = after.trim().trim_start_matches('(');
    let cols = cols.split_once(')').unwrap().0;
    (name.to_owned(), split_cols(cols))
}

fn split_cols(cols: &str) -> Vec<String> {
    cols.split(',')
        .map(|c| c.trim().trim_matches('"').to_owned())
        .collect()
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

/// The schema contract, docs/SCHEMA.md, parsed.
///
/// SCHEMA.md lists no row-level security: compare with [`without_security`] of a catalog.
pub fn contract() -> Schema {
    let md = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/SCHEMA.md"))
        .expect("docs/SCHEMA.md");
    parse_schema_md(&md)
}

/// Renders differences for an assertion message.
pub fn report(diffs: &[String]) -> String {
    let mut s = String::new();
    for d in diffs {
        let _ = writeln!(s, "  - {d}");
    }
    s
}

/// The schema without its row-level security and grants, for comparison with SCHEMA.md.
pub fn without_security(mut schema: Schema) -> Schema {
    schema.security.clear();
    schema
}
