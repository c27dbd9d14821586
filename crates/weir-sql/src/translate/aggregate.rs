//! `GROUP BY` without windows (a keyed aggregate, or an updating aggregate over an
//! updating result), and what every aggregate operator shares: the lowering of SQL
//! aggregates to accumulators, the key of an aggregate over everything, and the
//! projection after the aggregate.

use super::expr::{integer_widening_free, quote, rename_columns, sql_text};
use super::{field_names, unsupported, Stream, Translator};
use crate::error::{Result, SqlError};
use datafusion::logical_expr::Expr;
use datafusion::sql::sqlparser::tokenizer::Location;
use weir_types::{AggFn, AggSpec, OperatorKind, Partitioning, ProjectExpr};

impl Translator<'_> {
    /// `GROUP BY` over columns or expressions: a `keyed_aggregate` behind a hash exchange
    /// (an `updating_aggregate` over an updating result) plus a `project` of the keys and
    /// aggregates; a window result grouped by its window goes to `assigned_window`.
    pub(super) fn aggregate(
        &mut self,
        agg: &datafusion::logical_expr::Aggregate,
    ) -> Result<Stream> {
        let at = self.at;
        let mut input = self.plan(&agg.input)?;
        let schema = agg.input.schema();
        let upstream_keys = input.keys.take();
        let group_expr: Vec<Expr> = agg
            .group_expr
            .iter()
            .map(|e| rename_columns(e, schema, &input.columns))
            .collect();
        let aggr_expr: Vec<Expr> = agg
            .aggr_expr
            .iter()
            .map(|e| rename_columns(&integer_widening_free(e, schema), schema, &input.columns))
            .collect();
        if let Some(s) = self.assigned_window(agg, &input, &group_expr, &aggr_expr)? {
            return Ok(s);
        }
        if agg.group_expr.is_empty() {
            return Err(unsupported(
                at,
                "an aggregate without GROUP BY (a global aggregate)",
            ));
        }
        let out_names: Vec<String> = field_names(agg.schema.fields());
        // Group columns as they are; group expressions computed by a projection first,
        // under the names the aggregate's schema gives them.
        let mut keys = Vec::new();
        let mut computed = Vec::new();
        for (g, name) in group_expr.iter().zip(&out_names) {
            match g {
                Expr::Column(c) => keys.push(c.name.clone()),
                other => {
                    computed.push(ProjectExpr {
                        expr: sql_text(other, at)?,
                        name: name.clone(),
                    });
                    keys.push(name.clone());
                }
            }
        }
        if !computed.is_empty() {
            let mut names = input.columns.clone();
            names.extend(computed.iter().map(|p| p.name.clone()));
            let exprs = input
                .columns
                .iter()
                .map(|c| ProjectExpr {
                    expr: quote(c),
                    name: c.clone(),
                })
                .chain(computed)
                .collect();
            input = self.project_exprs(&input, exprs, names);
        }
        let (aggregates, outputs) = lower_aggregates(&aggr_expr, &out_names[keys.len()..], at)?;
        if aggregates.is_empty() {
            // GROUP BY without aggregates (a DISTINCT): each row is an upsert of its
            // group that changes nothing, so no state is needed, only the exchange
            // that puts each group on one subtask.
            if let Some(up) = &upstream_keys {
                if keys.iter().any(|k| !up.contains(k)) {
                    return Err(unsupported(at, "a DISTINCT over an updating result"));
                }
            }
            let exprs = keys
                .iter()
                .zip(&out_names)
                .map(|(k, n)| ProjectExpr {
                    expr: quote(k),
                    name: n.clone(),
                })
                .collect();
            let op = self.push(
                "distinct",
                OperatorKind::Project { exprs },
                &input,
                Partitioning::Hash(keys.clone()),
            );
            return Ok(Stream {
                op,
                parallelism: self.parallelism,
                columns: out_names[..keys.len()].to_vec(),
                keys: Some(out_names[..keys.len()].to_vec()),
                times: Vec::new(),
            });
        }
        for a in &aggregates {
            if input.columns.contains(&a.name) {
                return Err(SqlError::at(
                    at,
                    format!("the aggregate's name {} is also an input column; give it another name with AS", a.name),
                ));
            }
        }
        let exprs = keys.iter().map(|k| quote(k)).chain(outputs).collect();
        let kind = match upstream_keys {
            // Rows that change nothing are not emitted: the result is consumed as
            // the newest row per key (Flink's group aggregation does the same).
            None => OperatorKind::KeyedAggregate {
                keys: keys.clone(),
                aggregates,
                skip_unchanged: true,
            },
            // Over an updating result: each row replaces its upstream key's earlier
            // one, which only COUNT and SUM (and AVG) can take back, and which must
            // stay in one group.
            Some(upsert_keys) => {
                if let Some(k) = keys.iter().find(|k| !upsert_keys.contains(k)) {
                    return Err(unsupported(
                        at,
                        &format!("grouping an updating result by {k}, which is not one of its keys ({}),", upsert_keys.join(", ")),
                    ));
                }
                if let Some(a) = aggregates
                    .iter()
                    .find(|a| !matches!(a.func, AggFn::Count | AggFn::Sum))
                {
                    return Err(unsupported(
                        at,
                        &format!(
                            "{} over an updating result (COUNT, SUM and AVG are; MIN and MAX cannot take back an update)",
                            format!("{:?}", a.func).to_uppercase()
                        ),
                    ));
                }
                OperatorKind::UpdatingAggregate {
                    keys: keys.clone(),
                    upsert_keys,
                    aggregates,
                    skip_unchanged: true,
                }
            }
        };
        let mut s =
            self.aggregate_then_project("aggregate", kind, &input, &keys, exprs, &out_names);
        s.keys = Some(keys);
        Ok(s)
    }

    /// Keys for a keyed operator: `keys`, or, for an aggregate over everything (no key
    /// columns), a constant column computed first: one group, on one subtask.
    pub(super) fn global_key(
        &mut self,
        input: Stream,
        keys: Vec<String>,
    ) -> Result<(Stream, Vec<String>)> {
        if !keys.is_empty() {
            return Ok((input, keys));
        }
        let key = "__all".to_string();
        let mut names = input.columns.clone();
        names.push(key.clone());
        let exprs = input
            .columns
            .iter()
            .map(|c| ProjectExpr {
                expr: quote(c),
                name: c.clone(),
            })
            .chain([ProjectExpr {
                expr: "CAST(0 AS BIGINT)".into(),
                name: key.clone(),
            }])
            .collect();
        let times = input.times.clone();
        let mut s = self.project_exprs(&input, exprs, names);
        s.times = times;
        Ok((s, vec![key]))
    }

    /// An aggregate operator behind a hash exchange on `keys`, then the projection that
    /// computes the query's columns (`exprs`, named `names`) from its accumulators.
    pub(super) fn aggregate_then_project(
        &mut self,
        base: &str,
        kind: OperatorKind,
        input: &Stream,
        keys: &[String],
        exprs: Vec<String>,
        names: &[String],
    ) -> Stream {
        let op = self.push(base, kind, input, Partitioning::Hash(keys.to_vec()));
        let aggregated = Stream {
            op,
            parallelism: self.parallelism,
            columns: Vec::new(),
            keys: None,
            times: Vec::new(),
        };
        let exprs = exprs
            .into_iter()
            .zip(names)
            .map(|(expr, name)| ProjectExpr {
                expr,
                name: name.clone(),
            })
            .collect();
        self.project_exprs(&aggregated, exprs, names.to_vec())
    }
}

/// The accumulators of a query's aggregates and, per aggregate, the SQL that computes its
/// result from them: COUNT, SUM, MIN and MAX are one accumulator each; AVG(x) is SUM(x) and
/// COUNT(x), and their quotient (NULL when no row had a value).
pub(super) fn lower_aggregates(
    exprs: &[Expr],
    names: &[String],
    at: Location,
) -> Result<(Vec<AggSpec>, Vec<String>)> {
    let mut specs = Vec::new();
    let mut outputs = Vec::new();
    for (i, (e, name)) in exprs.iter().zip(names).enumerate() {
        if let Expr::AggregateFunction(f) = e.clone().unalias() {
            if f.func.name().eq_ignore_ascii_case("avg") {
                let p = &f.params;
                if p.distinct || p.filter.is_some() || !p.order_by.is_empty() {
                    return Err(unsupported(at, "AVG with DISTINCT, FILTER or ORDER BY"));
                }
                // DataFusion's coercion casts AVG's argument to DOUBLE when it is not one; the
                // sum is taken over the column itself (exact for integers). The average of a
                // DOUBLE column is a DOUBLE; of an integer column, Flink's AVG keeps the
                // argument's type: the quotient truncated toward zero (AVG of 3 and 4 is 3).
                let (arg, integer) = match p.args.as_slice() {
                    [Expr::Cast(c)] => (Some(c.expr.as_ref()), true),
                    [Expr::TryCast(c)] => (Some(c.expr.as_ref()), true),
                    [e] => (Some(e), false),
                    _ => (None, false),
                };
                let Some(Expr::Column(c)) = arg else {
                    return Err(SqlError::at(
                        at,
                        "AVG of an expression is not supported yet: average a column (compute the expression in a view first)",
                    ));
                };
                let (sum, count) = (format!("__avg_sum_{i}"), format!("__avg_count_{i}"));
                specs.push(AggSpec {
                    func: AggFn::Sum,
                    column: Some(c.name.clone()),
                    name: sum.clone(),
                });
                specs.push(AggSpec {
                    func: AggFn::Count,
                    column: Some(c.name.clone()),
                    name: count.clone(),
                });
                outputs.push(if integer {
                    format!(
                        // Typed DOUBLE still, as the rest of the plan was typed by DataFusion.
                        "CASE WHEN {c} = 0 THEN NULL ELSE CAST({s} / {c} AS DOUBLE) END",
                        c = quote(&count),
                        s = quote(&sum)
                    )
                } else {
                    format!(
                        "CASE WHEN {c} = 0 THEN NULL ELSE CAST({s} AS DOUBLE) / CAST({c} AS DOUBLE) END",
                        c = quote(&count),
                        s = quote(&sum)
                    )
                });
                continue;
            }
        }
        let a = agg_spec(e, name, at)?;
        outputs.push(quote(&a.name));
        specs.push(a);
    }
    Ok((specs, outputs))
}

fn agg_spec(e: &Expr, name: &str, at: Location) -> Result<AggSpec> {
    let Expr::AggregateFunction(f) = e.clone().unalias() else {
        return Err(unsupported(at, &format!("the aggregate expression {e}")));
    };
    let p = &f.params;
    let fname = f.func.name().to_ascii_lowercase();
    if p.distinct {
        return Err(SqlError::at(
            at,
            format!(
                "{}(DISTINCT …) in this combination is not supported in streaming SQL yet: DISTINCT aggregates work over one column, alone or next to SUM, MIN and MAX",
                fname.to_uppercase()
            ),
        ));
    }
    if p.filter.is_some() || !p.order_by.is_empty() {
        return Err(unsupported(at, "FILTER or ORDER BY in an aggregate"));
    }
    let func = match fname.as_str() {
        "count" => AggFn::Count,
        "sum" => AggFn::Sum,
        "min" => AggFn::Min,
        "max" => AggFn::Max,
        other => {
            return Err(unsupported(
                at,
                &format!(
                    "the aggregate {}() (COUNT, SUM, MIN, MAX and AVG are)",
                    other.to_uppercase()
                ),
            ))
        }
    };
    let column = match p.args.as_slice() {
        [] => None,
        [Expr::Literal(..)] if func == AggFn::Count => None,
        [Expr::Column(c)] => Some(c.name.clone()),
        [other] => {
            return Err(SqlError::at(
                at,
                format!(
                    "{}({}) is not supported yet: aggregate a column (compute the expression in a view first)",
                    fname.to_uppercase(),
                    sql_text(other, at)?
                ),
            ))
        }
        _ => return Err(unsupported(at, "an aggregate of several arguments")),
    };
    Ok(AggSpec {
        func,
        column,
        name: name.to_string(),
    })
}
