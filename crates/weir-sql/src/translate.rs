//! DataFusion logical plans to Weir operators.
//!
//! DataFusion plans and types each `INSERT INTO … SELECT`; this walks the plan bottom-up and
//! emits the job graph's operators: a table scan becomes the table's source (one per table,
//! shared by every query of the script that reads it), a projection a `project`, a filter a
//! `filter`, a `GROUP BY` over columns a `keyed_aggregate` behind a hash exchange plus a
//! `project` of the keys and aggregates (an updating result, keyed by the group columns), and
//! the insert the target table's sink. Expressions go into the job as SQL text (DataFusion's
//! unparser), which the runtime compiles again against the columns it actually has.
//! Anything else is refused with a message that names the construct.

use crate::catalog::Catalog;
use crate::connectors;
use crate::error::{Result, SqlError};
use datafusion::common::Column;
use datafusion::logical_expr::expr_rewriter::unnormalize_col;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::sqlparser::tokenizer::Location;
use datafusion::sql::unparser::expr_to_sql;
use std::collections::{BTreeSet, HashMap};
use weir_types::{
    AggFn, AggSpec, InputSpec, OperatorKind, OperatorSpec, Partitioning, ProjectExpr,
    WatermarkSpec, WindowSpec,
};

/// The output of a translated plan node.
#[derive(Debug, Clone)]
struct Stream {
    op: String,
    parallelism: u32,
    /// Column names, in order.
    columns: Vec<String>,
    /// An updating result: the columns that key it.
    keys: Option<Vec<String>>,
}

pub struct Translator<'a> {
    catalog: &'a Catalog,
    parallelism: u32,
    allowed_lateness_ms: u64,
    idle_timeout_ms: u64,
    pub ops: Vec<OperatorSpec>,
    sources: HashMap<String, Stream>,
    ids: BTreeSet<String>,
    at: Location,
}

fn unsupported(at: Location, what: &str) -> SqlError {
    SqlError::at(at, format!("{what} is not supported in streaming SQL yet"))
}

/// An expression as SQL text over unqualified column names.
fn sql_text(e: &Expr, at: Location) -> Result<String> {
    let e = unnormalize_col(e.clone().unalias());
    expr_to_sql(&e)
        .map(|s| s.to_string())
        .map_err(|err| SqlError::from_datafusion(err, at))
}

impl<'a> Translator<'a> {
    pub fn new(catalog: &'a Catalog, settings: &crate::Settings) -> Self {
        Self {
            catalog,
            parallelism: settings.parallelism.max(1),
            allowed_lateness_ms: settings.allowed_lateness_ms,
            idle_timeout_ms: settings.idle_timeout_ms,
            ops: Vec::new(),
            sources: HashMap::new(),
            ids: BTreeSet::new(),
            at: Location::new(0, 0),
        }
    }

    fn fresh(&mut self, base: &str) -> String {
        let base: String = base
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut id = base.clone();
        let mut n = 1;
        while self.ids.contains(&id) {
            n += 1;
            id = format!("{base}_{n}");
        }
        self.ids.insert(id.clone());
        id
    }

    fn push(
        &mut self,
        base: &str,
        kind: OperatorKind,
        input: &Stream,
        partition: Partitioning,
    ) -> String {
        let id = self.fresh(base);
        self.ops.push(OperatorSpec {
            id: id.clone(),
            parallelism: self.parallelism,
            inputs: vec![InputSpec {
                from: input.op.clone(),
                partition,
            }],
            kind,
            watermark: None,
        });
        id
    }

    /// The edge from `input` to an operator of this translator's parallelism.
    fn forward_or_rebalance(&self, input: &Stream) -> Partitioning {
        if input.parallelism == self.parallelism {
            Partitioning::Forward
        } else {
            Partitioning::Rebalance
        }
    }

    /// `INSERT INTO table <query>`, planned by DataFusion as a DML node.
    pub fn insert(&mut self, plan: &LogicalPlan, at: Location) -> Result<String> {
        self.at = at;
        let LogicalPlan::Dml(dml) = plan else {
            return Err(SqlError::at(
                at,
                "only INSERT INTO … SELECT runs as a streaming job (a bare SELECT has nowhere to go)",
            ));
        };
        let name = dml.table_name.table().to_string();
        let table = self.catalog.tables.get(&name).ok_or_else(|| {
            SqlError::at(
                at,
                format!("INSERT INTO {name}: {name} is a view, not a table"),
            )
        })?;
        let input = self.plan(&dml.input)?;
        let keys = input.keys.clone();
        let kind = connectors::sink(table, keys.as_deref())?;
        let partition = match &keys {
            // Updates of one key must reach one sink subtask in order. An updating stream
            // comes out of a keyed aggregate (hash-partitioned by these keys at this
            // parallelism, renames keep the values), so forward keeps that; otherwise route
            // by key.
            Some(_) if input.parallelism == self.parallelism => Partitioning::Forward,
            Some(k) => Partitioning::Hash(k.clone()),
            None => self.forward_or_rebalance(&input),
        };
        Ok(self.push(&format!("{name}_sink"), kind, &input, partition))
    }

    fn plan(&mut self, p: &LogicalPlan) -> Result<Stream> {
        let at = self.at;
        match p {
            LogicalPlan::TableScan(scan) => {
                let name = scan.table_name.table().to_string();
                if let Some(view) = self.catalog.views.get(&name) {
                    let plan = view.plan.clone();
                    return self.plan(&plan);
                }
                let table = self
                    .catalog
                    .tables
                    .get(&name)
                    .ok_or_else(|| SqlError::at(at, format!("no table {name}")))?;
                let all: Vec<String> = table
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let columns = match &scan.projection {
                    Some(proj) => proj.iter().map(|i| all[*i].clone()).collect(),
                    None => all,
                };
                if !scan.filters.is_empty() || scan.fetch.is_some() {
                    return Err(unsupported(at, "a filtered or limited table scan"));
                }
                self.source(&name, columns)
            }
            LogicalPlan::SubqueryAlias(a) => self.plan(&a.input),
            LogicalPlan::Projection(proj) => {
                let input = self.plan(&proj.input)?;
                let names: Vec<String> = proj
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let mut exprs = Vec::with_capacity(names.len());
                let mut plain: Vec<Option<String>> = Vec::with_capacity(names.len());
                for (e, name) in proj.expr.iter().zip(&names) {
                    let inner = e.clone().unalias();
                    plain.push(match &inner {
                        Expr::Column(Column { name: c, .. }) => Some(c.clone()),
                        _ => None,
                    });
                    exprs.push(ProjectExpr {
                        expr: sql_text(e, at)?,
                        name: name.clone(),
                    });
                }
                // An updating result keeps its key columns (perhaps renamed).
                let keys = match &input.keys {
                    None => None,
                    Some(keys) => {
                        let mut out = Vec::new();
                        for k in keys {
                            let Some(pos) =
                                plain.iter().position(|p| p.as_deref() == Some(k.as_str()))
                            else {
                                return Err(SqlError::at(
                                    at,
                                    format!("the result of a GROUP BY must keep its key column {k} (it keys the updates)"),
                                ));
                            };
                            out.push(names[pos].clone());
                        }
                        Some(out)
                    }
                };
                let identity = plain.len() == input.columns.len()
                    && plain
                        .iter()
                        .zip(&input.columns)
                        .zip(&names)
                        .all(|((p, c), n)| p.as_deref() == Some(c.as_str()) && n == c);
                if identity {
                    return Ok(input);
                }
                let partition = self.forward_or_rebalance(&input);
                let op = self.push(
                    "project",
                    OperatorKind::Project { exprs },
                    &input,
                    partition,
                );
                Ok(Stream {
                    op,
                    parallelism: self.parallelism,
                    columns: names,
                    keys,
                })
            }
            LogicalPlan::Filter(f) => {
                let input = self.plan(&f.input)?;
                if input.keys.is_some() {
                    return Err(unsupported(
                        at,
                        "a filter over an updating result (HAVING, or WHERE over a GROUP BY view)",
                    ));
                }
                let predicate = sql_text(&f.predicate, at)?;
                let partition = self.forward_or_rebalance(&input);
                let op = self.push(
                    "filter",
                    OperatorKind::Filter { predicate },
                    &input,
                    partition,
                );
                Ok(Stream {
                    op,
                    parallelism: self.parallelism,
                    ..input
                })
            }
            LogicalPlan::Aggregate(agg) if self.window_scan(&agg.input).is_some() => {
                self.window_aggregate(agg)
            }
            LogicalPlan::Aggregate(agg) => {
                let mut input = self.plan(&agg.input)?;
                if input.keys.is_some() {
                    return Err(unsupported(at, "an aggregate over an updating result"));
                }
                if agg.group_expr.is_empty() {
                    return Err(unsupported(
                        at,
                        "an aggregate without GROUP BY (a global aggregate)",
                    ));
                }
                let out_names: Vec<String> = agg
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                // Group columns as they are; group expressions computed by a projection first,
                // under the names the aggregate's schema gives them.
                let mut keys = Vec::new();
                let mut computed = Vec::new();
                for (g, name) in agg.group_expr.iter().zip(&out_names) {
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
                let (aggregates, outputs) =
                    lower_aggregates(&agg.aggr_expr, &out_names[keys.len()..], at)?;
                for a in &aggregates {
                    if input.columns.contains(&a.name) {
                        return Err(SqlError::at(
                            at,
                            format!("the aggregate's name {} is also an input column; give it another name with AS", a.name),
                        ));
                    }
                }
                let exprs = keys.iter().map(|k| quote(k)).chain(outputs).collect();
                let mut s = self.aggregate_then_project(
                    "aggregate",
                    OperatorKind::KeyedAggregate {
                        keys: keys.clone(),
                        aggregates,
                    },
                    &input,
                    &keys,
                    exprs,
                    &out_names,
                );
                s.keys = Some(keys);
                Ok(s)
            }
            LogicalPlan::Join(_) => Err(unsupported(at, "a join")),
            LogicalPlan::Sort(_) => Err(SqlError::at(
                at,
                "ORDER BY is not supported on an unbounded stream",
            )),
            LogicalPlan::Limit(_) => Err(SqlError::at(
                at,
                "LIMIT is not supported on an unbounded stream",
            )),
            LogicalPlan::Window(_) => Err(unsupported(at, "an OVER window")),
            LogicalPlan::Distinct(_) => Err(unsupported(at, "SELECT DISTINCT")),
            LogicalPlan::Union(_) => Err(unsupported(at, "UNION")),
            LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => Err(SqlError::at(
                at,
                "a query must read a table: VALUES and SELECT without FROM are not streams",
            )),
            other => Err(unsupported(
                at,
                &format!("{} (in this query)", other.display()),
            )),
        }
    }

    /// The window table an aggregate reads, through aliases and column-only projections.
    fn window_scan<'p>(
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
    fn window_aggregate(&mut self, agg: &datafusion::logical_expr::Aggregate) -> Result<Stream> {
        let at = self.at;
        let scan = self
            .window_scan(&agg.input)
            .ok_or_else(|| unsupported(at, "this window query"))?;
        let w = self.catalog.windows[scan.table_name.table()].clone();
        let mut keys = Vec::new();
        let mut window_cols = 0;
        for g in &agg.group_expr {
            match g {
                Expr::Column(c) if c.name == "window_start" || c.name == "window_end" => {
                    window_cols += 1
                }
                Expr::Column(c) => keys.push(c.name.clone()),
                other => {
                    return Err(SqlError::at(
                        at,
                        format!(
                            "GROUP BY {} is not supported with windows yet: group by columns",
                            sql_text(other, at)?
                        ),
                    ))
                }
            }
        }
        if window_cols == 0 {
            return Err(SqlError::at(
                at,
                "a window aggregate must GROUP BY window_start, window_end (and any key columns)",
            ));
        }
        if keys.is_empty() {
            return Err(unsupported(at, "a window aggregate without key columns"));
        }
        let out_names: Vec<String> = agg
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let (aggregates, outputs) =
            lower_aggregates(&agg.aggr_expr, &out_names[agg.group_expr.len()..], at)?;
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
        let spec = WindowSpec {
            keys: keys.clone(),
            time: w.time.clone(),
            size_ms: w.size_ms,
            slide_ms: w.slide_ms,
            aggregates,
            allowed_lateness_ms: self.allowed_lateness_ms,
            assigned: false,
        };
        // The aggregate's columns in its order (group columns as listed, then aggregates).
        let exprs = agg
            .group_expr
            .iter()
            .filter_map(|g| match g {
                Expr::Column(c) => Some(quote(&c.name)),
                _ => None,
            })
            .chain(outputs)
            .collect();
        Ok(self.aggregate_then_project(
            "window",
            OperatorKind::WindowAggregate(spec),
            &input,
            &keys,
            exprs,
            &out_names,
        ))
    }

    /// An aggregate operator behind a hash exchange on `keys`, then the projection that
    /// computes the query's columns (`exprs`, named `names`) from its accumulators.
    fn aggregate_then_project(
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

    fn project_exprs(
        &mut self,
        input: &Stream,
        exprs: Vec<ProjectExpr>,
        names: Vec<String>,
    ) -> Stream {
        let partition = self.forward_or_rebalance(input);
        let op = self.push("project", OperatorKind::Project { exprs }, input, partition);
        Stream {
            op,
            parallelism: self.parallelism,
            columns: names,
            keys: None,
        }
    }

    /// A projection of plain columns `from` renamed to `to`.
    fn project_columns(
        &mut self,
        input: &Stream,
        from: &[String],
        to: &[String],
    ) -> Result<Stream> {
        let exprs = from
            .iter()
            .zip(to)
            .map(|(f, t)| {
                Ok(ProjectExpr {
                    expr: sql_text(&Expr::Column(Column::from_name(f)), self.at)?,
                    name: t.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let partition = self.forward_or_rebalance(input);
        let op = self.push("project", OperatorKind::Project { exprs }, input, partition);
        Ok(Stream {
            op,
            parallelism: self.parallelism,
            columns: to.to_vec(),
            keys: None,
        })
    }

    /// The source of a table reading `columns` (one per table and column set).
    fn source(&mut self, name: &str, columns: Vec<String>) -> Result<Stream> {
        let cache_key = format!("{name}({})", columns.join(","));
        if let Some(s) = self.sources.get(&cache_key) {
            return Ok(s.clone());
        }
        let table = self
            .catalog
            .tables
            .get(name)
            .ok_or_else(|| SqlError::at(self.at, format!("no table {name}")))?;
        // A WATERMARK clause only matters to event-time operators (windows); stateless and
        // GROUP BY queries read the table the same with or without it.
        let all: Vec<String> = table
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        // A query that uses no column still needs rows: read the first.
        let columns = if columns.is_empty() {
            all[..1].to_vec()
        } else {
            columns
        };
        let kind = connectors::source(table, &columns)?;
        let projects_itself = matches!(kind, OperatorKind::Nexmark(_));
        let id = self.fresh(name);
        // The table's watermark, when the source reads its column.
        let watermark = table
            .watermark
            .as_ref()
            .filter(|(c, _)| columns.contains(c) || !projects_itself)
            .map(|(column, delay_ms)| WatermarkSpec {
                column: column.clone(),
                delay_ms: *delay_ms,
                idle_timeout_ms: self.idle_timeout_ms,
            });
        self.ops.push(OperatorSpec {
            id: id.clone(),
            parallelism: self.parallelism,
            inputs: vec![],
            kind,
            watermark,
        });
        let mut s = Stream {
            op: id,
            parallelism: self.parallelism,
            columns: if projects_itself {
                columns.clone()
            } else {
                all.clone()
            },
            keys: None,
        };
        if s.columns != columns {
            s = self.project_columns(&s, &columns, &columns)?;
        }
        self.sources.insert(cache_key, s.clone());
        Ok(s)
    }
}

/// A column name as a quoted SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The accumulators of a query's aggregates and, per aggregate, the SQL that computes its
/// result from them: COUNT, SUM, MIN and MAX are one accumulator each; AVG(x) is SUM(x) and
/// COUNT(x), and their quotient (NULL when no row had a value).
fn lower_aggregates(
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
                // DataFusion's coercion casts AVG's argument to DOUBLE; the sum is taken over
                // the column itself (exact for integers) and divided as DOUBLE after.
                let arg = match p.args.as_slice() {
                    [Expr::Cast(c)] => Some(c.expr.as_ref()),
                    [Expr::TryCast(c)] => Some(c.expr.as_ref()),
                    [e] => Some(e),
                    _ => None,
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
                outputs.push(format!(
                    "CASE WHEN {c} = 0 THEN NULL ELSE CAST({s} AS DOUBLE) / CAST({c} AS DOUBLE) END",
                    c = quote(&count),
                    s = quote(&sum)
                ));
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
        return Err(unsupported(
            at,
            &format!("{}(DISTINCT …)", fname.to_uppercase()),
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
