//! Window aggregates: `GROUP BY window_start, window_end` over a `TUMBLE`/`HOP`/`SESSION`
//! window table, over another window's result, and over a join's expiry column.

use super::aggregate::lower_aggregates;
use super::expr::{integer_widening_free, quote, sql_text};
use super::{field_names, unsupported, Stream, TimeCol, Translator, WindowRole};
use crate::error::{Result, SqlError};
use datafusion::common::Column;
use datafusion::logical_expr::{Expr, LogicalPlan};
use weir_types::{OperatorKind, WindowSpec};

impl Translator<'_> {
    /// The window table an aggregate reads, through aliases and column-only projections.
    pub(super) fn window_scan<'p>(
        &self,
        p: &'p LogicalPlan,
    ) -> Option<&'p datafusion::logical_expr::TableScan> {
        match p {
            LogicalPlan::SubqueryAlias(a) => self.window_scan(&a.input),
            LogicalPlan::Projection(pr) if pr.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
                self.window_scan(&pr.input)
            }
            LogicalPlan::TableScan(s)
                if self.catalog.windows.contains_key(s.table_name.table()) =>
            {
                Some(s)
            }
            _ => None,
        }
    }

    /// `GROUP BY keys…, window_start, window_end` over a `TUMBLE`/`HOP` window table: a
    /// `window_aggregate` over the window's input, hash-partitioned by the keys.
    pub(super) fn window_aggregate(
        &mut self,
        agg: &datafusion::logical_expr::Aggregate,
    ) -> Result<Stream> {
        let at = self.at;
        let scan = self
            .window_scan(&agg.input)
            .ok_or_else(|| unsupported(at, "this window query"))?;
        let w = self.catalog.windows[scan.table_name.table()].clone();
        let mut keys = Vec::new();
        let mut window_cols = 0;
        for g in &agg.group_expr {
            match group_column(g) {
                Some(c) if c.name == "window_start" || c.name == "window_end" => window_cols += 1,
                Some(c) => keys.push(c.name.clone()),
                None => {
                    let other = g;
                    return Err(SqlError::at(
                        at,
                        format!(
                            "GROUP BY {} is not supported with windows yet: group by columns",
                            sql_text(other, at)?
                        ),
                    ));
                }
            }
        }
        if window_cols == 0 {
            return Err(SqlError::at(
                at,
                "a window aggregate must GROUP BY window_start, window_end (and any key columns)",
            ));
        }
        let out_names: Vec<String> = field_names(agg.schema.fields());
        let aggr_expr: Vec<Expr> = agg
            .aggr_expr
            .iter()
            .map(|e| integer_widening_free(e, agg.input.schema()))
            .collect();
        let (aggregates, outputs) =
            lower_aggregates(&aggr_expr, &out_names[agg.group_expr.len()..], at)?;
        if aggregates.iter().any(|a| {
            a.column
                .as_deref()
                .is_some_and(|c| c == "window_start" || c == "window_end")
        }) {
            return Err(unsupported(at, "aggregating window_start or window_end"));
        }
        // The window's input: a table (reading the columns used) or a view.
        let mut needed: Vec<String> = keys.clone();
        for a in &aggregates {
            if let Some(c) = &a.column {
                needed.push(c.clone());
            }
        }
        needed.push(w.time.clone());
        let input = if let Some(table) = self.catalog.tables.get(&w.input) {
            if table.watermark.as_ref().is_none_or(|(c, _)| *c != w.time) {
                return Err(SqlError::at(
                    at,
                    format!(
                        "windows over {}.{} need event time: declare WATERMARK FOR {} AS {} - INTERVAL '<n>' SECOND on table {}",
                        w.input, w.time, w.time, w.time, w.input
                    ),
                ));
            }
            let cols: Vec<String> = table
                .schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|c| needed.contains(c))
                .collect();
            self.source(&w.input, cols)?
        } else if let Some(view) = self.catalog.views.get(&w.input) {
            let plan = view.plan.clone();
            self.plan(&plan)?
        } else {
            return Err(SqlError::at(at, format!("no table or view {}", w.input)));
        };
        if input.keys.is_some() {
            return Err(unsupported(at, "a window over an updating result"));
        }
        if input.time(&w.time).is_none_or(|t| t.window.is_some()) {
            return Err(SqlError::at(
                at,
                format!(
                    "windows over {}.{} need event time, and {} is not an event-time column of {} (declare a WATERMARK on the table it comes from)",
                    w.input, w.time, w.time, w.input
                ),
            ));
        }
        if w.gap_ms > 0 {
            let mut a = keys.clone();
            let mut b = w.partition.clone();
            a.sort();
            b.sort();
            if a != b {
                return Err(SqlError::at(
                    at,
                    format!(
                        "a SESSION window's PARTITION BY ({}) must be the GROUP BY's key columns ({})",
                        w.partition.join(", "),
                        keys.join(", ")
                    ),
                ));
            }
        }
        let (input, keys) = self.global_key(input, keys)?;
        let spec = WindowSpec {
            keys: keys.clone(),
            time: w.time.clone(),
            size_ms: w.size_ms,
            slide_ms: w.slide_ms,
            aggregates,
            allowed_lateness_ms: self.allowed_lateness_ms,
            assigned: false,
            gap_ms: w.gap_ms,
        };
        // The aggregate's columns in its order (group columns as listed, then aggregates).
        let exprs = agg
            .group_expr
            .iter()
            .filter_map(|g| group_column(g).map(|c| quote(&c.name)))
            .chain(outputs)
            .collect();
        let mut out = self.aggregate_then_project(
            "window",
            OperatorKind::WindowAggregate(spec),
            &input,
            &keys,
            exprs,
            &out_names,
        );
        for (g, name) in agg.group_expr.iter().zip(&out_names) {
            if let Some(c) = group_column(g) {
                let role = match c.name.as_str() {
                    "window_start" => WindowRole::Start,
                    "window_end" => WindowRole::End,
                    _ => continue,
                };
                if w.gap_ms > 0 {
                    // A session's end is event time (emitted once the watermark passes it
                    // plus the lateness); its start is unbounded and sessions differ in size.
                    if role == WindowRole::End {
                        out.times.push(TimeCol {
                            name: name.clone(),
                            slack_ms: self.allowed_lateness_ms as i64,
                            window: None,
                        });
                    }
                    continue;
                }
                out.times.push(self.window_time(name, role, w.size_ms));
            }
        }
        Ok(out)
    }

    /// A window result's start or end column as an event-time column: a window is emitted
    /// when the watermark passes its end plus the allowed lateness.
    fn window_time(&self, name: &str, role: WindowRole, size_ms: u64) -> TimeCol {
        let lateness = self.allowed_lateness_ms as i64;
        TimeCol {
            name: name.to_string(),
            slack_ms: match role {
                WindowRole::Start => lateness + size_ms as i64,
                WindowRole::End | WindowRole::Closes => lateness,
            },
            window: Some((role, size_ms)),
        }
    }

    /// `GROUP BY … window_start, window_end` over a window result (another window
    /// aggregate's rows, grouped again by their window): an `assigned` window aggregate,
    /// append-only like the first. `None` when the aggregate groups by no window column.
    pub(super) fn assigned_window(
        &mut self,
        agg: &datafusion::logical_expr::Aggregate,
        input: &Stream,
        group_expr: &[Expr],
        aggr_expr: &[Expr],
    ) -> Result<Option<Stream>> {
        let at = self.at;
        let mut start = None;
        let mut keys = Vec::new();
        let mut size = 0;
        let mut closing = None;
        for g in group_expr {
            let Expr::Column(c) = g else { continue };
            match input.time(&c.name).and_then(|t| t.window) {
                Some((WindowRole::Start, s)) => {
                    start = Some(c.name.clone());
                    size = s;
                }
                Some((WindowRole::End, s)) => size = s,
                Some((WindowRole::Closes, _)) => {
                    closing.get_or_insert(c.name.clone());
                    keys.push(c.name.clone());
                }
                None => keys.push(c.name.clone()),
            }
        }
        if size == 0 {
            return match closing {
                Some(col) => self
                    .closing_group(agg, input, group_expr, aggr_expr, &col)
                    .map(Some),
                None => Ok(None),
            };
        }
        let Some(start) = start else {
            return Err(SqlError::at(
                at,
                "grouping a window result by its window needs GROUP BY window_start, window_end",
            ));
        };
        if input.keys.is_some() {
            return Err(unsupported(at, "a window over an updating result"));
        }
        if group_expr.iter().any(|g| !matches!(g, Expr::Column(_))) {
            return Err(SqlError::at(
                at,
                "GROUP BY expressions are not supported with windows yet: group by columns",
            ));
        }
        let out_names: Vec<String> = field_names(agg.schema.fields());
        let (aggregates, outputs) =
            lower_aggregates(aggr_expr, &out_names[group_expr.len()..], at)?;
        let (input, keys) = self.global_key(input.clone(), keys)?;
        let spec = WindowSpec {
            keys: keys.clone(),
            time: start.clone(),
            size_ms: size,
            slide_ms: 0,
            aggregates,
            allowed_lateness_ms: self.allowed_lateness_ms,
            assigned: true,
            gap_ms: 0,
        };
        let mut roles = Vec::new();
        let exprs = group_expr
            .iter()
            .filter_map(|g| match g {
                Expr::Column(c) => Some(match input.time(&c.name).and_then(|t| t.window) {
                    Some((WindowRole::Start, _)) => {
                        roles.push(Some(WindowRole::Start));
                        quote("window_start")
                    }
                    Some((WindowRole::End, _)) => {
                        roles.push(Some(WindowRole::End));
                        quote("window_end")
                    }
                    Some((WindowRole::Closes, _)) | None => {
                        roles.push(None);
                        quote(&c.name)
                    }
                }),
                _ => None,
            })
            .chain(outputs)
            .collect();
        let mut out = self.aggregate_then_project(
            "window",
            OperatorKind::WindowAggregate(spec),
            &input,
            &keys,
            exprs,
            &out_names,
        );
        for (role, name) in roles.iter().zip(&out_names) {
            if let Some(role) = role {
                out.times.push(self.window_time(name, *role, size));
            }
        }
        Ok(Some(out))
    }

    /// `GROUP BY` over a join result that includes a join side's expiry column `col` (with
    /// no window columns): each group is final once the watermark passes `col` plus its slack
    /// (no join row for it can come any more), so it is emitted once then, append-only,
    /// like a window whose end is the row's own `col`: an `assigned` window aggregate with
    /// `col` as the start, 1 ms long, whose lateness makes up the rest of the slack.
    fn closing_group(
        &mut self,
        agg: &datafusion::logical_expr::Aggregate,
        input: &Stream,
        group_expr: &[Expr],
        aggr_expr: &[Expr],
        col: &str,
    ) -> Result<Stream> {
        let at = self.at;
        if input.keys.is_some() {
            return Err(unsupported(
                at,
                "a GROUP BY over an updating result's expiry column",
            ));
        }
        if group_expr.iter().any(|g| !matches!(g, Expr::Column(_))) {
            return Err(SqlError::at(
                at,
                "GROUP BY expressions are not supported next to a join's expiry column yet: group by columns",
            ));
        }
        let slack = input.time(col).map_or(1, |t| t.slack_ms).max(1);
        let keys: Vec<String> = group_expr
            .iter()
            .filter_map(|g| match g {
                Expr::Column(c) if c.name != col => Some(c.name.clone()),
                _ => None,
            })
            .collect();
        let out_names: Vec<String> = field_names(agg.schema.fields());
        let (aggregates, outputs) =
            lower_aggregates(aggr_expr, &out_names[group_expr.len()..], at)?;
        let (input, keys) = self.global_key(input.clone(), keys)?;
        let spec = WindowSpec {
            keys: keys.clone(),
            time: col.to_string(),
            size_ms: 1,
            slide_ms: 0,
            aggregates,
            allowed_lateness_ms: (slack - 1) as u64,
            assigned: true,
            gap_ms: 0,
        };
        let mut closes_as = None;
        let exprs = group_expr
            .iter()
            .zip(&out_names)
            .filter_map(|(g, name)| match g {
                Expr::Column(c) if c.name == col => {
                    closes_as = Some(name.clone());
                    Some(quote("window_start"))
                }
                Expr::Column(c) => Some(quote(&c.name)),
                _ => None,
            })
            .chain(outputs)
            .collect();
        let mut out = self.aggregate_then_project(
            "closed_groups",
            OperatorKind::WindowAggregate(spec),
            &input,
            &keys,
            exprs,
            &out_names,
        );
        if let Some(name) = closes_as {
            out.times.push(TimeCol {
                name,
                slack_ms: slack,
                window: Some((WindowRole::Closes, 0)),
            });
        }
        Ok(out)
    }
}

/// A GROUP BY entry that is a column, perhaps renamed (`x AS alias1`, as DataFusion's
/// rewrite of COUNT(DISTINCT x) groups).
fn group_column(g: &Expr) -> Option<&Column> {
    match g {
        Expr::Column(c) => Some(c),
        Expr::Alias(a) => group_column(&a.expr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::compile;
    use weir_types::{AggFn, JobSpec, OperatorKind, WindowSpec};

    const BID: &str = "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT,
  date_time TIMESTAMP(3), extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events' = '1000');
CREATE TABLE out (k BIGINT, ws TIMESTAMP(3), we TIMESTAMP(3), n BIGINT)
  WITH ('connector' = 'blackhole');\n";

    /// The window aggregates of the script `BID` + `query`, in plan order.
    fn windows(query: &str) -> Vec<WindowSpec> {
        let job: JobSpec = compile(&format!("{BID}{query}"), "t").expect("compiles");
        job.operators
            .iter()
            .filter_map(|o| match &o.kind {
                OperatorKind::WindowAggregate(w) => Some(w.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn tumble_is_a_window_of_its_size_on_the_descriptor_column() {
        let w = windows(
            "INSERT INTO out SELECT auction, window_start, window_end, COUNT(*)
             FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
             GROUP BY auction, window_start, window_end;",
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!((w[0].size_ms, w[0].slide()), (10_000, 10_000));
        assert_eq!(w[0].time, "date_time");
        assert_eq!(w[0].gap_ms, 0);
        assert!(!w[0].assigned);
        assert!(w[0].keys.iter().any(|k| k == "auction"), "{:?}", w[0].keys);
        assert_eq!(w[0].aggregates.len(), 1);
        assert_eq!(w[0].aggregates[0].func, AggFn::Count);
    }

    /// Flink's `HOP(data, timecol, slide, size)`: the slide comes first.
    #[test]
    fn hop_takes_the_slide_before_the_size() {
        let w = windows(
            "INSERT INTO out SELECT auction, window_start, window_end, COUNT(*)
             FROM TABLE(HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '2' SECOND,
                            INTERVAL '10' SECOND))
             GROUP BY auction, window_start, window_end;",
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!((w[0].size_ms, w[0].slide()), (10_000, 2_000));
    }

    #[test]
    fn session_windows_have_a_gap_and_partition_by_their_keys() {
        let w = windows(
            "INSERT INTO out SELECT bidder, window_start, window_end, COUNT(*)
             FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(date_time),
                                INTERVAL '5' SECOND))
             GROUP BY bidder, window_start, window_end;",
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].gap_ms, 5_000);
        assert!(w[0].keys.iter().any(|k| k == "bidder"), "{:?}", w[0].keys);
    }

    /// A window result grouped again by its window (Nexmark q5's shape): the second window
    /// takes the rows' windows as they are instead of assigning new ones.
    #[test]
    fn a_window_result_grouped_by_its_window_is_not_windowed_again() {
        let w = windows(
            "CREATE VIEW per_auction AS
               SELECT auction, window_start, window_end, COUNT(*) AS n
               FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
               GROUP BY auction, window_start, window_end;
             INSERT INTO out SELECT MAX(auction), window_start, window_end, MAX(n)
             FROM per_auction GROUP BY window_start, window_end;",
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(!w[0].assigned);
        assert!(w[1].assigned, "{:?}", w[1]);
        assert_eq!(w[1].size_ms, 10_000);
    }
}
