//! SQL expressions on Arrow batches, compiled once per operator by DataFusion.
//!
//! The text is parsed and typed by DataFusion, then rewritten where DataFusion's functions
//! differ from Flink's (`flink_semantics`), simplified (DataFusion evaluates COALESCE, NVL,
//! NOW() and others only after simplification), and compiled. An expression that reads the
//! clock (NOW(), CURRENT_TIMESTAMP, CURRENT_DATE, ...) is compiled again for every batch, so
//! it gives the time the batch is processed (Flink evaluates them per record in streaming
//! mode), not the time the task started.

use crate::error::{PlanError, Result};
use arrow::array::{ArrayRef, BooleanArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{lit, when, Cast, Expr, ExprSchemable, Like, TryCast};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use std::sync::Arc;

/// A compiled expression and the type it produces.
#[derive(Debug, Clone)]
pub struct CompiledExpr {
    pub sql: String,
    pub expr: Arc<dyn PhysicalExpr>,
    pub data_type: DataType,
    pub nullable: bool,
    /// For an expression that reads the clock: its rewritten logical form and input schema,
    /// compiled again per batch.
    clock: Option<(Expr, Arc<DFSchema>)>,
}

/// Compiles SQL expression text against an input schema.
pub fn compile(sql: &str, schema: &SchemaRef) -> Result<CompiledExpr> {
    let ctx = SessionContext::new();
    let plan_err = |e: datafusion::error::DataFusionError| {
        PlanError::Invalid(format!("expression {sql:?}: {}", short(&e)))
    };
    let df_schema = Arc::new(
        DFSchema::try_from(schema.as_ref().clone())
            .map_err(|e| PlanError::Invalid(e.to_string()))?,
    );
    let logical = ctx.parse_sql_expr(sql, &df_schema).map_err(plan_err)?;
    let logical = flink_semantics(logical, &df_schema)
        .map_err(|e| PlanError::Invalid(format!("expression {sql:?}: {e}")))?;
    let expr = physical(logical.clone(), &df_schema).map_err(plan_err)?;
    let data_type = expr.data_type(schema).map_err(plan_err)?;
    let nullable = expr.nullable(schema).unwrap_or(true);
    Ok(CompiledExpr {
        sql: sql.to_string(),
        expr,
        data_type,
        nullable,
        clock: reads_clock(&logical).then_some((logical, df_schema)),
    })
}

/// Coerces, simplifies (with the current time for NOW() and its kin) and compiles.
fn physical(e: Expr, schema: &Arc<DFSchema>) -> datafusion::error::Result<Arc<dyn PhysicalExpr>> {
    let now = chrono::Utc::now();
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_schema(schema.clone())
            .with_query_execution_start_time(Some(now))
            .build(),
    );
    let e = simplifier.coerce(e, schema)?;
    let e = simplifier.simplify(e)?;
    let mut props = ExecutionProps::new();
    props.query_execution_start_time = Some(now);
    datafusion::physical_expr::create_physical_expr(
        &e,
        schema,
        &props,
        &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext::default(),
    )
}

/// Whether `e` calls a function of the clock (its value depends on when it is evaluated).
fn reads_clock(e: &Expr) -> bool {
    let mut found = false;
    let _ = e.apply(|x| {
        if let Expr::ScalarFunction(f) = x {
            if matches!(
                f.func.name(),
                "now" | "current_timestamp" | "current_date" | "current_time" | "today"
            ) {
                found = true;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn short(e: &datafusion::error::DataFusionError) -> String {
    // DataFusion prefixes errors with their kind and adds backtraces in some builds.
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// The text Flink gives a TIMESTAMP(3) as a string: `2024-03-01 00:00:02.481`.
pub const FLINK_TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f";

/// `e` with the functions whose DataFusion meaning differs from Flink's rewritten to Flink's
/// meaning (docs/sql.md, "Flink's semantics"):
/// - `CONCAT` is NULL when any argument is (DataFusion skips NULLs, as Flink's CONCAT_WS);
/// - `REGEXP_REPLACE(s, p, r)` replaces every match (DataFusion: the first), with `r` as
///   literal text (DataFusion: `$1` is a group);
/// - `DATE_FORMAT(ts, 'yyyy-MM-dd')` takes a Java pattern (DataFusion: chrono's);
/// - `CAST(ts AS VARCHAR)` is `yyyy-MM-dd HH:mm:ss.SSS` (DataFusion: ISO 8601 with a `T`);
/// - `SIMILAR TO` is the SQL standard's whole-string pattern (DataFusion: a regex search).
pub fn flink_semantics(e: Expr, schema: &DFSchema) -> std::result::Result<Expr, String> {
    e.transform_up(|x| rewrite(x, schema))
        .map(|t| t.data)
        .map_err(|e| short(&e))
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn string_literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Some(s),
        _ => None,
    }
}

fn rewrite(x: Expr, schema: &DFSchema) -> datafusion::error::Result<Transformed<Expr>> {
    let fail = |m: String| datafusion::error::DataFusionError::Plan(m);
    match x {
        Expr::ScalarFunction(ScalarFunction { func, args }) => match func.name() {
            // Flink's GREATEST and LEAST are NULL when an argument is (DataFusion's skip
            // NULLs), as CONCAT below.
            "concat" | "greatest" | "least" if args.len() > 1 => {
                let nullable: Vec<Expr> = args
                    .iter()
                    .filter(|a| !matches!(a, Expr::Literal(v, _) if !v.is_null()))
                    .cloned()
                    .collect();
                let call = Expr::ScalarFunction(ScalarFunction {
                    func: func.clone(),
                    args,
                });
                let Some(any_null) = nullable
                    .into_iter()
                    .map(|a| a.is_null())
                    .reduce(|a, b| a.or(b))
                else {
                    return Ok(Transformed::no(call));
                };
                let null = match func.name() {
                    "concat" => lit(ScalarValue::Utf8(None)),
                    _ => lit(ScalarValue::Null),
                };
                let e = when(any_null, null).otherwise(call)?;
                Ok(Transformed::yes(e))
            }
            "regexp_replace" if args.len() == 3 => {
                // Flink's replacement is literal text: `$1` is the two characters, not a
                // group (the regex crate reads `$` as a group reference; `$$` is a `$`).
                let mut args = args;
                args[2] = match string_literal(&args[2]) {
                    Some(r) => lit(r.replace('$', "$$")),
                    None => datafusion::functions::string::expr_fn::replace(
                        args[2].clone(),
                        lit("$"),
                        lit("$$"),
                    ),
                };
                args.push(lit("g"));
                Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction {
                    func,
                    args,
                })))
            }
            // DATE_FORMAT (DataFusion's to_char) and TO_TIMESTAMP(s, 'dd/MM/yyyy HH:mm') take
            // Java patterns in Flink; DataFusion takes chrono's.
            "to_char" | "to_timestamp" if args.len() == 2 => {
                let Some(pattern) = string_literal(&args[1]) else {
                    let name = if func.name() == "to_char" {
                        "DATE_FORMAT"
                    } else {
                        "TO_TIMESTAMP"
                    };
                    return Err(fail(format!("{name}'s format must be a string literal")));
                };
                let format = weir_types::patterns::java_date_format(pattern).map_err(fail)?;
                let mut args = args;
                args[1] = lit(format);
                Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction {
                    func,
                    args,
                })))
            }
            // EXTRACT(DOW …) counts Sunday as 1 in Flink (0 in DataFusion); EXTRACT(MILLISECOND
            // …) is the millisecond of the second (DataFusion adds the seconds).
            "date_part" if args.len() == 2 => {
                let part = string_literal(&args[0]).map(str::to_ascii_lowercase);
                let call = Expr::ScalarFunction(ScalarFunction {
                    func,
                    args: args.clone(),
                });
                Ok(match part.as_deref() {
                    Some("dow") => Transformed::yes(call + lit(1)),
                    Some("millisecond") | Some("milliseconds") => {
                        Transformed::yes(call % lit(1000))
                    }
                    _ => Transformed::no(call),
                })
            }
            "initcap" => Err(fail(
                "INITCAP is not supported yet: Flink starts a new word after every character that is not an ASCII letter or digit (\"héllo\" becomes \"HéLlo\"), which Weir does not reproduce".into(),
            )),
            _ => Ok(Transformed::no(Expr::ScalarFunction(ScalarFunction {
                func,
                args,
            }))),
        },
        Expr::Cast(Cast { expr, field }) => {
            let from = expr.get_type(schema)?;
            match cast_as_flink(expr, &from, field.data_type(), false) {
                Ok(e) => Ok(Transformed::yes(e)),
                Err(expr) => Ok(Transformed::no(Expr::Cast(Cast { expr, field }))),
            }
        }
        Expr::TryCast(TryCast { expr, field }) => {
            let from = expr.get_type(schema)?;
            match cast_as_flink(expr, &from, field.data_type(), true) {
                Ok(e) => Ok(Transformed::yes(e)),
                Err(expr) => Ok(Transformed::no(Expr::TryCast(TryCast { expr, field }))),
            }
        }
        Expr::SimilarTo(like) => similar_to(like).map(Transformed::yes),
        other => Ok(Transformed::no(other)),
    }
}

/// A cast whose meaning differs between Flink and DataFusion, as Flink's (`Err` gives the
/// operand back when it does not differ): a timestamp as text is `yyyy-MM-dd HH:mm:ss.SSS`;
/// a boolean as text is `TRUE` or `FALSE`; text as an integer is read as a number with
/// surrounding spaces and a fraction allowed (Flink: `CAST(' 12 ' AS INT)` is 12 and
/// `TRY_CAST('3.5' AS BIGINT)` is 3).
fn cast_as_flink(
    e: Box<Expr>,
    from: &DataType,
    to: &DataType,
    try_cast: bool,
) -> std::result::Result<Expr, Box<Expr>> {
    match (from, to) {
        (DataType::Timestamp(_, _), t) if is_string(t) => Ok(timestamp_text(*e)),
        (DataType::Boolean, t) if is_string(t) => Ok(when(*e.clone(), lit("TRUE"))
            .when(Expr::Not(e), lit("FALSE"))
            .end()
            .map_err(|_| Box::new(lit(ScalarValue::Null)))?),
        (f, t) if is_string(f) && t.is_integer() => {
            let number = DataType::Decimal128(38, 10);
            let trimmed = datafusion::functions::string::expr_fn::btrim(vec![*e]);
            let as_number = if try_cast {
                Expr::TryCast(TryCast::new(Box::new(trimmed), number))
            } else {
                Expr::Cast(Cast::new(Box::new(trimmed), number))
            };
            Ok(if try_cast {
                Expr::TryCast(TryCast::new(Box::new(as_number), t.clone()))
            } else {
                Expr::Cast(Cast::new(Box::new(as_number), t.clone()))
            })
        }
        _ => Err(e),
    }
}

/// `ts` as Flink's text for a TIMESTAMP(3).
fn timestamp_text(ts: Expr) -> Expr {
    datafusion::functions::datetime::expr_fn::to_char(ts, lit(FLINK_TIMESTAMP_FORMAT))
}

/// `x SIMILAR TO 'p'` as an anchored regular-expression match.
pub fn similar_to(like: Like) -> datafusion::error::Result<Expr> {
    let fail = |m: String| datafusion::error::DataFusionError::Plan(m);
    let Some(pattern) = string_literal(&like.pattern) else {
        return Err(fail("a SIMILAR TO pattern must be a string literal".into()));
    };
    let regex = weir_types::patterns::similar_to_regex(pattern, like.escape_char).map_err(fail)?;
    let flags = like.case_insensitive.then(|| lit("i"));
    let m = datafusion::functions::regex::expr_fn::regexp_like(*like.expr, lit(regex), flags);
    Ok(if like.negated {
        Expr::Not(Box::new(m))
    } else {
        m
    })
}

impl CompiledExpr {
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        if let Some((logical, schema)) = &self.clock {
            let expr = physical(logical.clone(), schema)?;
            return Ok(expr.evaluate(batch)?.into_array(batch.num_rows())?);
        }
        Ok(self.expr.evaluate(batch)?.into_array(batch.num_rows())?)
    }

    /// Evaluates a predicate; NULL counts as false.
    pub fn evaluate_predicate(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let arr = self.evaluate(batch)?;
        arr.as_any()
            .downcast_ref::<BooleanArray>()
            .cloned()
            .ok_or_else(|| PlanError::Internal(format!("predicate {:?} is not boolean", self.sql)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn compiles_and_evaluates() {
        let schema: SchemaRef =
            Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 5, 10]))],
        )
        .unwrap();
        let p = compile("x % 5 = 0 AND x > 1", &schema).unwrap();
        assert_eq!(p.data_type, DataType::Boolean);
        let mask = p.evaluate_predicate(&batch).unwrap();
        assert_eq!(mask, BooleanArray::from(vec![false, true, true]));
        let e = compile("x * 2 + 1", &schema).unwrap();
        let out = e.evaluate(&batch).unwrap();
        assert_eq!(
            out.as_any().downcast_ref::<Int64Array>().unwrap().values(),
            &[3, 11, 21]
        );
        let err = compile("nope > 1", &schema).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }

    /// Evaluates `sql` over one row (s = 'aXbXc' or NULL, ts = 2024-03-01 00:00:02.481) as
    /// text.
    fn text_of(sql: &str, s: Option<&str>) -> Option<String> {
        use arrow::array::{Array, StringArray, TimestampMillisecondArray};
        use arrow::datatypes::TimeUnit;
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![s])),
                Arc::new(TimestampMillisecondArray::from(vec![1_709_251_202_481])),
            ],
        )
        .unwrap();
        let e = compile(sql, &schema).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let out = e.evaluate(&batch).unwrap();
        let out = arrow::compute::cast(&out, &DataType::Utf8).unwrap();
        let out = out.as_any().downcast_ref::<StringArray>().unwrap();
        out.is_valid(0).then(|| out.value(0).to_string())
    }

    #[test]
    fn functions_mean_what_they_mean_in_flink() {
        let t = |sql: &str| text_of(sql, Some("aXbXc"));
        assert_eq!(text_of("concat('x', s)", None), None);
        assert_eq!(t("concat('x', s, 'y')").as_deref(), Some("xaXbXcy"));
        assert_eq!(t("regexp_replace(s, 'X', '-')").as_deref(), Some("a-b-c"));
        assert_eq!(
            t("regexp_replace(s, '(b)', '[$1]')").as_deref(),
            Some("aX[$1]Xc")
        );
        assert_eq!(
            t("CAST(ts AS VARCHAR)").as_deref(),
            Some("2024-03-01 00:00:02.481")
        );
        assert_eq!(
            t("date_format(ts, 'yyyy-MM-dd HH:mm')").as_deref(),
            Some("2024-03-01 00:00")
        );
        assert_eq!(t("s SIMILAR TO 'a%c'").as_deref(), Some("true"));
        assert_eq!(t("s SIMILAR TO 'X'").as_deref(), Some("false"));
        assert_eq!(t("s NOT SIMILAR TO '[a-c]'").as_deref(), Some("true"));
        assert_eq!(text_of("coalesce(s, 'z')", None).as_deref(), Some("z"));
        assert_eq!(text_of("nvl(s, 'w')", None).as_deref(), Some("w"));
        assert!(t("CAST(now() AS VARCHAR)").is_some_and(|n| n.starts_with("20")));
        assert!(t("current_date").is_some());
        let err = compile(
            "date_format(ts, 'yyyy Q')",
            &Arc::new(Schema::new(vec![Field::new(
                "ts",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
                true,
            )])),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("'Q'"), "{err}");
    }
}
