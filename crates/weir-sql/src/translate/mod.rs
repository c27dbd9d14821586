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
//!
//! This module holds the translator, its streams and the plan nodes that are one operator
//! each (projection, filter, the insert's sink); its children the rest, by topic.

mod aggregate;
mod expr;
mod join;
mod over;
mod source;
mod union;
mod window;

use self::expr::{quote, rename_columns, sql_text};
use crate::catalog::Catalog;
use crate::connectors;
use crate::error::{Result, SqlError};
use datafusion::common::Column;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::sqlparser::tokenizer::Location;
use std::collections::{BTreeSet, HashMap};
use weir_types::{InputSpec, OperatorKind, OperatorSpec, Partitioning, ProjectExpr};

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
            LogicalPlan::Aggregate(agg) => self.aggregate(agg),
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
}

/// The prefix of an updating result's key column that its query dropped (kept, hidden).
const HIDDEN_KEY: &str = "__key_";

/// The names of a schema's fields, in order.
fn field_names(fields: &datafusion::arrow::datatypes::Fields) -> Vec<String> {
    fields.iter().map(|f| f.name().clone()).collect()
}
