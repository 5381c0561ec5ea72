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

use sea_orm::EntityTrait;

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
    /// No "orgId": the row belongs to the organization of its parent(s).
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
}

/// Tables whose rows belong to an organization: reachable only through a tenant scope.
pub trait TenantOwned: Tenancy {}

/// Tables with their own "orgId" column (tenant and tenant-optional).
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
/// flakeguard_entity::tenancy!(child, parents = [(workflow_run, "WorkflowRun", Column::WorkflowRunId, "workflowRunId")]);
/// flakeguard_entity::tenancy!(root, id = Column::Id);
/// flakeguard_entity::tenancy!(global);
/// ```
#[macro_export]
macro_rules! tenancy {
    (@base $class:expr) => {
        impl $crate::tenancy::Tenancy for Entity {
            const CLASS: $crate::tenancy::TenantClass = $class;
        }
    };
    (tenant, org_id = $col:expr) => {
        $crate::tenancy!(@base $crate::tenancy::TenantClass::Tenant);
        impl $crate::tenancy::TenantOwned for Entity {}
        impl $crate::tenancy::HasOrgId for Entity {
            const NULLABLE: bool = false;
            fn org_id_column() -> Column {
                $col
            }
        }
    };
    (tenant_optional, org_id = $col:expr) => {
        $crate::tenancy!(@base $crate::tenancy::TenantClass::TenantOptional);
        impl $crate::tenancy::TenantOwned for Entity {}
        impl $crate::tenancy::HasOrgId for Entity {
            const NULLABLE: bool = true;
            fn org_id_column() -> Column {
                $col
            }
        }
    };
    (child, parents = [$(($parent:ident, $parent_table:literal, $col:expr, $col_name:literal)),+ $(,)?]) => {
        $crate::tenancy!(@base $crate::tenancy::TenantClass::Child {
            parents: &[$($crate::tenancy::ParentLink {
                parent_table: $parent_table,
                column: $col_name,
            }),+],
        });
        impl $crate::tenancy::TenantOwned for Entity {}
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
        impl $crate::tenancy::TenantOwned for Entity {}
        impl $crate::tenancy::TenantRoot for Entity {
            fn id_column() -> Column {
                $col
            }
        }
    };
    (global) => {
        $crate::tenancy!(@base $crate::tenancy::TenantClass::Global);
        impl $crate::tenancy::Global for Entity {}
    };
}
