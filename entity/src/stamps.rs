//! Ids and timestamps that the crate fills in itself.
//!
//! Every entity declares its stamps once with [`stamps!`](macro@crate::stamps), which implements
//! [`Stamped`] on the active model, [`UpdatedAt`] on the entity, and SeaORM's
//! `ActiveModelBehavior` so that `ActiveModel::insert`, `update` and `save` apply them.
//!
//! # Design
//!
//! SeaORM runs `before_save` only for `ActiveModel::insert/update/save`. Bulk paths
//! (`insert_many`, `update_many`) bypass it, so the stamping lives in a trait of its own that
//! the tenant scope in `flakeguard-db` calls on those paths too.

use sea_orm::{ActiveModelTrait, DbErr, EntityTrait};

/// A new CUID2 id, as every generated "id" column holds.
pub fn new_id() -> String {
    cuid2::create_id()
}

/// Ids and timestamps of an active model that the crate sets.
pub trait Stamped: ActiveModelTrait {
    /// Prepares a row for insert: an unset generated id becomes a new CUID2 and the update
    /// timestamp is set to now.
    ///
    /// Fails for a table whose id the caller must supply (`Installation`) when it is unset.
    fn stamp_for_insert(&mut self) -> Result<(), DbErr>;
    /// Prepares a row for update: the update timestamp is set to now.
    fn stamp_for_update(&mut self);
}

/// The entity's "updatedAt" column ("lastUpdatedAt" for `FGFlakeScore`), if it has one.
pub trait UpdatedAt: EntityTrait {
    /// The column refreshed on every update, if any.
    fn updated_at_column() -> Option<Self::Column>;
}

/// Declares the stamps of the entity in the current module.
///
/// ```ignore
/// flakeguard_entity::stamps!(id = generated, updated_at = (updated_at, Column::UpdatedAt));
/// flakeguard_entity::stamps!(id = generated);             // no update timestamp
/// flakeguard_entity::stamps!(id = supplied, updated_at = (updated_at, Column::UpdatedAt));
/// flakeguard_entity::stamps!(id = none);                  // the link table
/// ```
#[macro_export]
macro_rules! stamps {
    (@behavior) => {
        #[$crate::__private::async_trait::async_trait]
        impl ::sea_orm::ActiveModelBehavior for ActiveModel {
            async fn before_save<C>(mut self, _db: &C, insert: bool) -> Result<Self, ::sea_orm::DbErr>
            where
                C: ::sea_orm::ConnectionTrait,
            {
                if insert {
                    $crate::stamps::Stamped::stamp_for_insert(&mut self)?;
                } else {
                    $crate::stamps::Stamped::stamp_for_update(&mut self);
                }
                Ok(self)
            }
        }
    };
    (@updated_at $col:expr) => {
        impl $crate::stamps::UpdatedAt for Entity {
            fn updated_at_column() -> Option<Column> {
                $col
            }
        }
    };
    (@id generated, $this:ident) => {
        if $this.id.is_not_set() {
            $this.id = ::sea_orm::ActiveValue::Set($crate::stamps::new_id());
        }
    };
    (@id supplied, $this:ident) => {
        if $this.id.is_not_set() {
            return Err(::sea_orm::DbErr::Custom(format!(
                "{}.id must be supplied by the caller",
                ::sea_orm::EntityName::table_name(&Entity)
            )));
        }
    };
    (id = none) => {
        $crate::stamps!(@behavior);
        $crate::stamps!(@updated_at None);
        impl $crate::stamps::Stamped for ActiveModel {
            fn stamp_for_insert(&mut self) -> Result<(), ::sea_orm::DbErr> {
                Ok(())
            }
            fn stamp_for_update(&mut self) {}
        }
    };
    (id = $id:ident, updated_at = ($field:ident, $col:expr)) => {
        $crate::stamps!(@behavior);
        $crate::stamps!(@updated_at Some($col));
        impl $crate::stamps::Stamped for ActiveModel {
            fn stamp_for_insert(&mut self) -> Result<(), ::sea_orm::DbErr> {
                $crate::stamps!(@id $id, self);
                self.$field = ::sea_orm::ActiveValue::Set($crate::__private::chrono::Utc::now());
                Ok(())
            }
            fn stamp_for_update(&mut self) {
                self.$field = ::sea_orm::ActiveValue::Set($crate::__private::chrono::Utc::now());
            }
        }
    };
    (id = $id:ident) => {
        $crate::stamps!(@behavior);
        $crate::stamps!(@updated_at None);
        impl $crate::stamps::Stamped for ActiveModel {
            fn stamp_for_insert(&mut self) -> Result<(), ::sea_orm::DbErr> {
                $crate::stamps!(@id $id, self);
                Ok(())
            }
            fn stamp_for_update(&mut self) {}
        }
    };
}
