//! The write guard: what every write is checked for before it is sent. "orgId" is filled in
//! or must name this tenant, and every foreign key into tenant data must point at a row this
//! tenant sees.

use std::collections::BTreeSet;

use flakeguard_entity::stamps::Stamped;
use flakeguard_entity::tenancy::{TenantClass, TenantOwned};
use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityName,
    EntityTrait, IdenStatic, Iterable, RelationTrait, Value,
};

use super::TenantScope;
use super::unit::Unit;
use crate::error::Context;
use crate::{Error, Result};

/// A foreign key of a row about to be written, with the values it will hold.
#[derive(Clone)]
pub(crate) struct FkCheck {
    column: String,
    table: &'static str,
    key: String,
    values: BTreeSet<String>,
}

impl TenantScope {
    /// Fills in what an insert needs and refuses a row that names another organization.
    pub(crate) fn prepare_insert<A>(&self, ctx: &Context, row: &mut A) -> Result<()>
    where
        A: ActiveModelTrait + Stamped,
        A::Entity: TenantOwned,
    {
        if let Some(col) = tenant_column::<A::Entity>() {
            if row.is_not_set(col) {
                row.set(col, Value::from(self.org.as_str()));
            } else {
                self.check_names_self(ctx, col, row.get(col))?;
            }
        }
        row.stamp_for_insert().map_err(|e| Error::InvalidInput {
            context: ctx.clone(),
            reason: match e {
                DbErr::Custom(reason) => reason,
                other => other.to_string(),
            },
        })
    }

    /// A batch of rows for a bulk insert, each prepared as by [`TenantScope::prepare_insert`],
    /// with the foreign-key checks of all of them; `None` for an empty batch.
    pub(crate) fn prepare_batch<A>(
        &self,
        ctx: &Context,
        rows: impl IntoIterator<Item = A>,
    ) -> Result<Option<(Vec<A>, Vec<FkCheck>)>>
    where
        A: ActiveModelTrait + Stamped,
        A::Entity: TenantOwned,
    {
        let mut rows: Vec<A> = rows.into_iter().collect();
        if rows.is_empty() {
            return Ok(None);
        }
        for row in &mut rows {
            self.prepare_insert(ctx, row)?;
        }
        let checks = self.fk_checks(ctx, &rows, true)?;
        Ok(Some((rows, checks)))
    }

    /// Refuses an update that moves a row to another organization.
    pub(crate) fn check_update<A>(&self, ctx: &Context, row: &A) -> Result<()>
    where
        A: ActiveModelTrait,
        A::Entity: TenantOwned,
    {
        if let Some(col) = tenant_column::<A::Entity>() {
            let value = row.get(col);
            if value.is_set() {
                self.check_names_self(ctx, col, value)?;
            }
        }
        Ok(())
    }

    fn check_names_self<C: ColumnTrait>(
        &self,
        ctx: &Context,
        col: C,
        value: ActiveValue<Value>,
    ) -> Result<()> {
        let named = match value {
            ActiveValue::Set(v) | ActiveValue::Unchanged(v) => v,
            ActiveValue::NotSet => return Ok(()),
        };
        if named == Value::from(self.org.as_str()) {
            return Ok(());
        }
        Err(Error::TenantDenied {
            context: ctx.clone(),
            reason: format!("\"{}\" does not name this organization", col.as_str()),
        })
    }

    /// The foreign keys of `rows` that point at tenant data, with the values the write gives
    /// them. For an insert every present value counts; for an update only changed ones.
    pub(crate) fn fk_checks<A>(
        &self,
        ctx: &Context,
        rows: &[A],
        insert: bool,
    ) -> Result<Vec<FkCheck>>
    where
        A: ActiveModelTrait,
        A::Entity: TenantOwned,
    {
        type E<A> = <A as ActiveModelTrait>::Entity;
        let own = E::<A>::default().table_name();
        let mut checks = Vec::new();
        for rel in <<E<A> as EntityTrait>::Relation as Iterable>::iter() {
            let def = rel.def();
            if def.is_owner || table_of(&def.from_tbl).as_deref() != Some(own) {
                continue;
            }
            let Some(target) = table_of(&def.to_tbl).and_then(|t| flakeguard_entity::table(&t))
            else {
                continue;
            };
            // "orgId" is checked against the scope itself; global targets are not tenant data.
            if matches!(target.class, TenantClass::TenantRoot | TenantClass::Global) {
                continue;
            }
            let (Some(from), Some(key)) = (single(&def.from_col), single(&def.to_col)) else {
                continue;
            };
            let Some(col) = <E<A> as EntityTrait>::Column::iter().find(|c| c.as_str() == from)
            else {
                continue;
            };
            let mut values = BTreeSet::new();
            for row in rows {
                let v = match row.get(col) {
                    ActiveValue::Set(v) => v,
                    ActiveValue::Unchanged(v) if insert => v,
                    _ => continue,
                };
                match v {
                    Value::String(Some(s)) => {
                        values.insert(s);
                    }
                    Value::String(None) => {}
                    other => {
                        return Err(Error::InvalidInput {
                            context: ctx.clone(),
                            reason: format!("\"{from}\" holds {other:?}, not a text id"),
                        });
                    }
                }
            }
            if !values.is_empty() {
                checks.push(FkCheck {
                    column: from,
                    table: target.name,
                    key,
                    values,
                });
            }
        }
        Ok(checks)
    }

    /// The ownership checks as a condition the write itself carries (no round trip of their
    /// own): for each foreign key, its referenced rows are among those this tenant sees.
    /// `EXISTS` for one referenced row, a count for several.
    pub(crate) fn owned(&self, checks: &[FkCheck]) -> Condition {
        let mut cond = Condition::all();
        for check in checks {
            let Some(filter) = flakeguard_entity::table(check.table)
                .and_then(|t| (t.row_filter)(self.org.as_str()))
            else {
                continue;
            };
            let key = Expr::col((Alias::new(check.table), Alias::new(check.key.as_str())));
            let mut sub = Query::select();
            sub.from(Alias::new(check.table)).cond_where(filter);
            cond = if let [value] = check.values.iter().collect::<Vec<_>>()[..] {
                sub.expr(Expr::val(1)).and_where(key.eq(value.as_str()));
                cond.add(Expr::exists(sub))
            } else {
                sub.expr(Expr::col(Asterisk).count())
                    .and_where(key.is_in(check.values.iter().cloned()));
                let n = i64::try_from(check.values.len()).unwrap_or(i64::MAX);
                cond.add(Expr::SubQuery(None, Box::new(sub.into())).eq(n))
            };
        }
        cond
    }

    /// The values `row` sets, as a `SELECT` of them (no `FROM`) that returns its row only when
    /// `checks` hold: an `INSERT ... SELECT` with it writes the row, or nothing. The columns are
    /// those, and in the order, that SeaORM's insert of `row` names.
    pub(crate) fn owned_values<A>(&self, row: &A, checks: &[FkCheck]) -> SelectStatement
    where
        A: ActiveModelTrait,
    {
        let mut select = Query::select();
        for col in <<A as ActiveModelTrait>::Entity as EntityTrait>::Column::iter() {
            if let ActiveValue::Set(v) | ActiveValue::Unchanged(v) = row.get(col) {
                select.expr(col.save_as(Expr::val(v)));
            }
        }
        select.cond_where(self.owned(checks));
        select
    }

    /// One round trip that counts, for each foreign key, the referenced rows this tenant sees;
    /// refuses the write when any referenced row is missing from that count.
    pub(crate) async fn verify_fks(
        &self,
        unit: &Unit<'_>,
        ctx: &Context,
        checks: &[FkCheck],
    ) -> Result<()> {
        if checks.is_empty() {
            return Ok(());
        }
        let mut query = Query::select();
        for (i, check) in checks.iter().enumerate() {
            let Some(filter) = flakeguard_entity::table(check.table)
                .and_then(|t| (t.row_filter)(self.org.as_str()))
            else {
                continue;
            };
            let sub = Query::select()
                .expr(Expr::col(Asterisk).count())
                .from(Alias::new(check.table))
                .and_where(
                    Expr::col((Alias::new(check.table), Alias::new(check.key.as_str())))
                        .is_in(check.values.iter().cloned()),
                )
                .cond_where(filter)
                .to_owned();
            query.expr_as(
                Expr::SubQuery(None, Box::new(sub.into())),
                Alias::new(format!("c{i}")),
            );
        }
        let row = unit
            .check(ctx, unit.conn().query_one(&query).await)?
            .ok_or_else(|| {
                Error::from_db(
                    ctx.clone(),
                    DbErr::RecordNotFound("foreign key check".to_owned()),
                )
            })?;
        for (i, check) in checks.iter().enumerate() {
            let seen: i64 = row
                .try_get("", &format!("c{i}"))
                .map_err(|e| Error::from_db(ctx.clone(), e))?;
            if usize::try_from(seen).ok() != Some(check.values.len()) {
                return Err(Error::TenantDenied {
                    context: ctx.clone(),
                    reason: format!(
                        "\"{}\" references a \"{}\" row that this organization does not have",
                        check.column, check.table
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The column holding the tenant id: "orgId" (child tables have their own from migration
/// step 8), or "id" for `Organization`.
pub(crate) fn tenant_column<E: TenantOwned>() -> Option<E::Column> {
    let name = match E::CLASS {
        TenantClass::Tenant | TenantClass::TenantOptional | TenantClass::Child { .. } => "orgId",
        TenantClass::TenantRoot => "id",
        TenantClass::Global => return None,
    };
    E::Column::iter().find(|c| c.as_str() == name)
}

pub(crate) fn table_of(t: &sea_orm::sea_query::TableRef) -> Option<String> {
    match t {
        sea_orm::sea_query::TableRef::Table(name, _) => Some(name.1.to_string()),
        _ => None,
    }
}

pub(crate) fn single(identity: &sea_orm::Identity) -> Option<String> {
    match identity {
        sea_orm::Identity::Unary(iden) => Some(iden.to_string()),
        _ => None,
    }
}
