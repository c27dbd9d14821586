//! Weir's streaming SQL: a script of `SET`, `CREATE TABLE … WITH (…)`, `CREATE VIEW` and
//! `INSERT INTO … SELECT` statements compiled to one job graph (every `INSERT` of the script
//! runs in the same job, like Flink's statement set).
//!
//! DataFusion parses (sqlparser), resolves names, types and plans each query; [`translate`]
//! turns its logical plan into Weir's operators. This crate knows the job model
//! (`weir-types`) and nothing of the runtime: expressions travel as SQL text and the runtime
//! compiles them against the columns it really has.

mod catalog;
mod connectors;
mod ddl;
mod error;
mod explain;
mod planning;
mod script;
mod settings;
mod translate;
mod windows;

pub use error::{Result, SqlError};
pub use explain::explain;
pub use settings::Settings;

use catalog::{Catalog, ViewDef};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::tokenizer::Location;
use ddl::{object_name, table_def};
use planning::{check_insert_types, inline_views, plan};
use script::Item;
use weir_types::JobSpec;

/// Compiles a SQL script to a job named `name` (a `SET 'pipeline.name'` overrides it).
pub fn compile(sql: &str, name: &str) -> Result<JobSpec> {
    let mut catalog = Catalog::default();
    let mut settings = Settings::new(name);
    let mut inserts: Vec<(LogicalPlan, Location)> = Vec::new();
    for item in script::split(sql)? {
        match item {
            Item::Set { key, value, at } => settings.apply(&key, &value, at)?,
            Item::Statement {
                stmt,
                at,
                watermark,
            } => match *stmt {
                Statement::CreateTable(ct) => {
                    let def = table_def(&catalog, &ct, at, watermark)?;
                    if catalog.contains(&def.name) {
                        return Err(SqlError::at(at, format!("{} is already defined", def.name)));
                    }
                    catalog.tables.insert(def.name.clone(), def);
                }
                Statement::CreateView(v) => {
                    let name = object_name(&v.name);
                    if catalog.contains(&name) {
                        return Err(SqlError::at(at, format!("{name} is already defined")));
                    }
                    if !v.columns.is_empty() {
                        return Err(SqlError::at(
                            at,
                            "CREATE VIEW with a column list is not supported yet: name the columns with AS in the query",
                        ));
                    }
                    let mut query = Statement::Query(v.query);
                    windows::rewrite(&mut query, &mut catalog, at)?;
                    let plan = plan(&catalog, query, at)?;
                    catalog.views.insert(name, ViewDef { plan });
                }
                mut s @ Statement::Insert(_) => {
                    windows::rewrite(&mut s, &mut catalog, at)?;
                    let planned = plan(&catalog, s, at)?;
                    check_insert_types(&planned, at)?;
                    let p = inline_views(&catalog, planned, at)?;
                    inserts.push((p, at))
                }
                Statement::Query(_) => return Err(SqlError::at(
                    at,
                    "a bare SELECT has nowhere to write its rows: use INSERT INTO <table> SELECT …",
                )),
                other => {
                    let text = other.to_string();
                    let first: String = text
                        .split_whitespace()
                        .take(2)
                        .collect::<Vec<_>>()
                        .join(" ");
                    return Err(SqlError::at(
                        at,
                        format!("{first} … is not supported (a script has SET, CREATE TABLE, CREATE VIEW and INSERT INTO statements)"),
                    ));
                }
            },
        }
    }
    if inserts.is_empty() {
        return Err(SqlError::Script(
            "the script has no INSERT INTO statement: there is nothing to run".into(),
        ));
    }
    let mut t = translate::Translator::new(&catalog, &settings);
    t.plan_reads(&inserts.iter().map(|(p, _)| p).collect::<Vec<_>>());
    for (p, at) in &inserts {
        t.insert(p, *at)?;
    }
    let job = settings.job(t.ops);
    // The job's own check names its JSON fields; a SQL user sets Flink's settings.
    if job.guarantee == weir_types::DeliveryGuarantee::ExactlyOnce
        && job.checkpoint.interval_ms == 0
    {
        if let Some(op) = job
            .operators
            .iter()
            .find(|o| o.kind.is_transactional_sink())
        {
            let table = op.id.strip_suffix("_sink").unwrap_or(&op.id);
            return Err(SqlError::Script(format!(
                "INSERT INTO {table}: its sink commits with checkpoints (exactly-once), and checkpoints are off: SET 'execution.checkpointing.interval' = '1s' (or SET 'weir.delivery-guarantee' = 'at-least-once')"
            )));
        }
    }
    job.validate()
        .map_err(|e| SqlError::Script(format!("the compiled job is invalid: {e}")))?;
    Ok(job)
}

#[cfg(test)]
mod tests;
