//! Step 9: extended statistics that tell the planner a repository belongs to one organization.
//!
//! Every statement of a scope carries the tenant predicate (`"orgId" = $n`) beside the
//! caller's filter, often `"repoId" = $m`. Without more statistics the planner takes the two
//! for independent and multiplies their selectivities, so it expects far fewer rows than match
//! and may combine two indexes in a BitmapAnd where one index and a filter would read less
//! (measured on the five-query transaction of the benchmark: the count over a repository's
//! test cases in a file read 2,000 index entries instead of 40). A functional-dependency
//! statistic on ("orgId", "repoId") (`<T>_orgId_repoId_stat`) records that "repoId" decides
//! "orgId", on the three tables that carry both: `FGTestCase`, `FGWorkflowRun` and
//! `FGFailureCluster`. The tables are analyzed, so the statistics hold from the start.
//!
//! Nothing else changes: no table, column, key, index or policy. `down` drops the three.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

/// `m20240829_000000_add_tenant_statistics`: see the module docs.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables with both "orgId" and "repoId".
pub const TABLES: [&str; 3] = ["FGTestCase", "FGWorkflowRun", "FGFailureCluster"];

/// The name of table `t`'s statistics object.
pub fn statistics_name(t: &str) -> String {
    format!("{t}_orgId_repoId_stat")
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for t in TABLES {
            db.execute_unprepared(&format!(
                r#"CREATE STATISTICS IF NOT EXISTS "{}" (dependencies) ON "orgId", "repoId" FROM "{t}";
                   ANALYZE "{t}""#,
                statistics_name(t)
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for t in TABLES {
            db.execute_unprepared(&format!(
                r#"DROP STATISTICS IF EXISTS "{}""#,
                statistics_name(t)
            ))
            .await?;
        }
        Ok(())
    }
}
