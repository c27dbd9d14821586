//! Statements to DataFusion logical plans: planning one statement (types coerced), the
//! check that an INSERT gives each sink column a type Flink casts to it implicitly, and
//! the inlining of views into an INSERT's plan.

use crate::catalog::Catalog;
use crate::error::{Result, SqlError};
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::Analyzer;
use datafusion::sql::planner::{ParserOptions, SqlToRel};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::tokenizer::Location;
use std::sync::Arc;

/// An INSERT's query must give each sink column its type or one Flink casts to it
/// implicitly (a wider number): DataFusion plans any cast, so `INSERT INTO t (k BIGINT)
/// SELECT s` of a VARCHAR would plan and fail on the first row at run time. Flink refuses it
/// when planning ("Incompatible types for sink column"), and so does this.
pub(crate) fn check_insert_types(p: &LogicalPlan, at: Location) -> Result<()> {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::{Expr, ExprSchemable};
    let LogicalPlan::Dml(dml) = p else {
        return Ok(());
    };
    let LogicalPlan::Projection(proj) = dml.input.as_ref() else {
        return Ok(());
    };
    let implicit = |from: &DataType, to: &DataType| {
        from == to
            || from == &DataType::Null
            || (from.is_integer()
                && (to.is_integer() || to.is_floating())
                && width(from) <= width(to))
            || (from.is_floating() && to.is_floating() && width(from) <= width(to))
            || (matches!(from, DataType::Decimal128(..) | DataType::Decimal256(..))
                && to.is_floating())
            || (matches!(from, DataType::Timestamp(..)) && matches!(to, DataType::Timestamp(..)))
            || (is_text(from) && is_text(to))
    };
    for (e, field) in proj.expr.iter().zip(dml.target.schema().fields()) {
        let Expr::Cast(c) = e.clone().unalias() else {
            continue;
        };
        let from = c
            .expr
            .get_type(proj.input.schema())
            .map_err(|e| SqlError::from_datafusion(e, at))?;
        if !implicit(&from, field.data_type()) {
            return Err(SqlError::at(
                at,
                format!(
                    "INSERT INTO {}: column {} is {}, and the query gives it {} ({}), which Flink does not cast implicitly; write CAST(… AS {}) if that is meant",
                    dml.table_name.table(),
                    field.name(),
                    sql_type_name(field.data_type()),
                    sql_type_name(&from),
                    c.expr,
                    sql_type_name(field.data_type()),
                ),
            ));
        }
    }
    Ok(())
}

fn is_text(t: &datafusion::arrow::datatypes::DataType) -> bool {
    use datafusion::arrow::datatypes::DataType;
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Bits of a number type (for widening checks).
fn width(t: &datafusion::arrow::datatypes::DataType) -> u32 {
    t.primitive_width().map_or(u32::MAX, |w| w as u32 * 8)
}

/// A column type in Flink SQL's words.
fn sql_type_name(t: &datafusion::arrow::datatypes::DataType) -> String {
    use datafusion::arrow::datatypes::DataType;
    match t {
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Timestamp(..) => "TIMESTAMP(3)".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        other => other.to_string(),
    }
}

/// Plans one statement with DataFusion, types coerced.
pub(crate) fn plan(catalog: &Catalog, stmt: Statement, at: Location) -> Result<LogicalPlan> {
    let opts = ParserOptions::new()
        .with_collect_spans(true)
        .with_map_string_types_to_utf8view(false);
    let planner = SqlToRel::new_with_options(catalog, opts);
    let p = planner
        .sql_statement_to_plan(stmt)
        .map_err(|e| SqlError::from_datafusion(e, at))?;
    use datafusion::logical_expr::planner::ContextProvider;
    Analyzer::new()
        .execute_and_check(p, catalog.options(), |_, _| {})
        .map_err(|e| SqlError::from_datafusion(e, at))
}

/// Replaces scans of views by the views' plans and merges the projections that leaves
/// (DataFusion's projection optimizer: consecutive projections merge, scans read only the
/// columns used), so each query becomes as few operators as its shape needs.
pub(crate) fn inline_views(catalog: &Catalog, p: LogicalPlan, at: Location) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::SubqueryAlias;
    use datafusion::optimizer::extract_equijoin_predicate::ExtractEquijoinPredicate;
    use datafusion::optimizer::optimize_projections::OptimizeProjections;
    use datafusion::optimizer::push_down_filter::PushDownFilter;
    use datafusion::optimizer::single_distinct_to_groupby::SingleDistinctToGroupBy;
    use datafusion::optimizer::{Optimizer, OptimizerContext};
    let inlined = p
        .transform_up(|node| match &node {
            LogicalPlan::TableScan(scan) => match catalog.views.get(scan.table_name.table()) {
                Some(v) if scan.projection.is_none() => {
                    let alias =
                        SubqueryAlias::try_new(Arc::new(v.plan.clone()), scan.table_name.clone())?;
                    Ok(Transformed::yes(LogicalPlan::SubqueryAlias(alias)))
                }
                _ => Ok(Transformed::no(node)),
            },
            _ => Ok(Transformed::no(node)),
        })
        .map_err(|e| SqlError::from_datafusion(e, at))?
        .data;
    // COUNT(DISTINCT x) becomes a GROUP BY over x first and a COUNT over that; filters move
    // into joins (their equalities become join keys, `FROM a, b WHERE a.x = b.y` an inner
    // join); then projections merge and scans read only the columns used.
    Optimizer::with_rules(vec![
        Arc::new(SingleDistinctToGroupBy::new()),
        Arc::new(PushDownFilter::new()),
        Arc::new(ExtractEquijoinPredicate::new()),
        Arc::new(OptimizeProjections::new()),
    ])
    .optimize(
        inlined,
        &OptimizerContext::new().with_skip_failing_rules(false),
        |_, _| {},
    )
    .map_err(|e| SqlError::from_datafusion(e, at))
}
