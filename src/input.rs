//! Input conversion: rows of tenant data from caller input (JSON request bodies), checked
//! before anything reaches the database.

use std::collections::BTreeSet;

use flakeguard_entity::tenancy::TenantOwned;
use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, IntoActiveModel, Iterable};

use crate::error::Operation;
use crate::{Error, Result, TenantScope};

impl TenantScope {
    /// Builds a row of `A` from JSON text, such as a request body: an object whose keys are the
    /// model's field names (`"repo_id"`); absent keys stay unset. Malformed JSON, a value of the
    /// wrong type, an unknown enum label or an unknown key is [`Error::InvalidInput`] naming
    /// what is wrong.
    /// Nothing is sent to the database; insert or update the row afterwards.
    pub fn row_from_json<A>(&self, json: &str) -> Result<A>
    where
        A: ActiveModelTrait + sea_orm::TryIntoModel<<A::Entity as EntityTrait>::Model>,
        A::Entity: TenantOwned,
        <A::Entity as EntityTrait>::Model:
            IntoActiveModel<A> + serde::de::DeserializeOwned + serde::Serialize,
    {
        let ctx = self.ctx_for::<A::Entity>(Operation::Parse);
        let invalid = |reason: String| Error::InvalidInput {
            context: ctx.clone(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| invalid(format!("malformed JSON: {e}")))?;
        let serde_json::Value::Object(object) = value else {
            return Err(invalid("expected a JSON object".to_owned()));
        };
        // Serde ignores keys it does not know; a misspelt field would silently stay unset.
        let known: BTreeSet<&str> = <A::Entity as EntityTrait>::Column::iter()
            .map(|c| c.json_key())
            .collect();
        if let Some(unknown) = object.keys().find(|k| !known.contains(k.as_str())) {
            return Err(invalid(format!(
                "unknown field \"{}\" (the fields are: {})",
                unknown.chars().take(80).collect::<String>().escape_debug(),
                known.iter().copied().collect::<Vec<_>>().join(", ")
            )));
        }
        // SeaORM fills absent keys with placeholder values before deserializing, and its
        // placeholder for a NOT NULL timestamp does not parse; give those absent keys a valid
        // one, and mark them unset again afterwards.
        let with_placeholders = |mut object: serde_json::Map<String, serde_json::Value>| {
            let mut absent = Vec::new();
            for col in <A::Entity as EntityTrait>::Column::iter() {
                let def = col.def();
                if !object.contains_key(col.json_key())
                    && !def.is_null()
                    && matches!(
                        def.get_column_type(),
                        sea_orm::ColumnType::TimestampWithTimeZone
                    )
                {
                    object.insert(col.json_key().to_owned(), "1970-01-01T00:00:00Z".into());
                    absent.push(col);
                }
            }
            (serde_json::Value::Object(object), absent)
        };
        let reason = |e: DbErr| match e {
            DbErr::Json(reason) | DbErr::Type(reason) | DbErr::Custom(reason) => reason,
            other => other.to_string(),
        };
        let (value, absent) = with_placeholders(object.clone());
        match A::from_json(value) {
            Ok(mut row) => {
                for col in absent {
                    row.not_set(col);
                }
                Ok(row)
            }
            Err(e) => {
                // Name the field, which the deserializer's message does not: try each key alone.
                for (key, v) in object {
                    let alone = serde_json::Map::from_iter([(key.clone(), v)]);
                    if let Err(e) = A::from_json(with_placeholders(alone).0) {
                        return Err(invalid(format!("field \"{key}\": {}", reason(e))));
                    }
                }
                Err(invalid(reason(e)))
            }
        }
    }
}
