//! Expressions as the runtime gets them: SQL text over the stream's unqualified column
//! names, and the rewrites that take them there.

use crate::error::{Result, SqlError};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::expr_rewriter::unnormalize_col;
use datafusion::logical_expr::Expr;
use datafusion::sql::sqlparser::tokenizer::Location;
use datafusion::sql::unparser::expr_to_sql;

/// `e` with its columns (resolved against `schema`, the plan node's input) renamed to the
/// stream's names for them: the runtime knows columns by these unqualified names, which after
/// a join differ from SQL's qualified ones (`a.id` and `b.id` become `id` and `id_2`).
pub(super) fn rename_columns(e: &Expr, schema: &DFSchema, names: &[String]) -> Expr {
    e.clone()
        .transform(|x| match &x {
            Expr::Column(c) => match schema.index_of_column(c) {
                Ok(i) if i < names.len() => Ok(Transformed::yes(Expr::Column(Column::from_name(
                    names[i].clone(),
                )))),
                _ => Ok(Transformed::no(x)),
            },
            _ => Ok(Transformed::no(x)),
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| e.clone())
}

/// An expression as SQL text over unqualified column names.
pub(super) fn sql_text(e: &Expr, at: Location) -> Result<String> {
    let e = unnormalize_col(e.clone().unalias());
    let e = e
        .transform_up(|x| match x {
            Expr::SimilarTo(like) => similar_to(like).map(Transformed::yes),
            other => Ok(Transformed::no(other)),
        })
        .map_err(|err| SqlError::from_datafusion(err, at))?
        .data;
    expr_to_sql(&e)
        .map(|s| s.to_string())
        .map_err(|err| SqlError::from_datafusion(err, at))
}

/// `x SIMILAR TO 'p'` as the anchored regular-expression match it means in Flink (the
/// unparser would print DataFusion's SIMILAR TO as LIKE, and DataFusion's SIMILAR TO is an
/// unanchored regex search besides).
fn similar_to(like: datafusion::logical_expr::Like) -> datafusion::error::Result<Expr> {
    use datafusion::logical_expr::lit;
    let fail = |m: String| datafusion::error::DataFusionError::Plan(m);
    let pattern = match like.pattern.as_ref() {
        Expr::Literal(datafusion::common::ScalarValue::Utf8(Some(p)), _) => p.clone(),
        _ => return Err(fail("a SIMILAR TO pattern must be a string literal".into())),
    };
    let regex = weir_types::patterns::similar_to_regex(&pattern, like.escape_char).map_err(fail)?;
    let flags = like.case_insensitive.then(|| lit("i"));
    let m = datafusion::functions::regex::expr_fn::regexp_like(*like.expr, lit(regex), flags);
    Ok(if like.negated {
        Expr::Not(Box::new(m))
    } else {
        m
    })
}

/// A column name as a quoted SQL identifier.
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `e` without the casts of integer columns to BIGINT that DataFusion's type coercion puts
/// around SUM's argument (`SUM(qty)` of an INT column is `SUM(CAST(qty AS BIGINT))` after
/// it): the runtime sums every integer type as a 64-bit integer anyway, and the cast would
/// make the aggregate's argument an expression it does not take.
pub(super) fn integer_widening_free(e: &Expr, schema: &DFSchema) -> Expr {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::ExprSchemable;
    e.clone()
        .transform_up(|x| match x {
            Expr::Cast(c)
                if c.field.data_type() == &DataType::Int64
                    && matches!(c.expr.as_ref(), Expr::Column(_))
                    && c.expr.get_type(schema).is_ok_and(|t| t.is_integer()) =>
            {
                Ok(Transformed::yes(*c.expr))
            }
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| e.clone())
}
