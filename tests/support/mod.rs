//! Shared test support: reading the catalog, reading docs/SCHEMA.md, comparing the two.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;

use sea_orm::DatabaseConnection;

pub mod bad_writes;
pub mod checks;
pub mod spans;
pub mod tenants;
pub mod workload;

pub use flakeguard_db::migration::catalog::{
    Column, ForeignKey, Schema, Table, diff, normalize_default, without_security,
};

/// Reads the catalog of `db`.
pub async fn read_catalog(db: &DatabaseConnection) -> Schema {
    flakeguard_db::migration::catalog::read(db).await.unwrap()
}

/// Parses docs/SCHEMA.md into the same shape as [`read_catalog`].
pub fn parse_schema_md(md: &str) -> Schema {
    let mut schema = Schema::default();
    let mut current: Option<String> = None;
    for line in md.lines() {
        let line = line.trim();
        // The addendum (migration step 8) adds to tables of the contract: `### Addendum: T`.
        if let Some(name) = line.strip_prefix("### Addendum: ") {
            let name = name.trim();
            assert!(
                schema.tables.contains_key(name),
                "addendum for unknown table {name}"
            );
            current = Some(name.to_owned());
            continue;
        }
        if let Some(name) = line.strip_prefix("## ") {
            let name = name.trim();
            current = (name != "Totals" && !name.starts_with("Addendum")).then(|| name.to_owned());
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
            let (name, mut cols) = name_and_cols(rest);
            if rest.ends_with("nulls not distinct") {
                cols.push(flakeguard_db::migration::catalog::NULLS_NOT_DISTINCT.to_owned());
            }
            table.uniques.insert(name, cols);
        } else if let Some(rest) = line.strip_prefix("- index: ") {
            let (name, cols) = name_and_cols(rest);
            table.indexes.insert(name, cols);
        } else if let Some(rest) = line.strip_prefix("- statistics: ") {
            let (name, cols) = name_and_cols(rest);
            table.statistics.insert(name, cols);
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
