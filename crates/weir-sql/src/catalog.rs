//! The script's tables and views, and what DataFusion's planner asks of them.

use crate::error::{Result, SqlError};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::TableReference;
use datafusion::execution::SessionStateDefaults;
use datafusion::logical_expr::planner::{ContextProvider, ExprPlanner};
use datafusion::logical_expr::{
    AggregateUDF, HigherOrderUDF, LogicalPlan, ScalarUDF, TableSource, WindowUDF,
};
use datafusion::sql::sqlparser::tokenizer::Location;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A window table of a `TUMBLE`, `HOP` or `SESSION` call (`crate::windows` reads them).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowDef {
    /// The table or view the windows are over.
    pub input: String,
    /// Its event-time column.
    pub time: String,
    pub size_ms: u64,
    pub slide_ms: u64,
    /// SESSION windows: the gap (0 for TUMBLE and HOP) and the PARTITION BY columns.
    pub gap_ms: u64,
    pub partition: Vec<String>,
    pub schema: Arc<Schema>,
}

/// A `CREATE TABLE`: columns, connector options, primary key and watermark.
#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: String,
    pub schema: SchemaRef,
    /// `WITH (…)` options, keys as written.
    pub options: BTreeMap<String, String>,
    pub primary_key: Vec<String>,
    /// `WATERMARK FOR column AS column [- INTERVAL …]`: (column, delay in ms).
    pub watermark: Option<(String, u64)>,
    pub at: Location,
}

impl TableDef {
    pub fn connector(&self) -> Result<&str> {
        self.options
            .get("connector")
            .map(String::as_str)
            .ok_or_else(|| {
                SqlError::at(
                    self.at,
                    format!("table {}: WITH ('connector' = …) is missing", self.name),
                )
            })
    }
}

/// A `CREATE VIEW`: its planned query.
#[derive(Debug, Clone)]
pub struct ViewDef {
    pub plan: LogicalPlan,
}

pub struct Catalog {
    pub tables: BTreeMap<String, TableDef>,
    pub views: BTreeMap<String, ViewDef>,
    /// The window tables that stand for `TUMBLE(…)`/`HOP(…)` calls (see `windows`).
    pub windows: BTreeMap<String, WindowDef>,
    options: ConfigOptions,
    scalars: HashMap<String, Arc<ScalarUDF>>,
    aggregates: HashMap<String, Arc<AggregateUDF>>,
    window_fns: HashMap<String, Arc<WindowUDF>>,
    planners: Vec<Arc<dyn ExprPlanner>>,
}

impl Default for Catalog {
    fn default() -> Self {
        let mut scalars = HashMap::new();
        for f in SessionStateDefaults::default_scalar_functions() {
            for name in std::iter::once(f.name()).chain(f.aliases().iter().map(String::as_str)) {
                scalars.insert(name.to_string(), f.clone());
            }
        }
        let mut aggregates = HashMap::new();
        for f in SessionStateDefaults::default_aggregate_functions() {
            for name in std::iter::once(f.name()).chain(f.aliases().iter().map(String::as_str)) {
                aggregates.insert(name.to_string(), f.clone());
            }
        }
        let mut window_fns = HashMap::new();
        for f in SessionStateDefaults::default_window_functions() {
            for name in std::iter::once(f.name()).chain(f.aliases().iter().map(String::as_str)) {
                window_fns.insert(name.to_string(), f.clone());
            }
        }
        Self {
            tables: BTreeMap::new(),
            views: BTreeMap::new(),
            windows: BTreeMap::new(),
            options: ConfigOptions::default(),
            scalars,
            aggregates,
            window_fns,
            planners: SessionStateDefaults::default_expr_planners(),
        }
    }
}

impl Catalog {
    pub fn contains(&self, name: &str) -> bool {
        self.tables.contains_key(name) || self.views.contains_key(name)
    }
}

/// Weir's timestamps are milliseconds (Flink's `TIMESTAMP(3)`): any declared precision maps
/// to milliseconds; `VARCHAR` and friends are plain UTF-8.
pub fn normalize_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(_, _) => DataType::Timestamp(TimeUnit::Millisecond, None),
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        other => other.clone(),
    }
}

pub fn normalize_schema(s: &Schema) -> Schema {
    Schema::new(
        s.fields()
            .iter()
            .map(|f| Field::new(f.name(), normalize_type(f.data_type()), f.is_nullable()))
            .collect::<Vec<_>>(),
    )
}

/// A table as DataFusion's planner sees it: a schema. Filters are not pushed into scans (the
/// translator turns a scan into a source and a filter into a filter operator).
#[derive(Debug)]
struct StreamTable(datafusion::arrow::datatypes::SchemaRef);

impl TableSource for StreamTable {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.0.clone()
    }
}

impl ContextProvider for Catalog {
    fn get_table_source(
        &self,
        name: TableReference,
    ) -> datafusion::error::Result<Arc<dyn TableSource>> {
        let key = name.table();
        if let Some(t) = self.tables.get(key) {
            return Ok(Arc::new(StreamTable(t.schema.clone())));
        }
        if let Some(w) = self.windows.get(key) {
            return Ok(Arc::new(StreamTable(w.schema.clone())));
        }
        if let Some(v) = self.views.get(key) {
            let schema = Arc::new(v.plan.schema().as_arrow().clone());
            return Ok(Arc::new(StreamTable(schema)));
        }
        let known: Vec<&str> = self
            .tables
            .keys()
            .chain(self.views.keys())
            .map(String::as_str)
            .collect();
        datafusion::common::plan_err!(
            "no table or view named {key} (defined: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.planners
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.scalars.get(name).cloned()
    }

    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.aggregates.get(name).cloned()
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.window_fns.get(name).cloned()
    }

    fn get_variable_type(&self, _names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        &self.options
    }

    fn udf_names(&self) -> Vec<String> {
        self.scalars.keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.aggregates.keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        self.window_fns.keys().cloned().collect()
    }
}
