//! How each table's rows belong to an organization.
//!
//! Every entity declares exactly one tenant class with [`tenancy!`](macro@crate::tenancy). The
//! declaration produces trait implementations, so code in `flakeguard-db` can demand a class in
//! a generic bound (`E: TenantOwned`, `E: Global`) and the compiler refuses everything else.
//!
//! | class | trait(s) | tables |
//! |---|---|---|
//! | tenant | [`TenantOwned`] + [`HasOrgId`] (`NULLABLE = false`) | 18 tables with a NOT NULL "orgId" |
//! | tenant-optional | [`TenantOwned`] + [`HasOrgId`] (`NULLABLE = true`) | `Task` |
//! | child | [`TenantOwned`] + [`ChildOf<Parent>`] | `WorkflowJob`, `Artifact`, `FGJob`, `FGIssueLink`, the link table |
//! | tenant root | [`TenantOwned`] + [`TenantRoot`] | `Organization` |
//! | global | [`Global`] | `User`, `IngestionJob` |
//!
//! The entity crate only declares; the policy that turns a class into a query predicate lives in
//! `flakeguard-db`.

use sea_orm::{Condition, EntityTrait};

/// A parent reference of a child table: the column of the child that points at the parent's "id".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParentLink {
    /// The parent table, for example `"WorkflowRun"`.
    pub parent_table: &'static str,
    /// The child's column that references the parent's "id", for example `"workflowRunId"`.
    pub column: &'static str,
}

/// The tenant class of a table, as a value (for catalog checks, policies and reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TenantClass {
    /// A NOT NULL "orgId" column referencing "Organization"; the row belongs to that organization.
    Tenant,
    /// A nullable "orgId": NULL means a personal row that no organization sees.
    TenantOptional,
    /// The row belongs to the organization of its parent(s), and (from migration step 8) carries
    /// it in its own NOT NULL "orgId", which composite keys tie to each parent's.
    Child {
        /// Every parent the row is tied to; a row must belong to the tenant of each.
        parents: &'static [ParentLink],
    },
    /// The "Organization" table itself: the row whose "id" is the tenant id.
    TenantRoot,
    /// Not tenant data (`User`, `IngestionJob`).
    Global,
}

impl TenantClass {
    /// Whether rows of this class belong to some organization (everything but [`TenantClass::Global`]).
    pub fn is_tenant_data(&self) -> bool {
        !matches!(self, TenantClass::Global)
    }

    /// A short lower-case name: `tenant`, `tenant-optional`, `child`, `tenant root` or `global`.
    pub fn name(&self) -> &'static str {
        match self {
            TenantClass::Tenant => "tenant",
            TenantClass::TenantOptional => "tenant-optional",
            TenantClass::Child { .. } => "child",
            TenantClass::TenantRoot => "tenant root",
            TenantClass::Global => "global",
        }
    }
}

/// Every entity has a tenant class.
pub trait Tenancy: EntityTrait {
    /// The class, as a value.
    const CLASS: TenantClass;

    /// [`TenantOwned::tenant_condition`] for tenant data, `None` for global tables.
    fn row_filter(org_id: &str) -> Option<Condition>;
}

/// Tables whose rows belong to an organization: reachable only through a tenant scope.
pub trait TenantOwned: Tenancy {
    /// The rows of organization `org_id`, as a condition on this table (columns qualified with
    /// the table name, so it can stand in joins and subqueries):
    ///
    /// - tenant and tenant-optional: `"T"."orgId" = org_id` (NULL never matches);
    /// - child: `"T"."orgId" = org_id`, its own "orgId" (composite keys tie it to each
    ///   parent's);
    /// - tenant root: `"Organization"."id" = org_id`.
    ///
    /// The caller is responsible for `org_id` being a validated tenant id; it is always sent as a
    /// bound value, never spliced into SQL.
    fn tenant_condition(org_id: &str) -> Condition;
}

/// Tables with their own "orgId" column (tenant, tenant-optional and, from migration step 8,
/// child tables).
pub trait HasOrgId: TenantOwned {
    /// Whether "orgId" may be NULL (tenant-optional).
    const NULLABLE: bool;
    /// The "orgId" column.
    fn org_id_column() -> Self::Column;
}

/// A child table whose tenant comes from parent `P` through one of its columns.
///
/// The link table `_FGFailureClusterToFGTestCase` implements this twice, once per side.
pub trait ChildOf<P: HasOrgId>: TenantOwned {
    /// The column of this table that references `P`'s "id".
    fn parent_column() -> Self::Column;
    /// The column of `P` that the reference targets ("id").
    fn parent_key() -> P::Column;
}

/// The tenant root, `Organization`: its "id" is the tenant id.
pub trait TenantRoot: TenantOwned {
    /// The "id" column, which holds the tenant id.
    fn id_column() -> Self::Column;
}

/// Global tables: not tenant data, reached through a separate handle.
pub trait Global: Tenancy {}

/// Declares the tenant class of the entity in the current module.
///
/// ```ignore
/// flakeguard_entity::tenancy!(tenant, org_id = Column::OrgId);
/// flakeguard_entity::tenancy!(tenant_optional, org_id = Column::OrgId);
/// // (parent module, parent table, column, column name); the crate's tests check the names.
/// flakeguard_entity::tenancy!(child, org_id = Column::OrgId,
///     parents = [(workflow_run, "WorkflowRun", Column::WorkflowRunId, "workflowRunId")]);
/// flakeguard_entity::tenancy!(root, id = Column::Id);
/// flakeguard_entity::tenancy!(global);
/// ```
#[macro_export]
macro_rules! tenancy {
    (@base $class:expr) => {
        impl $crate::tenancy::Tenancy for Entity {
            const CLASS: $crate::tenancy::TenantClass = $class;
            fn row_filter(org_id: &str) -> Option<::sea_orm::Condition> {
                Some(<Entity as $crate::tenancy::TenantOwned>::tenant_condition(org_id))
            }
        }
    };
    (@org_column $col:expr) => {
        impl $crate::tenancy::TenantOwned for Entity {
            fn tenant_condition(org_id: &str) -> ::sea_orm::Condition {
                use ::sea_orm::sea_query::{Condition, Expr, ExprTrait};
                Condition::all().add(Expr::col((Entity, $col)).eq(org_id))
            }
        }
    };
    // A table with its own "orgId": filtered on it, and `HasOrgId`.
    (@org_column $col:expr, nullable = $nullable:literal) => {
        $crate::tenancy!(@org_column $col);
        impl $crate::tenancy::HasOrgId for Entity {
            const NULLABLE: bool = $nullable;
            fn org_id_column() -> Column {
                $col
            }
        }
    };
    (tenant, org_id = $col:expr) => {
        $crate::tenancy!(@base $crate::tenancy::TenantClass::Tenant);
        $crate::tenancy!(@org_column $col, nullable = false);
    };
    (tenant_optional, org_id = $col:expr) => {
        $crate::tenancy!(@base $crate::tenancy::TenantClass::TenantOptional);
        $crate::tenancy!(@org_column $col, nullable = true);
    };
    (child, org_id = $org:expr, parents = [$(($parent:ident, $parent_table:literal, $col:expr, $col_name:literal)),+ $(,)?]) => {
        $crate::tenancy!(@base $crate::tenancy::TenantClass::Child {
            parents: &[$($crate::tenancy::ParentLink {
                parent_table: $parent_table,
                column: $col_name,
            }),+],
        });
        $crate::tenancy!(@org_column $org, nullable = false);
        $(
            impl $crate::tenancy::ChildOf<super::$parent::Entity> for Entity {
                fn parent_column() -> Column {
                    $col
                }
                fn parent_key() -> super::$parent::Column {
                    super::$parent::Column::Id
                }
            }
        )+
    };
    (root, id = $col:expr) => {
        $crate::tenancy!(@base $crate::tenancy::TenantClass::TenantRoot);
        $crate::tenancy!(@org_column $col);
        impl $crate::tenancy::TenantRoot for Entity {
            fn id_column() -> Column {
                $col
            }
        }
    };
    (global) => {
        impl $crate::tenancy::Tenancy for Entity {
            const CLASS: $crate::tenancy::TenantClass = $crate::tenancy::TenantClass::Global;
            fn row_filter(_org_id: &str) -> Option<::sea_orm::Condition> {
                None
            }
        }
        impl $crate::tenancy::Global for Entity {}
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TABLES;
    use sea_orm::{DbBackend, QueryFilter, QuerySelect, QueryTrait};

    /// The names a child declares for its parents are the parents' real table and column names.
    #[test]
    fn child_parent_links_name_real_tables_and_columns() {
        fn check<C: ChildOf<P>, P: HasOrgId>(link: &ParentLink) {
            use sea_orm::IdenStatic;
            assert_eq!(link.parent_table, P::default().table_name());
            assert_eq!(link.column, C::parent_column().as_str());
        }
        let parents = |class: TenantClass| match class {
            TenantClass::Child { parents } => parents,
            other => panic!("not a child: {other:?}"),
        };
        use crate::*;
        let p = parents(workflow_job::Entity::CLASS);
        check::<workflow_job::Entity, workflow_run::Entity>(&p[0]);
        let p = parents(artifact::Entity::CLASS);
        check::<artifact::Entity, workflow_run::Entity>(&p[0]);
        let p = parents(fg_job::Entity::CLASS);
        check::<fg_job::Entity, fg_workflow_run::Entity>(&p[0]);
        let p = parents(fg_issue_link::Entity::CLASS);
        check::<fg_issue_link::Entity, fg_test_case::Entity>(&p[0]);
        let p = parents(fg_failure_cluster_to_fg_test_case::Entity::CLASS);
        check::<fg_failure_cluster_to_fg_test_case::Entity, fg_failure_cluster::Entity>(&p[0]);
        check::<fg_failure_cluster_to_fg_test_case::Entity, fg_test_case::Entity>(&p[1]);
    }

    #[test]
    fn classes_are_counted_as_the_schema_states() {
        let count = |f: fn(&TenantClass) -> bool| TABLES.iter().filter(|t| f(&t.class)).count();
        assert_eq!(TABLES.len(), 27);
        assert_eq!(count(|c| *c == TenantClass::Tenant), 18);
        assert_eq!(count(|c| *c == TenantClass::TenantOptional), 1);
        assert_eq!(count(|c| matches!(c, TenantClass::Child { .. })), 5);
        assert_eq!(count(|c| *c == TenantClass::TenantRoot), 1);
        assert_eq!(count(|c| *c == TenantClass::Global), 2);
        // Every table of tenant data is filtered on its own columns; global tables are not.
        for t in TABLES {
            let filter = (t.row_filter)("o");
            assert_eq!(filter.is_some(), t.class.is_tenant_data(), "{}", t.name);
            if let Some(cond) = filter {
                let sql = sea_orm::sea_query::Query::select()
                    .cond_where(cond)
                    .to_string(sea_orm::sea_query::PostgresQueryBuilder);
                assert!(
                    sql.contains(&format!("WHERE \"{}\".", t.name)),
                    "{}: {sql}",
                    t.name
                );
            }
        }
    }

    #[test]
    fn conditions_filter_on_the_tenant_column_or_through_the_parent() {
        use crate::*;
        fn sql<E: EntityTrait>(q: sea_orm::Select<E>) -> String {
            q.build(DbBackend::Postgres).to_string()
        }
        assert_eq!(
            sql(fg_occurrence::Entity::find()
                .select_only()
                .filter(fg_occurrence::Entity::tenant_condition("org_a"))),
            r#"SELECT  FROM "FGOccurrence" WHERE "FGOccurrence"."orgId" = 'org_a'"#
        );
        let child = sql(fg_job::Entity::find()
            .select_only()
            .filter(fg_job::Entity::tenant_condition("org_a")));
        assert_eq!(
            child,
            r#"SELECT  FROM "FGJob" WHERE "FGJob"."orgId" = 'org_a'"#
        );
        let link = sql(fg_failure_cluster_to_fg_test_case::Entity::find()
            .select_only()
            .filter(fg_failure_cluster_to_fg_test_case::Entity::tenant_condition("o")));
        assert!(
            link.ends_with(r#"WHERE "_FGFailureClusterToFGTestCase"."orgId" = 'o'"#),
            "{link}"
        );
        let root = sql(organization::Entity::find()
            .select_only()
            .filter(organization::Entity::tenant_condition("o")));
        assert!(
            root.ends_with(r#"WHERE "Organization"."id" = 'o'"#),
            "{root}"
        );
        assert!(task::Entity::row_filter("o").is_some());
        assert!(user::Entity::row_filter("o").is_none());
    }
}
