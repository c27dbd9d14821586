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
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::expr_rewriter::unnormalize_col;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::sqlparser::tokenizer::Location;
use datafusion::sql::unparser::expr_to_sql;
use std::collections::{BTreeSet, HashMap};
use weir_types::{
    AggFn, AggSpec, ExpireBound, InputSpec, JoinSpec, OperatorKind, OperatorSpec, OverSpec,
    Partitioning, ProjectExpr, WatermarkSpec, WindowSpec,
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
    /// Its event-time columns.
    times: Vec<TimeCol>,
}

/// An event-time column of a stream: every row still to come has `name > W - slack_ms` for
/// the watermark `W` that has reached the stream's consumer. A source's watermark column has
/// slack 0 (rows at or below the watermark are late); a window result's `window_end` has the
/// allowed lateness (a window is emitted when the watermark passes end plus lateness).
#[derive(Debug, Clone, PartialEq)]
struct TimeCol {
    name: String,
    slack_ms: i64,
    /// A window result's start or end column, and the windows' size.
    window: Option<(WindowRole, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum WindowRole {
    Start,
    End,
    /// A join side's expiry column (`A.expires` of `B.t BETWEEN A.t AND A.expires`): no join
    /// row of a side row is emitted after the watermark passed this column plus the slack,
    /// so a GROUP BY that includes it closes its groups then (q6's closed auctions).
    Closes,
}

impl Stream {
    fn time(&self, name: &str) -> Option<&TimeCol> {
        self.times.iter().find(|t| t.name == name)
    }

    /// The time columns that `from[i]` renamed to `to[i]` keeps.
    fn times_renamed(&self, from: &[Option<String>], to: &[String]) -> Vec<TimeCol> {
        let mut out = Vec::new();
        for (f, t) in from.iter().zip(to) {
            if let Some(tc) = f.as_deref().and_then(|f| self.time(f)) {
                out.push(TimeCol {
                    name: t.clone(),
                    ..tc.clone()
                });
            }
        }
        out
    }
}

/// `e` with its columns (resolved against `schema`, the plan node's input) renamed to the
/// stream's names for them: the runtime knows columns by these unqualified names, which after
/// a join differ from SQL's qualified ones (`a.id` and `b.id` become `id` and `id_2`).
fn rename_columns(e: &Expr, schema: &DFSchema, names: &[String]) -> Expr {
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

pub struct Translator<'a> {
    catalog: &'a Catalog,
    parallelism: u32,
    allowed_lateness_ms: u64,
    idle_timeout_ms: u64,
    pub ops: Vec<OperatorSpec>,
    sources: HashMap<String, Stream>,
    /// Columns each table is read with: every column any query of the script uses, so a
    /// table read by several queries (or twice by one, as q5 and q7 do) is one source, and
    /// its consumers stay together in event time (two sources of one table drift apart, and
    /// a join between them holds the faster one's rows until the slower catches up).
    reads: HashMap<String, BTreeSet<String>>,
    /// Streams already translated, by the plan they compute: a sub-plan that occurs twice
    /// (q5's two identical HOP counts) is computed once and feeds both consumers, as Flink's
    /// sub-plan reuse does.
    translated: HashMap<LogicalPlan, Stream>,
    ids: BTreeSet<String>,
    at: Location,
}

fn unsupported(at: Location, what: &str) -> SqlError {
    SqlError::at(at, format!("{what} is not supported in streaming SQL yet"))
}

/// An expression as SQL text over unqualified column names.
fn sql_text(e: &Expr, at: Location) -> Result<String> {
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

impl<'a> Translator<'a> {
    pub fn new(catalog: &'a Catalog, settings: &crate::Settings) -> Self {
        Self {
            catalog,
            parallelism: settings.parallelism.max(1),
            allowed_lateness_ms: settings.allowed_lateness_ms,
            idle_timeout_ms: settings.idle_timeout_ms,
            ops: Vec::new(),
            sources: HashMap::new(),
            translated: HashMap::new(),
            reads: HashMap::new(),
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
        if let Some(k) = keys.iter().flatten().find(|k| k.starts_with(HIDDEN_KEY)) {
            return Err(SqlError::at(
                at,
                format!(
                    "INSERT INTO {name}: the result of a GROUP BY must keep its key column {} (it keys the updates)",
                    &k[HIDDEN_KEY.len()..]
                ),
            ));
        }
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
        if let Some(s) = self.translated.get(p) {
            return Ok(s.clone());
        }
        let s = self.plan_node(p)?;
        self.translated.insert(p.clone(), s.clone());
        Ok(s)
    }

    fn plan_node(&mut self, p: &LogicalPlan) -> Result<Stream> {
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
                let all: Vec<String> = field_names(table.schema.fields());
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
                let names: Vec<String> = field_names(proj.schema.fields());
                let mut exprs = Vec::with_capacity(names.len());
                let mut plain: Vec<Option<String>> = Vec::with_capacity(names.len());
                let renamed: Vec<Expr> = proj
                    .expr
                    .iter()
                    .map(|e| rename_columns(e, proj.input.schema(), &input.columns))
                    .collect();
                for (e, name) in renamed.iter().zip(&names) {
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
                // An updating result keeps its key columns (perhaps renamed); a key the query
                // drops stays as a hidden column after the visible ones, for an aggregate
                // over this result to tell whose update a row is.
                let mut names = names;
                let keys = match &input.keys {
                    None => None,
                    Some(keys) => {
                        let mut out = Vec::new();
                        for k in keys {
                            match plain.iter().position(|p| p.as_deref() == Some(k.as_str())) {
                                Some(pos) => out.push(names[pos].clone()),
                                None => {
                                    let hidden = if k.starts_with(HIDDEN_KEY) {
                                        k.clone()
                                    } else {
                                        format!("{HIDDEN_KEY}{k}")
                                    };
                                    exprs.push(ProjectExpr {
                                        expr: quote(k),
                                        name: hidden.clone(),
                                    });
                                    plain.push(Some(k.clone()));
                                    names.push(hidden.clone());
                                    out.push(hidden);
                                }
                            }
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
                    times: input.times_renamed(&plain, &names),
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
                let predicate = sql_text(
                    &rename_columns(&f.predicate, f.input.schema(), &input.columns),
                    at,
                )?;
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
                    .map(|e| {
                        rename_columns(&integer_widening_free(e, schema), schema, &input.columns)
                    })
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
                let (aggregates, outputs) =
                    lower_aggregates(&aggr_expr, &out_names[keys.len()..], at)?;
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
                let mut s = self.aggregate_then_project(
                    "aggregate",
                    kind,
                    &input,
                    &keys,
                    exprs,
                    &out_names,
                );
                s.keys = Some(keys);
                Ok(s)
            }
            LogicalPlan::Join(j) => self.join(j),
            LogicalPlan::Sort(_) => Err(SqlError::at(
                at,
                "ORDER BY is not supported on an unbounded stream",
            )),
            LogicalPlan::Limit(_) => Err(SqlError::at(
                at,
                "LIMIT is not supported on an unbounded stream",
            )),
            LogicalPlan::Window(w) => self.over(w),
            LogicalPlan::Distinct(datafusion::logical_expr::Distinct::All(input)) => {
                // SELECT DISTINCT (and UNION's distinct) is a GROUP BY of every column
                // without aggregates: an updating result keyed by the whole row.
                let group: Vec<Expr> = input
                    .schema()
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect();
                let agg =
                    datafusion::logical_expr::Aggregate::try_new(input.clone(), group, vec![])
                        .map_err(|e| SqlError::from_datafusion(e, at))?;
                self.plan(&LogicalPlan::Aggregate(agg))
            }
            LogicalPlan::Distinct(_) => Err(unsupported(at, "SELECT DISTINCT ON")),
            LogicalPlan::Union(u) => self.union(u),
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

    /// An inner equi-join: a `join` operator reading both sides hash-partitioned by their
    /// keys. Its state is bounded by what the condition says about event time: for each
    /// conjunct `a <= b` (also `<`, `=`, `BETWEEN`) where `a` is an event-time column of one
    /// side (plus or minus a constant) and `b` an expression over the other side's columns,
    /// no row still to come on `a`'s side can match an other-side row once the watermark has
    /// passed `b` (plus `a`'s slack), so that row expires then. Interval joins (`BETWEEN
    /// r.t - INTERVAL … AND r.t`) and window joins (equal `window_end`s) come out bounded;
    /// other joins keep their rows, as Flink does without a state TTL.
    fn join(&mut self, j: &datafusion::logical_expr::Join) -> Result<Stream> {
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

    /// Keys for a keyed operator: `keys`, or, for an aggregate over everything (no key
    /// columns), a constant column computed first: one group, on one subtask.
    fn global_key(&mut self, input: Stream, keys: Vec<String>) -> Result<(Stream, Vec<String>)> {
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

    /// `GROUP BY … window_start, window_end` over a window result (another window
    /// aggregate's rows, grouped again by their window): an `assigned` window aggregate,
    /// append-only like the first. `None` when the aggregate groups by no window column.
    fn assigned_window(
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

    /// `AGG(x) OVER (PARTITION BY k ORDER BY t ROWS BETWEEN n PRECEDING AND CURRENT ROW)`
    /// (or `UNBOUNDED PRECEDING`) over an append-only stream whose `t` is an event-time
    /// column: an `over_aggregate`, then the projection that computes the query's columns.
    fn over(&mut self, w: &datafusion::logical_expr::Window) -> Result<Stream> {
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
            times: Vec::new(),
        }
    }

    /// UNION ALL: every input's rows, in the union's column names, through one `union`
    /// operator. A time column stays one if it is one in every input (with the largest
    /// slack of them).
    fn union(&mut self, u: &datafusion::logical_expr::Union) -> Result<Stream> {
        let at = self.at;
        let names = field_names(u.schema.fields());
        let mut streams: Vec<Stream> = Vec::new();
        for input in &u.inputs {
            let s = self.plan(input)?;
            if s.keys.is_some() {
                return Err(unsupported(
                    at,
                    "UNION over an updating result (a GROUP BY without a window)",
                ));
            }
            if s.columns.len() != names.len() {
                return Err(SqlError::at(
                    at,
                    format!(
                        "UNION: an input has {} columns, the union {}",
                        s.columns.len(),
                        names.len()
                    ),
                ));
            }
            // Each input gets its own edge: an input that is another's stream (the same
            // sub-plan twice) or named otherwise goes through a projection of its own.
            let s = if s.columns != names || streams.iter().any(|o| o.op == s.op) {
                let from = s.columns.clone();
                self.project_columns(&s, &from, &names)?
            } else {
                s
            };
            streams.push(s);
        }
        let times: Vec<TimeCol> = streams
            .first()
            .map(|first| {
                first
                    .times
                    .iter()
                    .filter_map(|t| {
                        let all: Vec<&TimeCol> =
                            streams.iter().filter_map(|s| s.time(&t.name)).collect();
                        (all.len() == streams.len()).then(|| TimeCol {
                            name: t.name.clone(),
                            slack_ms: all.iter().map(|x| x.slack_ms).max().unwrap_or(0),
                            window: if all.iter().all(|x| x.window == t.window) {
                                t.window
                            } else {
                                None
                            },
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let id = self.fresh("union");
        let inputs = streams
            .iter()
            .map(|s| InputSpec {
                from: s.op.clone(),
                partition: self.forward_or_rebalance(s),
            })
            .collect();
        self.ops.push(OperatorSpec {
            id: id.clone(),
            parallelism: self.parallelism,
            inputs,
            kind: OperatorKind::Union,
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
        let from: Vec<Option<String>> = from.iter().cloned().map(Some).collect();
        Ok(Stream {
            op,
            parallelism: self.parallelism,
            times: input.times_renamed(&from, to),
            columns: to.to_vec(),
            keys: None,
        })
    }

    /// Records the columns the script's queries read from each table (before translating
    /// them), from their scans: a window table's scan reads its input table's columns.
    pub fn plan_reads(&mut self, plans: &[&LogicalPlan]) {
        use datafusion::common::tree_node::TreeNodeRecursion;
        let mut todo: Vec<LogicalPlan> = plans.iter().map(|p| (*p).clone()).collect();
        let mut seen_views = BTreeSet::new();
        while let Some(plan) = todo.pop() {
            let _ = plan.apply(|node| {
                if let LogicalPlan::TableScan(scan) = node {
                    let name = scan.table_name.table().to_string();
                    let cols: Vec<String> = match &scan.projection {
                        Some(p) => p
                            .iter()
                            .map(|i| scan.source.schema().field(*i).name().clone())
                            .collect(),
                        None => scan
                            .source
                            .schema()
                            .fields()
                            .iter()
                            .map(|f| f.name().clone())
                            .collect(),
                    };
                    if let Some(w) = self.catalog.windows.get(&name) {
                        if let Some(v) = self.catalog.views.get(&w.input) {
                            if seen_views.insert(w.input.clone()) {
                                todo.push(v.plan.clone());
                            }
                        } else {
                            let e = self.reads.entry(w.input.clone()).or_default();
                            e.extend(
                                cols.into_iter()
                                    .filter(|c| c != "window_start" && c != "window_end"),
                            );
                            e.insert(w.time.clone());
                        }
                    } else if self.catalog.tables.contains_key(&name) {
                        self.reads.entry(name).or_default().extend(cols);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            });
        }
    }

    /// The stream of a table's `columns`: a projection of the table's one source (reading
    /// what `plan_reads` found), or a source of its own for columns it did not foresee.
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
        let read: Vec<String> = table
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|c| self.reads.get(name).is_some_and(|r| r.contains(c)))
            .collect();
        let covers = !columns.is_empty() && columns.iter().all(|c| read.contains(c));
        if !covers || read == columns {
            let s = self.table_source(name, columns)?;
            self.sources.insert(cache_key, s.clone());
            return Ok(s);
        }
        let base = self.table_source(name, read)?;
        let s = self.project_columns(&base, &columns, &columns)?;
        self.sources.insert(cache_key, s.clone());
        Ok(s)
    }

    /// The source of a table reading `columns` (one per table and column set).
    fn table_source(&mut self, name: &str, columns: Vec<String>) -> Result<Stream> {
        let cache_key = format!("{name}[{}]", columns.join(","));
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
        let all: Vec<String> = field_names(table.schema.fields());
        // A query that uses no column still needs rows: read the first.
        let columns = if columns.is_empty() {
            all[..1].to_vec()
        } else {
            columns
        };
        let (kind, alignment) = connectors::source(table, &columns)?;
        let projects_itself = match &kind {
            OperatorKind::Nexmark(_) => true,
            OperatorKind::FileSource(f) => matches!(
                f.format,
                weir_types::FileFormat::Parquet | weir_types::FileFormat::Jsonl
            ),
            _ => false,
        };
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
                alignment: alignment.clone(),
            });
        let times = watermark
            .iter()
            .map(|w| TimeCol {
                name: w.column.clone(),
                slack_ms: 0,
                window: None,
            })
            .collect();
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
            times,
        };
        if s.columns != columns {
            s = self.project_columns(&s, &columns, &columns)?;
        }
        self.sources.insert(cache_key, s.clone());
        Ok(s)
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

/// The prefix of an updating result's key column that its query dropped (kept, hidden).
const HIDDEN_KEY: &str = "__key_";

/// The names of a schema's fields, in order.
fn field_names(fields: &datafusion::arrow::datatypes::Fields) -> Vec<String> {
    fields.iter().map(|f| f.name().clone()).collect()
}

/// A column name as a quoted SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `e` without the casts of integer columns to BIGINT that DataFusion's type coercion puts
/// around SUM's argument (`SUM(qty)` of an INT column is `SUM(CAST(qty AS BIGINT))` after
/// it): the runtime sums every integer type as a 64-bit integer anyway, and the cast would
/// make the aggregate's argument an expression it does not take.
fn integer_widening_free(e: &Expr, schema: &DFSchema) -> Expr {
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
