//! The three PostgreSQL enum types, value for value in the database's order. In JSON (serde)
//! they use the database's labels too (`"IN_PROGRESS"`).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// `"TaskStatus"`: the state of a `Task`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "TaskStatus")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    /// `PENDING` (the default).
    #[sea_orm(string_value = "PENDING")]
    Pending,
    /// `IN_PROGRESS`.
    #[sea_orm(string_value = "IN_PROGRESS")]
    InProgress,
    /// `COMPLETED`.
    #[sea_orm(string_value = "COMPLETED")]
    Completed,
    /// `FAILED`.
    #[sea_orm(string_value = "FAILED")]
    Failed,
}

/// `"Priority"`: the priority of a `Task`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "Priority")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Priority {
    /// `LOW`.
    #[sea_orm(string_value = "LOW")]
    Low,
    /// `MEDIUM` (the default).
    #[sea_orm(string_value = "MEDIUM")]
    Medium,
    /// `HIGH`.
    #[sea_orm(string_value = "HIGH")]
    High,
    /// `CRITICAL`.
    #[sea_orm(string_value = "CRITICAL")]
    Critical,
}

/// `"FGQuarantineState"`: the state of an `FGQuarantineDecision`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "FGQuarantineState")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FgQuarantineState {
    /// `PROPOSED` (the default).
    #[sea_orm(string_value = "PROPOSED")]
    Proposed,
    /// `ACTIVE`.
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    /// `EXPIRED`.
    #[sea_orm(string_value = "EXPIRED")]
    Expired,
    /// `DISMISSED`.
    #[sea_orm(string_value = "DISMISSED")]
    Dismissed,
    /// `RESOLVED`.
    #[sea_orm(string_value = "RESOLVED")]
    Resolved,
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveEnum, Iterable};

    /// JSON and the database spell every value the same way.
    #[test]
    fn json_uses_the_database_labels() {
        fn check<E: ActiveEnum<Value = String> + Iterable + Serialize>() {
            for v in E::iter() {
                assert_eq!(
                    serde_json::to_value(&v).unwrap(),
                    serde_json::json!(v.to_value())
                );
            }
        }
        check::<TaskStatus>();
        check::<Priority>();
        check::<FgQuarantineState>();
    }
}
