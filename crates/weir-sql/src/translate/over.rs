//! `OVER` windows: aggregates over a ROWS frame ordered by event time.

use super::aggregate::lower_aggregates;
use super::expr::{quote, rename_columns, sql_text};
use super::{field_names, unsupported, Stream, Translator};
use crate::error::{Result, SqlError};
use datafusion::logical_expr::Expr;
use weir_types::{OperatorKind, OverSpec};

impl Translator<'_> {
    /// `AGG(x) OVER (PARTITION BY k ORDER BY t ROWS BETWEEN n PRECEDING AND CURRENT ROW)`
    /// (or `UNBOUNDED PRECEDING`) over an append-only stream whose `t` is an event-time
    /// column: an `over_aggregate`, then the projection that computes the query's columns.
    pub(super) fn over(&mut self, w: &datafusion::logical_expr::Window) -> Result<Stream> {
        use datafusion::logical_expr::expr::{AggregateFunction, WindowFunctionDefinition};
        use datafusion::logical_expr::{WindowFrameBound, WindowFrameUnits};
        let at = self.at;
        let input = self.plan(&w.input)?;
        if input.keys.is_some() {
            return Err(unsupported(
                at,
                "an OVER window over an updating result (a GROUP BY without window; Flink refuses it too)",
            ));
        }
        let schema = w.input.schema();
        let mut shape = None;
        let mut aggs = Vec::new();
        for e in &w.window_expr {
            let Expr::WindowFunction(f) = e.clone().unalias() else {
                return Err(unsupported(at, &format!("the window expression {e}")));
            };
            let WindowFunctionDefinition::AggregateUDF(udf) = &f.fun else {
                return Err(unsupported(
                    at,
                    &format!(
                        "the window function {}() (aggregates COUNT, SUM, MIN, MAX and AVG over a ROWS frame are)",
                        f.fun.name().to_uppercase()
                    ),
                ));
            };
            let p = &f.params;
            if p.distinct || p.filter.is_some() {
                return Err(unsupported(at, "DISTINCT or FILTER in an OVER aggregate"));
            }
            let this = (
                p.partition_by.clone(),
                p.order_by.clone(),
                p.window_frame.clone(),
            );
            match &shape {
                None => shape = Some(this),
                Some(s) if *s == this => {}
                Some(_) => return Err(unsupported(
                    at,
                    "OVER windows with different PARTITION BY, ORDER BY or frames in one SELECT",
                )),
            }
            aggs.push(rename_columns(
                &Expr::AggregateFunction(AggregateFunction::new_udf(
                    udf.clone(),
                    p.args.clone(),
                    false,
                    None,
                    vec![],
                    None,
                )),
                schema,
                &input.columns,
            ));
        }
        let Some((partition_by, order_by, frame)) = shape else {
            return Err(SqlError::at(at, "an OVER window without a function"));
        };
        let mut keys = Vec::new();
        for e in &partition_by {
            match rename_columns(e, schema, &input.columns) {
                Expr::Column(c) => keys.push(c.name),
                other => {
                    return Err(SqlError::at(
                        at,
                        format!(
                            "PARTITION BY {} is not supported yet: partition by columns (compute it in a view first)",
                            sql_text(&other, at)?
                        ),
                    ))
                }
            }
        }
        let time = match order_by.as_slice() {
            [sort] if sort.asc => match rename_columns(&sort.expr, schema, &input.columns) {
                Expr::Column(c) => input.time(&c.name).cloned(),
                _ => None,
            },
            _ => None,
        };
        let Some(time) = time else {
            return Err(SqlError::at(
                at,
                "an OVER window must be ORDER BY one event-time column, ascending (a WATERMARK column, a window's bound, or a join's expiry column)",
            ));
        };
        let preceding = match (&frame.units, &frame.start_bound, &frame.end_bound) {
            (WindowFrameUnits::Rows, WindowFrameBound::Preceding(n), WindowFrameBound::CurrentRow) => {
                if n.is_null() {
                    None
                } else {
                    let n: u64 = n
                        .to_string()
                        .parse()
                        .map_err(|_| SqlError::at(at, format!("ROWS {n} PRECEDING: not a row count")))?;
                    Some(n)
                }
            }
            (WindowFrameUnits::Rows, WindowFrameBound::CurrentRow, WindowFrameBound::CurrentRow) => {
                Some(0)
            }
            _ => {
                return Err(unsupported(
                    at,
                    &format!(
                        "the frame {frame} (ROWS BETWEEN n PRECEDING AND CURRENT ROW and ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW are)"
                    ),
                ))
            }
        };
        let out_names: Vec<String> = field_names(w.schema.fields());
        let n_in = input.columns.len();
        let (aggregates, outputs) = lower_aggregates(&aggs, &out_names[n_in..], at)?;
        for a in &aggregates {
            if input.columns.contains(&a.name) {
                return Err(SqlError::at(
                    at,
                    format!("the OVER aggregate's name {} is also an input column; give it another name with AS", a.name),
                ));
            }
        }
        let original = input.clone();
        let (input, keys) = self.global_key(input, keys)?;
        let spec = OverSpec {
            keys: keys.clone(),
            time: time.name.clone(),
            preceding,
            slack_ms: time.slack_ms,
            aggregates,
        };
        let exprs = original
            .columns
            .iter()
            .map(|c| quote(c))
            .chain(outputs)
            .collect();
        let mut out = self.aggregate_then_project(
            "over",
            OperatorKind::OverAggregate(spec),
            &input,
            &keys,
            exprs,
            &out_names,
        );
        // Rows leave in time order once the watermark passed them plus the slack: the
        // input's event-time columns keep their slack.
        let plain: Vec<Option<String>> = original.columns.iter().cloned().map(Some).collect();
        out.times = original.times_renamed(&plain, &out_names[..n_in]);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::compile;
    use weir_types::{AggFn, JobSpec, OperatorKind, OverSpec};

    const BID: &str = "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT,
  date_time TIMESTAMP(3), extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events' = '1000');
CREATE TABLE out (a BIGINT, b BIGINT) WITH ('connector' = 'blackhole');\n";

    fn over(select: &str) -> OverSpec {
        let job: JobSpec =
            compile(&format!("{BID}INSERT INTO out {select} FROM bid;"), "t").expect("compiles");
        let overs: Vec<OverSpec> = job
            .operators
            .iter()
            .filter_map(|o| match &o.kind {
                OperatorKind::OverAggregate(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(overs.len(), 1, "{overs:?}");
        overs[0].clone()
    }

    #[test]
    fn a_rows_frame_keeps_its_preceding_count_partition_and_order() {
        let s = over(
            "SELECT auction, MAX(price) OVER (PARTITION BY auction ORDER BY date_time
             ROWS BETWEEN 3 PRECEDING AND CURRENT ROW)",
        );
        assert_eq!(s.keys, vec!["auction"]);
        assert_eq!(s.time, "date_time");
        assert_eq!(s.preceding, Some(3));
        assert_eq!(s.aggregates.len(), 1);
        assert_eq!(s.aggregates[0].func, AggFn::Max);
        assert_eq!(s.aggregates[0].column.as_deref(), Some("price"));
    }

    /// UNBOUNDED PRECEDING: every earlier row of the partition, no count.
    #[test]
    fn unbounded_preceding_has_no_count() {
        let s = over(
            "SELECT auction, COUNT(*) OVER (PARTITION BY auction ORDER BY date_time
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
        );
        assert_eq!(s.preceding, None);
        assert_eq!(s.aggregates[0].func, AggFn::Count);
    }
}
