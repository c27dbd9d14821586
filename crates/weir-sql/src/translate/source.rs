//! Table scans: the columns the script reads from each table, and one source per table
//! (with its watermark) that every query reading it shares.

use super::{field_names, Stream, TimeCol, Translator};
use crate::connectors;
use crate::error::{Result, SqlError};
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::LogicalPlan;
use std::collections::BTreeSet;
use weir_types::{OperatorKind, OperatorSpec, WatermarkSpec};

impl Translator<'_> {
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
    pub(super) fn source(&mut self, name: &str, columns: Vec<String>) -> Result<Stream> {
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
