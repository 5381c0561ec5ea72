//! The Rust lock's last check: a statement built from a caller's expressions is parsed and
//! verified before it is sent.
//!
//! # Design
//!
//! A scope accepts SeaORM conditions and orderings, and those can carry anything sea-query can
//! express: raw SQL text (`Expr::cust`), custom function names (written unquoted), subqueries
//! over any table. Walking sea-query's expression tree cannot see all of it (a `CASE` keeps its
//! parts private), and would miss whatever new shapes a later query adds. So the check is on
//! what is sent: the statement is rendered as PostgreSQL will see it and parsed with
//! `sqlparser`, and then:
//!
//! - every table it names, in `FROM`, `JOIN`, a subquery or anywhere else, is a table of the
//!   schema (no view, no function in `FROM`, no `WITH`);
//! - every reference to a table of tenant data has the scope's own tenant predicate as a
//!   top-level `AND` of its query block (its `WHERE`, or the `ON` of its join): `"orgId" = $n`
//!   whose bound value is this tenant; for a child table, its parent column `IN` a subquery
//!   over the parent (which must carry the parent's predicate in turn);
//! - every function is on an allow-list ([`FUNCTIONS`]);
//! - for [`GlobalTables`](crate::GlobalTables), no table of tenant data appears at all.
//!
//! Raw text that closes the scope's parentheses (`true) OR (true`) moves the tenant predicate
//! out of the top-level `AND`, and is refused for that; a subquery the caller wrote over a
//! tenant table lacks the predicate, and is refused too, while one built by
//! [`TenantScope::exists`](crate::TenantScope::exists) carries it. The verdict depends only on
//! the SQL text (values are bound parameters), so it is cached by that text: a statement seen
//! before costs one hash lookup and a comparison of the bound tenant values.
//!
//! Statements with no caller expression in them (`find_by_id`, `insert`, `update`, `delete`)
//! are built by the scope alone and are not parsed.

use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::{LazyLock, RwLock};

use flakeguard_entity::TableInfo;
use flakeguard_entity::tenancy::TenantClass;
use sqlparser::ast::{
    BinaryOperator, Expr, FromTable, Ident, InTarget, JoinConstraint, JoinOperator, ObjectName,
    ObjectNamePart, Query, Select, SelectItem, SetExpr, Statement, TableFactor, TableWithJoins,
    Value, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// The SQL functions a scope's expressions may call (lower case).
pub const FUNCTIONS: &[&str] = &[
    "abs",
    "avg",
    "btrim",
    "ceil",
    "char_length",
    "coalesce",
    "concat",
    "count",
    "date_trunc",
    "floor",
    "greatest",
    "least",
    "length",
    "lower",
    "ltrim",
    "max",
    "md5",
    "min",
    "now",
    "nullif",
    "random",
    "round",
    "rtrim",
    "starts_with",
    "sum",
    "unnest",
    "upper",
];

/// The first piece of raw SQL in a caller's expression: text (`Expr::cust`), a custom function
/// name, keyword or operator. Such text is refused before the statement is even built; the
/// parse of the whole statement (see [`verify`]) then checks what the walk cannot see (the
/// inside of subqueries and `CASE`).
pub(crate) fn raw_text(e: &sea_orm::sea_query::Expr) -> Option<String> {
    use sea_orm::sea_query::{BinOper, Expr as E, Func, Keyword};
    match e {
        E::Custom(text) => Some(match text.strip_prefix(REFUSED) {
            Some(reason) => reason.to_owned(),
            None => format!("raw SQL text (Expr::cust) {:?}", cut(text)),
        }),
        E::CustomWithExpr(text, _) => Some(format!(
            "raw SQL text (Expr::cust_with_values or cust_with_expr) {:?}",
            cut(text)
        )),
        E::Keyword(Keyword::Custom(k)) => {
            Some(format!("the custom keyword {:?}", cut(&k.to_string())))
        }
        E::Binary(left, BinOper::As, right) => match right.as_ref() {
            // `CAST(x AS type)`: sea-query writes the type as raw text; a plain type name is fine.
            E::Custom(t) if is_type_name(t) => raw_text(left),
            other => raw_text(left).or_else(|| raw_text(other)),
        },
        E::Binary(_, BinOper::Custom(op), _) => Some(format!("the custom operator {:?}", cut(op))),
        E::Binary(left, _, right) => raw_text(left).or_else(|| raw_text(right)),
        E::Unary(_, inner) | E::AsEnum(_, inner) => raw_text(inner),
        E::Tuple(items) => items.iter().find_map(raw_text),
        E::FunctionCall(call) => match call.get_func() {
            Func::Custom(name) => Some(format!(
                "the custom function name {:?}",
                cut(&name.to_string())
            )),
            _ => call.get_args().iter().find_map(raw_text),
        },
        _ => None,
    }
}

/// Marks a refusal found where the walk cannot reach later (inside a scope-built subquery):
/// [`refused_condition`] puts it at the top of the caller's condition, where the walk finds it.
const REFUSED: &str = "/* flakeguard: refused */ ";

/// A condition that stands for `reason`: the walk of the expression it is put into refuses it
/// with that reason, before anything is sent.
pub(crate) fn refused_condition(reason: String) -> sea_orm::Condition {
    sea_orm::Condition::all().add(sea_orm::sea_query::Expr::cust(format!("{REFUSED}{reason}")))
}

/// A type name as a cast may use it: letters, digits, `_`, spaces, `[]`.
fn is_type_name(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ' ' | '[' | ']'))
}

/// Text as an error message quotes it: at most 80 characters.
fn cut(text: &str) -> String {
    text.chars().take(80).collect()
}

/// The reason of an [`Error::InvalidInput`](crate::Error::InvalidInput) for a refused statement.
pub(crate) fn refusal(reason: &str) -> String {
    format!(
        "refused by the tenant check, nothing was sent: {reason}; a scope's expressions may use \
         the columns of its tables, values, operators, the functions of ALLOWED_FUNCTIONS, and \
         subqueries from TenantScope::exists and TenantScope::in_subquery; for other SQL use \
         query_raw, which relies on row-level security alone"
    )
}

/// Who a statement is checked for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode<'a> {
    /// A scope of this tenant: tenant tables only with its predicate.
    Tenant(&'a str),
    /// The global tables' handle: no tenant table at all.
    Global,
}

/// The verdict on one SQL text: for each reference to a table of tenant data, the placeholders
/// of its tenant-predicate conjuncts (one of them must hold the tenant), or why it is refused.
type Verdict = Result<Vec<Vec<usize>>, String>;

/// Verdicts by SQL text, for scopes and for the global tables' handle. Bounded: cleared when it
/// grows past [`CACHE_LIMIT`] texts (texts vary with the length of `IN` lists, so their number
/// is not fixed).
/// Read-mostly: every call reads, only a text seen for the first time writes.
static VERDICTS: LazyLock<[RwLock<HashMap<String, Verdict>>; 2]> =
    LazyLock::new(|| [RwLock::new(HashMap::new()), RwLock::new(HashMap::new())]);
const CACHE_LIMIT: usize = 10_000;

/// Verifies `stmt` for `mode` (see the module's design notes); the reason when it is refused.
pub(crate) fn verify(stmt: &sea_orm::Statement, mode: Mode<'_>) -> Result<(), String> {
    let (cache, org) = match mode {
        Mode::Tenant(org) => (&VERDICTS[0], Some(org)),
        Mode::Global => (&VERDICTS[1], None),
    };
    let bound = |groups: &[Vec<usize>]| check_bound(stmt, org, groups);
    {
        let verdicts = cache.read().unwrap_or_else(|p| p.into_inner());
        if let Some(verdict) = verdicts.get(stmt.sql.as_str()) {
            return match verdict {
                Ok(params) => bound(params),
                Err(reason) => Err(reason.clone()),
            };
        }
    }
    let verdict = analyse(&stmt.sql, org.is_some());
    let result = match &verdict {
        Ok(params) => bound(params),
        Err(reason) => Err(reason.clone()),
    };
    let mut verdicts = cache.write().unwrap_or_else(|p| p.into_inner());
    if verdicts.len() >= CACHE_LIMIT {
        verdicts.clear();
    }
    verdicts.insert(stmt.sql.clone(), verdict);
    result
}

/// Whether the placeholders of the tenant predicates hold this scope's tenant.
fn check_bound(
    stmt: &sea_orm::Statement,
    org: Option<&str>,
    groups: &[Vec<usize>],
) -> Result<(), String> {
    let Some(org) = org else {
        return Ok(());
    };
    let values = stmt.values.as_ref().map(|v| v.0.as_slice()).unwrap_or(&[]);
    let holds_tenant = |n: &usize| {
        matches!(
            n.checked_sub(1).and_then(|i| values.get(i)),
            Some(sea_orm::Value::String(Some(v))) if v.as_str() == org
        )
    };
    // Each reference needs one conjunct bound to the tenant; others (`"orgId" = 'x'` from the
    // caller) only narrow it.
    match groups.iter().find(|g| !g.iter().any(holds_tenant)) {
        Some(group) => Err(format!(
            "the tenant predicate {} is not bound to this scope's tenant",
            group
                .iter()
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(" or ")
        )),
        None => Ok(()),
    }
}

/// Parses and checks one SQL text; the placeholders that must hold the tenant.
fn analyse(sql: &str, tenant: bool) -> Verdict {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| format!("the statement does not parse as SQL ({e}); raw SQL text?"))?;
    let [statement] = statements.as_slice() else {
        return Err("the statement holds more than one SQL statement".to_owned());
    };
    let mut checker = Checker {
        tenant,
        params: BTreeSet::new(),
    };
    match statement {
        Statement::Query(_) => {}
        Statement::Update(update) => {
            if update.from.is_some() || !update.table.joins.is_empty() {
                return Err("an UPDATE with FROM or joins".to_owned());
            }
            checker.block(
                std::slice::from_ref(&update.table),
                update.selection.as_ref(),
            )?;
        }
        Statement::Delete(delete) => {
            if delete.using.is_some() || !delete.tables.is_empty() {
                return Err("a DELETE with USING".to_owned());
            }
            let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &delete.from;
            checker.block(from, delete.selection.as_ref())?;
        }
        _ => return Err("only SELECT, UPDATE and DELETE statements are verified".to_owned()),
    }
    match statement.visit(&mut checker) {
        ControlFlow::Break(reason) => Err(reason),
        ControlFlow::Continue(()) => Ok(checker.params.into_iter().collect()),
    }
}

struct Checker {
    tenant: bool,
    /// For each reference to a table of tenant data, the placeholders of its tenant-predicate
    /// conjuncts: one of each must hold the tenant.
    params: BTreeSet<Vec<usize>>,
}

impl Visitor for Checker {
    type Break = String;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        if query.with.is_some() {
            return ControlFlow::Break("a WITH clause (common table expression)".to_owned());
        }
        match query.body.as_ref() {
            SetExpr::Select(_) | SetExpr::Query(_) | SetExpr::SetOperation { .. } => {
                ControlFlow::Continue(())
            }
            SetExpr::Values(_) => ControlFlow::Continue(()),
            other => ControlFlow::Break(format!("a query of the form {other}")),
        }
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<String> {
        match self.block(&select.from, select.selection.as_ref()) {
            Ok(()) => ControlFlow::Continue(()),
            Err(reason) => ControlFlow::Break(reason),
        }
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<String> {
        match factor {
            TableFactor::Table { name, args, .. } => {
                if args.is_some() {
                    return ControlFlow::Break(format!("the table function {name}"));
                }
                match table_of(name) {
                    Some(_) => ControlFlow::Continue(()),
                    None => {
                        ControlFlow::Break(format!("{name}, which is not a table of the schema"))
                    }
                }
            }
            TableFactor::Derived { .. } => ControlFlow::Continue(()),
            other => ControlFlow::Break(format!("the FROM item {other}")),
        }
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
        if let Expr::In {
            target: InTarget::Table { .. } | InTarget::Unnest(_),
            ..
        } = expr
        {
            return ControlFlow::Break("an IN over a table".to_owned());
        }
        if let Expr::Function(f) = expr {
            let allowed = match f.name.0.as_slice() {
                [ObjectNamePart::Identifier(id)] => {
                    let name = folded(id);
                    FUNCTIONS.contains(&name.as_str())
                }
                _ => false,
            };
            if !allowed {
                return ControlFlow::Break(format!("the function {}", f.name));
            }
        }
        ControlFlow::Continue(())
    }
}

impl Checker {
    /// Checks one query block: every table of tenant data it names carries the tenant
    /// predicate as a top-level AND of the block's WHERE, or of its join's ON.
    fn block(&mut self, from: &[TableWithJoins], selection: Option<&Expr>) -> Result<(), String> {
        let mut where_conjuncts = Vec::new();
        if let Some(e) = selection {
            conjuncts(e, &mut where_conjuncts);
        }
        let factors = from.iter().map(|t| 1 + t.joins.len()).sum::<usize>();
        for twj in from {
            self.factor(&twj.relation, &where_conjuncts, factors)?;
            for join in &twj.joins {
                let on = match &join.join_operator {
                    JoinOperator::Join(c)
                    | JoinOperator::Inner(c)
                    | JoinOperator::Left(c)
                    | JoinOperator::LeftOuter(c) => c,
                    other => return Err(format!("a join of the kind {other:?}")),
                };
                let mut all = where_conjuncts.clone();
                match on {
                    JoinConstraint::On(e) => conjuncts(e, &mut all),
                    JoinConstraint::None => {}
                    _ => return Err("a join with USING or NATURAL".to_owned()),
                }
                self.factor(&join.relation, &all, factors)?;
            }
        }
        Ok(())
    }

    /// Checks one table of a block against the conjuncts that bind it.
    fn factor(
        &mut self,
        factor: &TableFactor,
        conjuncts: &[&Expr],
        factors: usize,
    ) -> Result<(), String> {
        let TableFactor::Table { name, alias, .. } = factor else {
            return Ok(());
        };
        let Some(info) = table_of(name) else {
            return Err(format!("{name}, which is not a table of the schema"));
        };
        if !info.class.is_tenant_data() {
            return Ok(());
        }
        if !self.tenant {
            return Err(format!("\"{}\", a table of tenant data", info.name));
        }
        let reference = alias
            .as_ref()
            .map(|a| a.name.value.clone())
            .unwrap_or_else(|| info.name.to_owned());
        let alone = factors == 1;
        let bound = match info.class {
            TenantClass::Tenant | TenantClass::TenantOptional => {
                self.equals_tenant(conjuncts, &reference, "orgId", alone)
            }
            TenantClass::TenantRoot => self.equals_tenant(conjuncts, &reference, "id", alone),
            // Its own "orgId" (migration step 8), or its parents through their subqueries, each
            // checked as a block of its own.
            TenantClass::Child { parents } => {
                self.equals_tenant(conjuncts, &reference, "orgId", alone)
                    || parents.iter().all(|p| {
                        conjuncts
                            .iter()
                            .any(|c| in_parent(c, &reference, p.column, p.parent_table, alone))
                    })
            }
            TenantClass::Global => true,
        };
        if bound {
            Ok(())
        } else {
            Err(format!(
                "\"{}\" without this scope's tenant predicate as a top-level AND of its query \
                 (a subquery the scope did not build, or raw SQL text)",
                info.name
            ))
        }
    }

    /// Whether a conjunct is `reference.column = $n`; records the `$n` found, one of which must
    /// hold the tenant.
    fn equals_tenant(
        &mut self,
        conjuncts: &[&Expr],
        reference: &str,
        column: &str,
        alone: bool,
    ) -> bool {
        let mut found = Vec::new();
        for c in conjuncts {
            if let Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } = unnest(c)
            {
                for (col, val) in [(left, right), (right, left)] {
                    if is_column(col, reference, column, alone)
                        && let Some(n) = placeholder(val)
                    {
                        found.push(n);
                    }
                }
            }
        }
        if found.is_empty() {
            return false;
        }
        self.params.insert(found);
        true
    }
}

/// `reference.column IN (SELECT parent.id FROM parent ...)`; the subquery is checked as a
/// block of its own.
fn in_parent(c: &Expr, reference: &str, column: &str, parent: &str, alone: bool) -> bool {
    let Expr::In {
        expr,
        target: InTarget::Subquery(subquery),
        negated: false,
        ..
    } = unnest(c)
    else {
        return false;
    };
    if !is_column(expr, reference, column, alone) {
        return false;
    }
    let SetExpr::Select(select) = subquery.body.as_ref() else {
        return false;
    };
    let [twj] = select.from.as_slice() else {
        return false;
    };
    let TableFactor::Table { name, alias, .. } = &twj.relation else {
        return false;
    };
    let parent_ref = alias
        .as_ref()
        .map(|a| a.name.value.clone())
        .unwrap_or_else(|| parent.to_owned());
    twj.joins.is_empty()
        && table_of(name).is_some_and(|t| t.name == parent)
        && matches!(select.projection.as_slice(),
            [SelectItem::UnnamedExpr(e)] if is_column(e, &parent_ref, "id", true))
}

/// The schema's table an object name refers to, if it is one (`public` schema only).
fn table_of(name: &ObjectName) -> Option<&'static TableInfo> {
    let idents: Vec<&Ident> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(id) => Some(id),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let table = match idents.as_slice() {
        [table] => table,
        [schema, table] if folded(schema) == "public" => table,
        _ => return None,
    };
    flakeguard_entity::TABLES
        .iter()
        .find(|t| folded(table) == t.name)
}

/// An identifier as PostgreSQL resolves it: quoted ones as written, others folded to lower case.
fn folded(id: &Ident) -> String {
    match id.quote_style {
        Some(_) => id.value.clone(),
        None => id.value.to_lowercase(),
    }
}

/// Whether `e` is the column `reference.column` (or, in a block of one table, `column`).
fn is_column(e: &Expr, reference: &str, column: &str, alone: bool) -> bool {
    match unnest(e) {
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [t, c] => folded(t) == reference && folded(c) == column,
            [s, t, c] => folded(s) == "public" && folded(t) == reference && folded(c) == column,
            _ => false,
        },
        Expr::Identifier(c) => alone && folded(c) == column,
        _ => false,
    }
}

/// The number of a `$n` placeholder.
fn placeholder(e: &Expr) -> Option<usize> {
    match unnest(e) {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

fn unnest(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) => unnest(inner),
        other => other,
    }
}

/// The top-level AND terms of `e`.
fn conjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(sql: &str) -> Verdict {
        analyse(sql, true)
    }

    #[test]
    fn the_tenant_predicate_must_be_a_top_level_and() {
        let ok = r#"SELECT "FGTestCase"."id" FROM "FGTestCase" WHERE "FGTestCase"."orgId" = $1 AND "FGTestCase"."name" = $2"#;
        assert_eq!(tenant(ok), Ok(vec![vec![1]]));
        let or = r#"SELECT "FGTestCase"."id" FROM "FGTestCase" WHERE "FGTestCase"."orgId" = $1 AND (true) OR (true)"#;
        assert!(tenant(or).is_err());
        let literal =
            r#"SELECT "FGTestCase"."id" FROM "FGTestCase" WHERE "FGTestCase"."orgId" = 'org-a'"#;
        assert!(tenant(literal).is_err());
    }

    #[test]
    fn subqueries_need_their_own_predicate_and_functions_the_allow_list() {
        let sub = r#"SELECT "FGRepository"."id" FROM "FGRepository" WHERE "FGRepository"."orgId" = $1 AND EXISTS (SELECT 1 FROM "FGTestCase" WHERE "FGTestCase"."name" = $2)"#;
        assert!(tenant(sub).unwrap_err().contains("\"FGTestCase\""));
        let scoped = r#"SELECT "FGRepository"."id" FROM "FGRepository" WHERE "FGRepository"."orgId" = $1 AND EXISTS (SELECT 1 FROM "FGTestCase" WHERE "FGTestCase"."orgId" = $2 AND "FGTestCase"."name" = $3)"#;
        assert_eq!(tenant(scoped), Ok(vec![vec![1], vec![2]]));
        let func = r#"SELECT "FGRepository"."id" FROM "FGRepository" WHERE "FGRepository"."orgId" = $1 AND query_to_xml($2, true, true, '') IS NOT NULL"#;
        assert!(tenant(func).unwrap_err().contains("query_to_xml"));
        let child = r#"SELECT "FGJob"."id" FROM "FGJob" WHERE "FGJob"."runId" IN (SELECT "FGWorkflowRun"."id" FROM "FGWorkflowRun" WHERE "FGWorkflowRun"."orgId" = $1)"#;
        assert_eq!(tenant(child), Ok(vec![vec![1]]));
    }

    #[test]
    fn raw_text_in_a_callers_expression_is_found_and_plain_casts_pass() {
        use sea_orm::sea_query::{Alias, Expr as E, ExprTrait, Func};
        assert!(raw_text(&E::cust("true")).is_some());
        let nested = E::col(Alias::new("a"))
            .eq(1)
            .and(E::cust_with_values("b = $1", [2]));
        assert!(raw_text(&nested).unwrap().contains("cust_with_values"));
        let func = E::from(Func::cust(Alias::new("true OR starts_with")).arg("x"));
        assert!(raw_text(&func).unwrap().contains("custom function"));
        let cast = E::col(Alias::new("a")).cast_as(Alias::new("text")).eq("x");
        assert_eq!(raw_text(&cast), None);
        let crafted = E::col(Alias::new("a")).cast_as(Alias::new("text) OR (true"));
        assert!(raw_text(&crafted).is_some());
        assert_eq!(raw_text(&E::col(Alias::new("a")).is_in([1, 2])), None);
    }

    #[test]
    fn global_statements_name_no_tenant_table() {
        let join = r#"SELECT "User"."id" FROM "User" INNER JOIN "OrganizationUser" ON "OrganizationUser"."userId" = "User"."id""#;
        assert!(analyse(join, false).is_err());
        let plain = r#"SELECT "User"."id" FROM "User" WHERE "User"."email" = $1"#;
        assert_eq!(analyse(plain, false), Ok(vec![]));
    }
}
