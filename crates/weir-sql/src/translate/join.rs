//! Inner equi-joins, and the event-time bounds their conditions put on join state.

use super::expr::{rename_columns, sql_text};
use super::{unsupported, Stream, TimeCol, Translator, WindowRole};
use crate::error::{Result, SqlError};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::Expr;
use std::collections::BTreeSet;
use weir_types::{ExpireBound, InputSpec, JoinSpec, OperatorKind, OperatorSpec, Partitioning};

impl Translator<'_> {
    /// An inner equi-join: a `join` operator reading both sides hash-partitioned by their
    /// keys. Its state is bounded by what the condition says about event time: for each
    /// conjunct `a <= b` (also `<`, `=`, `BETWEEN`) where `a` is an event-time column of one
    /// side (plus or minus a constant) and `b` an expression over the other side's columns,
    /// no row still to come on `a`'s side can match an other-side row once the watermark has
    /// passed `b` (plus `a`'s slack), so that row expires then. Interval joins (`BETWEEN
    /// r.t - INTERVAL … AND r.t`) and window joins (equal `window_end`s) come out bounded;
    /// other joins keep their rows, as Flink does without a state TTL.
    pub(super) fn join(&mut self, j: &datafusion::logical_expr::Join) -> Result<Stream> {
        use datafusion::logical_expr::{utils::split_conjunction, JoinType};
        let at = self.at;
        if j.join_type != JoinType::Inner {
            return Err(unsupported(
                at,
                &format!("a {} join (inner joins are)", j.join_type),
            ));
        }
        if j.on.is_empty() {
            return Err(unsupported(
                at,
                "a join without an equality between its two sides (a cross join)",
            ));
        }
        if j.null_equality == datafusion::common::NullEquality::NullEqualsNull {
            return Err(unsupported(
                at,
                "a join on IS NOT DISTINCT FROM (NULL keys matching each other; a join on = is)",
            ));
        }
        let left = self.plan(&j.left)?;
        let right = self.plan(&j.right)?;
        if left.keys.is_some() || right.keys.is_some() {
            return Err(unsupported(
                at,
                "a join of an updating result (a GROUP BY without window)",
            ));
        }
        let nl = left.columns.len();
        // Output names: the left's, then the right's, a repeated name numbered.
        let mut names: Vec<String> = Vec::new();
        for c in left.columns.iter().chain(&right.columns) {
            let mut name = c.clone();
            let mut n = 1;
            while names.contains(&name) {
                n += 1;
                name = format!("{c}_{n}");
            }
            names.push(name);
        }
        let key_col = |e: &Expr, schema: &DFSchema, cols: &[String]| -> Result<String> {
            match rename_columns(e, schema, cols) {
                Expr::Column(c) => Ok(c.name),
                other => Err(SqlError::at(
                    at,
                    format!(
                        "join keys must be columns of the same type, not {} (compute it in a view first)",
                        sql_text(&other, at)?
                    ),
                )),
            }
        };
        let mut left_keys = Vec::new();
        let mut right_keys = Vec::new();
        // Every conjunct of the condition over the output names: (a, op, b).
        let mut conds: Vec<(Expr, Expr)> = Vec::new();
        for (l, r) in &j.on {
            let (lk, rk) = (
                key_col(l, j.left.schema(), &left.columns)?,
                key_col(r, j.right.schema(), &right.columns)?,
            );
            let li = left.columns.iter().position(|c| *c == lk).unwrap_or(0);
            let ri = nl + right.columns.iter().position(|c| *c == rk).unwrap_or(0);
            let (a, b) = (
                Expr::Column(Column::from_name(names[li].clone())),
                Expr::Column(Column::from_name(names[ri].clone())),
            );
            conds.push((a.clone(), b.clone()));
            conds.push((b, a));
            left_keys.push(lk);
            right_keys.push(rk);
        }
        let filter = j
            .filter
            .as_ref()
            .map(|f| rename_columns(f, &j.schema, &names));
        if let Some(f) = &filter {
            for c in split_conjunction(f) {
                conds.extend(at_most(c));
            }
        }
        // Event-time columns by output name, with their side.
        let side_of = |name: &str| names.iter().position(|n| n == name).map(|i| i >= nl);
        let time_of = |name: &str| -> Option<TimeCol> {
            let i = names.iter().position(|n| n == name)?;
            if i < nl {
                left.time(&left.columns[i]).cloned()
            } else {
                right.time(&right.columns[i - nl]).cloned()
            }
        };
        let mut expire: [Vec<ExpireBound>; 2] = [Vec::new(), Vec::new()];
        // Output columns that are a side's expiry bound, with the bound's offset.
        let mut closing: Vec<(String, i64)> = Vec::new();
        for (a, b) in &conds {
            let Some((col, c_ms)) = column_plus_constant(a) else {
                continue;
            };
            let (Some(t), Some(a_right)) = (time_of(&col), side_of(&col)) else {
                continue;
            };
            let mut b_sides = BTreeSet::new();
            for c in b.column_refs() {
                b_sides.insert(side_of(&c.name));
            }
            // `b` must be over the other side's columns only.
            if b_sides.len() != 1 || !b_sides.contains(&Some(!a_right)) {
                continue;
            }
            let own: &[String] = if a_right {
                &left.columns
            } else {
                &right.columns
            };
            let offset = if a_right { 0 } else { nl };
            let b_own = b
                .clone()
                .transform(|x| match &x {
                    Expr::Column(c) => {
                        let i = names.iter().position(|n| *n == c.name).unwrap_or(0);
                        Ok(Transformed::yes(Expr::Column(Column::from_name(
                            own[i - offset].clone(),
                        ))))
                    }
                    _ => Ok(Transformed::no(x)),
                })
                .map_err(|e| SqlError::from_datafusion(e, at))?
                .data;
            // Rows still to come have a > W - slack, so a ≤ b fails for all of them once
            // W ≥ b - c + slack + 1.
            let bound = ExpireBound {
                expr: sql_text(&b_own, at)?,
                offset_ms: t.slack_ms - c_ms + 1,
            };
            if let Expr::Column(c) = b {
                closing.push((c.name.clone(), bound.offset_ms));
            }
            let side = &mut expire[usize::from(!a_right)];
            if !side.contains(&bound) {
                side.push(bound);
            }
        }
        // Equal window columns of both sides stay event-time columns of the result (a row
        // is emitted when its later side arrives, and both sides' windows are equal).
        let mut times = Vec::new();
        for (l, r) in left_keys.iter().zip(&right_keys) {
            if let (Some(lt), Some(rt)) = (left.time(l), right.time(r)) {
                if lt.window.is_some() && lt.window == rt.window {
                    let li = left.columns.iter().position(|c| c == l).unwrap_or(0);
                    let ri = nl + right.columns.iter().position(|c| c == r).unwrap_or(0);
                    let slack_ms = lt.slack_ms.max(rt.slack_ms);
                    for i in [li, ri] {
                        times.push(TimeCol {
                            name: names[i].clone(),
                            slack_ms,
                            window: lt.window,
                        });
                    }
                }
            }
        }
        closing.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        closing.dedup_by(|a, b| a.0 == b.0);
        for (name, slack_ms) in closing {
            if !times.iter().any(|t: &TimeCol| t.name == name) {
                times.push(TimeCol {
                    name,
                    slack_ms,
                    window: Some((WindowRole::Closes, 0)),
                });
            }
        }
        let [left_expire, right_expire] = expire;
        let spec = JoinSpec {
            left_keys: left_keys.clone(),
            right_keys: right_keys.clone(),
            filter: filter.map(|f| sql_text(&f, at)).transpose()?,
            columns: names.clone(),
            left_expire,
            right_expire,
        };
        let id = self.fresh("join");
        self.ops.push(OperatorSpec {
            id: id.clone(),
            parallelism: self.parallelism,
            inputs: vec![
                InputSpec {
                    from: left.op.clone(),
                    partition: Partitioning::Hash(left_keys),
                },
                InputSpec {
                    from: right.op.clone(),
                    partition: Partitioning::Hash(right_keys),
                },
            ],
            kind: OperatorKind::Join(spec),
            watermark: None,
        });
        Ok(Stream {
            op: id,
            parallelism: self.parallelism,
            columns: names,
            keys: None,
            times,
        })
    }
}

/// A conjunct as upper bounds `a <= b` (`<`, `>`, `>=`, `=` and `BETWEEN` become one or two).
fn at_most(e: &Expr) -> Vec<(Expr, Expr)> {
    use datafusion::logical_expr::{Between, BinaryExpr, Operator};
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (l, r) = (left.as_ref().clone(), right.as_ref().clone());
            match op {
                Operator::Lt | Operator::LtEq => vec![(l, r)],
                Operator::Gt | Operator::GtEq => vec![(r, l)],
                Operator::Eq => vec![(l.clone(), r.clone()), (r, l)],
                _ => vec![],
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => vec![
            (low.as_ref().clone(), expr.as_ref().clone()),
            (expr.as_ref().clone(), high.as_ref().clone()),
        ],
        _ => vec![],
    }
}

/// `col`, `col + <interval>` or `col - <interval>`: the column and the constant in ms.
fn column_plus_constant(e: &Expr) -> Option<(String, i64)> {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    match e {
        Expr::Column(c) => Some((c.name.clone(), 0)),
        Expr::Cast(c) => column_plus_constant(&c.expr),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (c, base) = column_plus_constant(left)?;
            let Expr::Literal(v, _) = right.as_ref() else {
                return None;
            };
            let ms = constant_ms(v)?;
            match op {
                Operator::Plus => Some((c, base + ms)),
                Operator::Minus => Some((c, base - ms)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// An interval or duration literal in milliseconds (months have no fixed length: none).
fn constant_ms(v: &datafusion::common::ScalarValue) -> Option<i64> {
    use datafusion::common::ScalarValue as S;
    match v {
        S::IntervalDayTime(Some(d)) => Some(d.days as i64 * 86_400_000 + d.milliseconds as i64),
        S::IntervalMonthDayNano(Some(d)) if d.months == 0 => {
            Some(d.days as i64 * 86_400_000 + d.nanoseconds / 1_000_000)
        }
        S::DurationMillisecond(Some(x)) => Some(*x),
        S::DurationSecond(Some(x)) => Some(x * 1000),
        S::Int64(Some(x)) => Some(*x),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::compile;
    use weir_types::{JobSpec, JoinSpec, OperatorKind};

    const TABLES: &str = "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT,
  date_time TIMESTAMP(3), extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events' = '1000');
CREATE TABLE auction (id BIGINT, seller BIGINT, date_time TIMESTAMP(3),
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events' = '1000');
CREATE TABLE out (auction BIGINT, price BIGINT, seller BIGINT)
  WITH ('connector' = 'blackhole');\n";

    fn join(query: &str) -> JoinSpec {
        let job: JobSpec = compile(&format!("{TABLES}{query}"), "t").expect("compiles");
        let joins: Vec<JoinSpec> = job
            .operators
            .iter()
            .filter_map(|o| match &o.kind {
                OperatorKind::Join(j) => Some(j.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(joins.len(), 1, "{joins:?}");
        joins[0].clone()
    }

    #[test]
    fn equality_conditions_become_the_keys() {
        let j = join(
            "INSERT INTO out SELECT b.auction, b.price, a.seller
             FROM bid b JOIN auction a ON b.auction = a.id;",
        );
        assert_eq!(j.left_keys, vec!["auction"]);
        assert_eq!(j.right_keys, vec!["id"]);
        // No time bounds: a regular join keeps both sides' rows for ever, as Flink's does
        // without a state TTL.
        assert!(
            j.left_expire.is_empty() && j.right_expire.is_empty(),
            "{j:?}"
        );
    }

    /// An interval join: a bid can match auctions up to 5 s on either side of it, so a bid is
    /// kept until the watermark passes its time + 5 s, and an auction until its time + 5 s.
    /// BETWEEN includes its ends, and a row is late only once the watermark reached its time,
    /// so each side is kept one millisecond longer: through the watermark `time + 5 s`.
    #[test]
    fn time_bounds_say_when_each_sides_rows_expire() {
        let j = join(
            "INSERT INTO out SELECT b.auction, b.price, a.seller
             FROM bid b JOIN auction a ON b.auction = a.id
             AND b.date_time BETWEEN a.date_time - INTERVAL '5' SECOND
                                 AND a.date_time + INTERVAL '5' SECOND;",
        );
        assert_eq!(j.left_keys, vec!["auction"]);
        assert_eq!(j.left_expire.len(), 1, "{j:?}");
        assert_eq!(j.right_expire.len(), 1, "{j:?}");
        // The bid's bound: its own time + 5 s, inclusive.
        assert_eq!(j.left_expire[0].expr, "date_time", "{j:?}");
        assert_eq!(j.left_expire[0].offset_ms, 5_001, "{j:?}");
        // The auction's: the bound written over its columns, inclusive.
        assert_eq!(
            j.right_expire[0].expr, "(date_time + INTERVAL '5.000000000 SECS')",
            "{j:?}"
        );
        assert_eq!(j.right_expire[0].offset_ms, 1, "{j:?}");
        assert!(
            j.filter.is_some(),
            "the bounds stay a filter on the pairs: {j:?}"
        );
    }
}
