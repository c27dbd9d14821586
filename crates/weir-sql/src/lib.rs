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
mod error;
mod explain;
mod script;
mod settings;
mod translate;
mod windows;

pub use error::{Result, SqlError};
pub use explain::explain;
pub use settings::Settings;

use catalog::{normalize_schema, Catalog, TableDef, ViewDef};
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::Analyzer;
use datafusion::sql::planner::{ParserOptions, SqlToRel};
use datafusion::sql::sqlparser::ast::{
    ColumnOption, CreateTableOptions, Expr as SqlExpr, ObjectName, SqlOption, Statement,
    TableConstraint, Value,
};
use datafusion::sql::sqlparser::tokenizer::Location;
use script::Item;
use std::sync::Arc;
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

/// An INSERT's query must give each sink column its type or one Flink casts to it
/// implicitly (a wider number): DataFusion plans any cast, so `INSERT INTO t (k BIGINT)
/// SELECT s` of a VARCHAR would plan and fail on the first row at run time. Flink refuses it
/// when planning ("Incompatible types for sink column"), and so does this.
fn check_insert_types(p: &LogicalPlan, at: Location) -> Result<()> {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::{Expr, ExprSchemable};
    let LogicalPlan::Dml(dml) = p else {
        return Ok(());
    };
    let LogicalPlan::Projection(proj) = dml.input.as_ref() else {
        return Ok(());
    };
    let implicit = |from: &DataType, to: &DataType| {
        from == to
            || from == &DataType::Null
            || (from.is_integer()
                && (to.is_integer() || to.is_floating())
                && width(from) <= width(to))
            || (from.is_floating() && to.is_floating() && width(from) <= width(to))
            || (matches!(from, DataType::Decimal128(..) | DataType::Decimal256(..))
                && to.is_floating())
            || (matches!(from, DataType::Timestamp(..)) && matches!(to, DataType::Timestamp(..)))
            || (is_text(from) && is_text(to))
    };
    for (e, field) in proj.expr.iter().zip(dml.target.schema().fields()) {
        let Expr::Cast(c) = e.clone().unalias() else {
            continue;
        };
        let from = c
            .expr
            .get_type(proj.input.schema())
            .map_err(|e| SqlError::from_datafusion(e, at))?;
        if !implicit(&from, field.data_type()) {
            return Err(SqlError::at(
                at,
                format!(
                    "INSERT INTO {}: column {} is {}, and the query gives it {} ({}), which Flink does not cast implicitly; write CAST(… AS {}) if that is meant",
                    dml.table_name.table(),
                    field.name(),
                    sql_type_name(field.data_type()),
                    sql_type_name(&from),
                    c.expr,
                    sql_type_name(field.data_type()),
                ),
            ));
        }
    }
    Ok(())
}

fn is_text(t: &datafusion::arrow::datatypes::DataType) -> bool {
    use datafusion::arrow::datatypes::DataType;
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Bits of a number type (for widening checks).
fn width(t: &datafusion::arrow::datatypes::DataType) -> u32 {
    t.primitive_width().map_or(u32::MAX, |w| w as u32 * 8)
}

/// A column type in Flink SQL's words.
fn sql_type_name(t: &datafusion::arrow::datatypes::DataType) -> String {
    use datafusion::arrow::datatypes::DataType;
    match t {
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Timestamp(..) => "TIMESTAMP(3)".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        other => other.to_string(),
    }
}

/// Plans one statement with DataFusion, types coerced.
fn plan(catalog: &Catalog, stmt: Statement, at: Location) -> Result<LogicalPlan> {
    let opts = ParserOptions::new()
        .with_collect_spans(true)
        .with_map_string_types_to_utf8view(false);
    let planner = SqlToRel::new_with_options(catalog, opts);
    let p = planner
        .sql_statement_to_plan(stmt)
        .map_err(|e| SqlError::from_datafusion(e, at))?;
    use datafusion::logical_expr::planner::ContextProvider;
    Analyzer::new()
        .execute_and_check(p, catalog.options(), |_, _| {})
        .map_err(|e| SqlError::from_datafusion(e, at))
}

/// Replaces scans of views by the views' plans and merges the projections that leaves
/// (DataFusion's projection optimizer: consecutive projections merge, scans read only the
/// columns used), so each query becomes as few operators as its shape needs.
fn inline_views(catalog: &Catalog, p: LogicalPlan, at: Location) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::SubqueryAlias;
    use datafusion::optimizer::extract_equijoin_predicate::ExtractEquijoinPredicate;
    use datafusion::optimizer::optimize_projections::OptimizeProjections;
    use datafusion::optimizer::push_down_filter::PushDownFilter;
    use datafusion::optimizer::single_distinct_to_groupby::SingleDistinctToGroupBy;
    use datafusion::optimizer::{Optimizer, OptimizerContext};
    let inlined = p
        .transform_up(|node| match &node {
            LogicalPlan::TableScan(scan) => match catalog.views.get(scan.table_name.table()) {
                Some(v) if scan.projection.is_none() => {
                    let alias =
                        SubqueryAlias::try_new(Arc::new(v.plan.clone()), scan.table_name.clone())?;
                    Ok(Transformed::yes(LogicalPlan::SubqueryAlias(alias)))
                }
                _ => Ok(Transformed::no(node)),
            },
            _ => Ok(Transformed::no(node)),
        })
        .map_err(|e| SqlError::from_datafusion(e, at))?
        .data;
    // COUNT(DISTINCT x) becomes a GROUP BY over x first and a COUNT over that; filters move
    // into joins (their equalities become join keys, `FROM a, b WHERE a.x = b.y` an inner
    // join); then projections merge and scans read only the columns used.
    Optimizer::with_rules(vec![
        Arc::new(SingleDistinctToGroupBy::new()),
        Arc::new(PushDownFilter::new()),
        Arc::new(ExtractEquijoinPredicate::new()),
        Arc::new(OptimizeProjections::new()),
    ])
    .optimize(
        inlined,
        &OptimizerContext::new().with_skip_failing_rules(false),
        |_, _| {},
    )
    .map_err(|e| SqlError::from_datafusion(e, at))
}

/// The delay of `WATERMARK FOR c AS c` (0) or `… AS c - INTERVAL '<n>' <unit>`.
fn watermark_delay(w: &script::Watermark) -> Result<u64> {
    use datafusion::sql::sqlparser::ast::BinaryOperator;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let unsupported = || {
        SqlError::at(
            w.at,
            format!(
                "WATERMARK FOR {c} AS {}: Weir takes `{c}` or `{c} - INTERVAL '<n>' <unit>` (a bounded delay)",
                w.expr,
                c = w.column
            ),
        )
    };
    let e = Parser::new(&GenericDialect {})
        .try_with_sql(&w.expr)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::at(w.at, e.to_string()))?;
    let is_col = |e: &SqlExpr| matches!(e, SqlExpr::Identifier(id) if id.value.eq_ignore_ascii_case(&w.column));
    match &e {
        e if is_col(e) => Ok(0),
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } if is_col(left) => windows::interval_ms(right).ok_or_else(unsupported),
        _ => Err(unsupported()),
    }
}

/// A table or view name as DataFusion resolves it: unquoted parts lower-cased, the last part.
fn object_name(n: &ObjectName) -> String {
    match n.0.last().and_then(|p| p.as_ident()) {
        Some(id) if id.quote_style.is_some() => id.value.clone(),
        Some(id) => id.value.to_lowercase(),
        None => n.to_string().to_lowercase(),
    }
}

fn table_def(
    catalog: &Catalog,
    ct: &datafusion::sql::sqlparser::ast::CreateTable,
    at: Location,
    watermark: Option<script::Watermark>,
) -> Result<TableDef> {
    let name = object_name(&ct.name);
    if ct.query.is_some() {
        return Err(SqlError::at(
            at,
            "CREATE TABLE … AS SELECT is not supported: create the table, then INSERT INTO it",
        ));
    }
    let opts = ParserOptions::new().with_map_string_types_to_utf8view(false);
    let planner = SqlToRel::new_with_options(catalog, opts);
    let schema = planner
        .build_schema(ct.columns.clone())
        .map_err(|e| SqlError::from_datafusion(e, at))?;
    let schema = Arc::new(normalize_schema(&schema));
    let mut options = std::collections::BTreeMap::new();
    if let CreateTableOptions::With(list) = &ct.table_options {
        for o in list {
            let SqlOption::KeyValue { key, value } = o else {
                return Err(SqlError::at(
                    at,
                    format!("table {name}: WITH takes 'key' = 'value' pairs, not {o}"),
                ));
            };
            let v = match value {
                SqlExpr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                    Value::Number(n, _) => n.to_string(),
                    Value::Boolean(b) => b.to_string(),
                    other => other.to_string(),
                },
                other => other.to_string(),
            };
            options.insert(key.value.clone(), v);
        }
    } else if !matches!(ct.table_options, CreateTableOptions::None) {
        return Err(SqlError::at(
            at,
            format!("table {name}: give the connector's options as WITH ('key' = 'value', …)"),
        ));
    }
    let mut primary_key = Vec::new();
    for c in &ct.constraints {
        if let TableConstraint::PrimaryKey(pk) = c {
            for col in &pk.columns {
                primary_key.push(match &col.column.expr {
                    SqlExpr::Identifier(id) if id.quote_style.is_some() => id.value.clone(),
                    SqlExpr::Identifier(id) => id.value.to_lowercase(),
                    other => {
                        return Err(SqlError::at(
                            at,
                            format!("table {name}: PRIMARY KEY takes columns, not {other}"),
                        ))
                    }
                });
            }
        }
    }
    for col in &ct.columns {
        if col
            .options
            .iter()
            .any(|o| matches!(o.option, ColumnOption::PrimaryKey(_)))
        {
            primary_key.push(if col.name.quote_style.is_some() {
                col.name.value.clone()
            } else {
                col.name.value.to_lowercase()
            });
        }
    }
    for k in &primary_key {
        if schema.field_with_name(k).is_err() {
            return Err(SqlError::at(
                at,
                format!("table {name}: PRIMARY KEY column {k} is not a column of the table"),
            ));
        }
    }
    let watermark = match watermark {
        None => None,
        Some(w) => {
            let f = schema.field_with_name(&w.column).map_err(|_| {
                SqlError::at(
                    w.at,
                    format!("table {name}: WATERMARK FOR {}: no such column", w.column),
                )
            })?;
            if !matches!(
                f.data_type(),
                datafusion::arrow::datatypes::DataType::Timestamp(_, _)
            ) {
                return Err(SqlError::at(
                    w.at,
                    format!(
                        "table {name}: WATERMARK FOR {}: the column is {}, not TIMESTAMP(3)",
                        w.column,
                        f.data_type()
                    ),
                ));
            }
            Some((w.column.clone(), watermark_delay(&w)?))
        }
    };
    Ok(TableDef {
        name,
        schema,
        options,
        primary_key,
        watermark,
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_types::{OperatorKind, Partitioning};

    const BID: &str = "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT,
  date_time TIMESTAMP(3), extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events' = '1000');\n";

    fn kinds(job: &JobSpec) -> Vec<&'static str> {
        job.operators.iter().map(|o| o.kind.type_name()).collect()
    }

    #[test]
    fn projection_and_filter_chain_to_the_sink() {
        let sql = format!(
            "SET 'parallelism.default' = '3';\nSET 'execution.checkpointing.interval' = '2s';\n{BID}
CREATE TABLE out (a BIGINT, p DOUBLE) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT auction, 0.5 * price FROM bid WHERE auction % 2 = 0;"
        );
        let job = compile(&sql, "t").unwrap();
        assert_eq!(job.checkpoint.interval_ms, 2000);
        assert_eq!(
            kinds(&job),
            vec!["nexmark", "filter", "project", "blackhole_sink"]
        );
        assert!(job.operators.iter().all(|o| o.parallelism == 3));
        match &job.operators[0].kind {
            OperatorKind::Nexmark(n) => {
                assert_eq!(n.events, Some(1000));
                assert_eq!(
                    n.columns,
                    vec!["auction", "price"],
                    "only what the query uses"
                );
            }
            other => panic!("{other:?}"),
        }
        match &job.operators[1].kind {
            OperatorKind::Filter { predicate } => assert_eq!(predicate, "((auction % 2) = 0)"),
            other => panic!("{other:?}"),
        }
        match &job.operators[2].kind {
            OperatorKind::Project { exprs } => {
                let names: Vec<&str> = exprs.iter().map(|e| e.name.as_str()).collect();
                assert_eq!(names, vec!["a", "p"], "the sink's column names");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kafka_to_kafka_with_source_offsets_in_the_sink_transactions() {
        let sql = "SET 'execution.checkpointing.interval' = '1s';
CREATE TABLE a (id BIGINT, v BIGINT) WITH ('connector' = 'kafka', 'topic' = 'a',
  'properties.bootstrap.servers' = '127.0.0.1:9092', 'format' = 'json');
CREATE TABLE b (id BIGINT, v BIGINT) WITH ('connector' = 'kafka', 'topic' = 'b',
  'properties.bootstrap.servers' = '127.0.0.1:9092', 'format' = 'json',
  'sink.commit-source-offsets' = 'a-readers', 'sink.partitioner' = 'fixed');
INSERT INTO b SELECT id, v * 2 FROM a WHERE v > 0;";
        let job = compile(sql, "t").unwrap();
        assert_eq!(
            kinds(&job),
            vec!["kafka_source", "filter", "project", "kafka_sink"]
        );
        match &job.operators[3].kind {
            OperatorKind::KafkaSink(k) => {
                assert_eq!(k.commit_source_offsets.as_deref(), Some("a-readers"));
                assert_eq!(k.partitioner, weir_types::KafkaPartitioner::Fixed);
            }
            other => panic!("{other:?}"),
        }
        assert!(job
            .operators
            .iter()
            .skip(1)
            .all(|o| o.inputs[0].partition == Partitioning::Forward));
    }

    /// Flink's `<format>.ignore-parse-errors` turns into the source's `bad_records: skip`;
    /// without it malformed messages fail the job.
    #[test]
    fn kafka_tables_say_what_malformed_messages_do() {
        let source = |extra: &str| {
            let sql = format!(
                "CREATE TABLE a (id BIGINT) WITH ('connector' = 'kafka', 'topic' = 'a',
  'properties.bootstrap.servers' = '127.0.0.1:9092', 'format' = 'csv'{extra});
CREATE TABLE out (id BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT id FROM a;"
            );
            let job = compile(&sql, "t").unwrap();
            match &job.operators[0].kind {
                OperatorKind::KafkaSource(k) => k.bad_records,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(source(""), weir_types::BadRecords::Fail);
        assert_eq!(
            source(", 'csv.ignore-parse-errors' = 'true'"),
            weir_types::BadRecords::Skip
        );
        assert_eq!(
            source(", 'csv.ignore-parse-errors' = 'false'"),
            weir_types::BadRecords::Fail
        );
        let bad = "CREATE TABLE a (id BIGINT) WITH ('connector' = 'kafka', 'topic' = 'a',
  'properties.bootstrap.servers' = 'h:1', 'format' = 'json', 'json.ignore-parse-errors' = 'maybe');
CREATE TABLE out (id BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT id FROM a;";
        let e = compile(bad, "t").unwrap_err().to_string();
        assert!(e.contains("json.ignore-parse-errors"), "{e}");
    }

    #[test]
    fn views_inline_and_sources_are_shared() {
        let sql = format!(
            "{BID}
CREATE VIEW cheap AS SELECT auction, price FROM bid WHERE price < 1000;
CREATE TABLE a (auction BIGINT, price BIGINT) WITH ('connector' = 'blackhole');
CREATE TABLE b (auction BIGINT, price BIGINT) WITH ('connector' = 'print');
INSERT INTO a SELECT * FROM cheap;
INSERT INTO b SELECT auction, price FROM bid;"
        );
        let job = compile(&sql, "t").unwrap();
        let sources = job.operators.iter().filter(|o| o.kind.is_source()).count();
        assert_eq!(sources, 1, "{:#?}", job.operators);
        assert_eq!(job.operators.iter().filter(|o| o.kind.is_sink()).count(), 2);
    }

    /// The same windowed aggregate written twice (as q5 does) is computed once; the same
    /// query over other windows is not taken for it.
    #[test]
    fn identical_sub_plans_are_computed_once() {
        let count = |hop: &str| {
            format!(
                "SELECT auction, COUNT(*) AS num, window_start FROM TABLE(HOP(TABLE bid, DESCRIPTOR(date_time), {hop}, INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end"
            )
        };
        let script = |second_slide: &str| {
            format!(
                "{BID}
CREATE TABLE a (auction BIGINT, num BIGINT, s TIMESTAMP(3)) WITH ('connector' = 'blackhole');
CREATE TABLE b (auction BIGINT, num BIGINT, s TIMESTAMP(3)) WITH ('connector' = 'blackhole');
INSERT INTO a {};
INSERT INTO b {};",
                count("INTERVAL '2' SECOND"),
                count(second_slide)
            )
        };
        let windows = |job: &JobSpec| {
            job.operators
                .iter()
                .filter(|o| matches!(o.kind, OperatorKind::WindowAggregate(_)))
                .count()
        };
        let same = compile(&script("INTERVAL '2' SECOND"), "t").unwrap();
        assert_eq!(windows(&same), 1, "{:#?}", same.operators);
        assert_eq!(
            same.operators.iter().filter(|o| o.kind.is_sink()).count(),
            2
        );
        let other = compile(&script("INTERVAL '5' SECOND"), "t").unwrap();
        assert_eq!(windows(&other), 2, "{:#?}", other.operators);
    }

    #[test]
    fn group_by_is_an_updating_result_for_upsert_sinks_only() {
        let base = format!(
            "{BID}
CREATE TABLE counts (auction BIGINT, n BIGINT, top BIGINT, PRIMARY KEY (auction) NOT ENFORCED)
  WITH ('connector' = 'jdbc', 'url' = 'postgresql://localhost/db');
CREATE TABLE files (auction BIGINT, n BIGINT, top BIGINT)
  WITH ('connector' = 'filesystem', 'path' = '/tmp/x', 'format' = 'csv');\n"
        );
        let q = "SELECT auction, COUNT(*) AS n, MAX(price) AS top FROM bid GROUP BY auction";
        let job = compile(&format!("{base}INSERT INTO counts {q};"), "t").unwrap();
        assert_eq!(
            kinds(&job),
            vec![
                "nexmark",
                "keyed_aggregate",
                "project",
                "project",
                "postgres_sink"
            ]
        );
        assert_eq!(
            job.operators[1].inputs[0].partition,
            Partitioning::Hash(vec!["auction".into()])
        );
        match &job.operators[4].kind {
            OperatorKind::PostgresSink(p) => {
                assert_eq!(p.key, vec!["auction".to_string()]);
                assert_eq!(p.mode, weir_types::PostgresSinkMode::Upsert);
            }
            other => panic!("{other:?}"),
        }
        let e = compile(&format!("{base}INSERT INTO files {q};"), "t").unwrap_err();
        assert!(e.to_string().contains("updating result"), "{e}");
        assert!(e.to_string().contains("only takes appends"), "{e}");
    }

    #[test]
    fn avg_is_a_sum_and_a_count_and_their_quotient() {
        let sql = format!(
            "{BID}CREATE TABLE o (auction BIGINT, a DOUBLE) WITH ('connector' = 'print');
INSERT INTO o SELECT auction, AVG(price) AS a FROM bid GROUP BY auction;"
        );
        let job = compile(&sql, "t").unwrap();
        let OperatorKind::KeyedAggregate { aggregates, .. } = &job.operators[1].kind else {
            panic!("{:#?}", job.operators)
        };
        let fns: Vec<_> = aggregates
            .iter()
            .map(|a| (a.func, a.column.clone()))
            .collect();
        assert_eq!(
            fns,
            vec![
                (weir_types::AggFn::Sum, Some("price".to_string())),
                (weir_types::AggFn::Count, Some("price".to_string()))
            ]
        );
        let OperatorKind::Project { exprs } = &job.operators[2].kind else {
            panic!()
        };
        assert!(exprs[1].expr.contains("CASE WHEN"), "{}", exprs[1].expr);
    }

    #[test]
    fn group_by_an_expression_computes_it_first() {
        let sql = format!(
            "{BID}CREATE TABLE o (bucket BIGINT, n BIGINT) WITH ('connector' = 'print');
INSERT INTO o SELECT auction % 10 AS bucket, COUNT(*) AS n FROM bid GROUP BY auction % 10;"
        );
        let job = compile(&sql, "t").unwrap();
        assert_eq!(
            kinds(&job),
            vec![
                "nexmark",
                "project",
                "keyed_aggregate",
                "project",
                "project",
                "stdout_sink"
            ],
            "{:#?}",
            job.operators
        );
    }

    /// COUNT(DISTINCT x) is a GROUP BY over x (no state: a repeated row is an upsert that
    /// changes nothing) and a count over that updating result.
    #[test]
    fn count_distinct_counts_the_groups_of_a_group_by() {
        let sql = format!(
            "{BID}CREATE TABLE o (auction BIGINT, bidders BIGINT, PRIMARY KEY (auction) NOT ENFORCED) WITH ('connector' = 'print');
INSERT INTO o SELECT auction, COUNT(DISTINCT bidder) AS bidders FROM bid GROUP BY auction;"
        );
        let job = compile(&sql, "t").unwrap();
        let k = kinds(&job);
        assert!(k.contains(&"updating_aggregate"), "{k:?}");
        assert!(!k.contains(&"keyed_aggregate"), "{k:?}");
    }

    fn err(sql: &str) -> String {
        compile(sql, "t").unwrap_err().to_string()
    }

    #[test]
    fn over_windows_outside_what_runs_are_refused_by_name() {
        let sink = "CREATE TABLE out (a BIGINT, b DOUBLE) WITH ('connector' = 'blackhole');\n";
        let over = |frame: &str, order: &str| {
            err(&format!(
                "{BID}{sink}INSERT INTO out SELECT auction, AVG(price) OVER (PARTITION BY auction ORDER BY {order} {frame}) FROM bid;"
            ))
        };
        let e = over(
            "RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW",
            "date_time",
        );
        assert!(
            e.contains("the frame") && e.contains("ROWS BETWEEN n PRECEDING"),
            "{e}"
        );
        let e = over("ROWS BETWEEN 3 PRECEDING AND CURRENT ROW", "price");
        assert!(e.contains("ORDER BY one event-time column"), "{e}");
        let e = err(&format!(
            "{BID}{sink}INSERT INTO out SELECT auction, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY date_time) FROM bid;"
        ));
        assert!(e.contains("the window function ROW_NUMBER()"), "{e}");
        let e = err(&format!(
            "{BID}{sink}CREATE VIEW m AS SELECT auction, MAX(price) AS top, MAX(date_time) AS t FROM bid GROUP BY auction;
INSERT INTO out SELECT auction, AVG(top) OVER (PARTITION BY auction ORDER BY t ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) FROM m;"
        ));
        assert!(e.contains("an OVER window over an updating result"), "{e}");
        // What runs: ROWS frames over an event-time column.
        let job = compile(
            &format!("{BID}{sink}INSERT INTO out SELECT auction, AVG(price) OVER (PARTITION BY auction ORDER BY date_time ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) FROM bid;"),
            "t",
        )
        .unwrap();
        assert!(kinds(&job).contains(&"over_aggregate"), "{:?}", kinds(&job));
    }

    #[test]
    fn watermark_alignment_options_reach_the_source_or_say_what_is_wrong() {
        let table = |name: &str, options: &str, watermark: bool| {
            format!(
                "CREATE TABLE {name} (auction BIGINT, date_time TIMESTAMP(3){}) WITH ('connector' = 'nexmark', 'table' = 'bid'{options});\n",
                if watermark {
                    ", WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND"
                } else {
                    ""
                }
            )
        };
        let aligned = ", 'scan.watermark.alignment.group' = 'g1', 'scan.watermark.alignment.max-drift' = '5 s'";
        let sink =
            "CREATE TABLE out (a BIGINT, t TIMESTAMP(3)) WITH ('connector' = 'blackhole');\n";
        let job = compile(
            &format!(
                "{}{}{sink}INSERT INTO out SELECT auction, date_time FROM b1;\nINSERT INTO out SELECT auction, date_time FROM b2;",
                table("b1", aligned, true),
                table("b2", "", true)
            ),
            "t",
        )
        .unwrap();
        let alignments: Vec<Option<&weir_types::WatermarkAlignment>> = job
            .operators
            .iter()
            .filter_map(|o| o.watermark.as_ref())
            .map(|w| w.alignment.as_ref())
            .collect();
        assert_eq!(
            alignments,
            vec![
                Some(&weir_types::WatermarkAlignment {
                    group: "g1".into(),
                    max_drift_ms: 5000
                }),
                None
            ]
        );
        let e = err(&format!(
            "{}{sink}INSERT INTO out SELECT auction, date_time FROM b1;",
            table("b1", ", 'scan.watermark.alignment.group' = 'g1'", true)
        ));
        assert!(
            e.contains("option 'scan.watermark.alignment.group' needs 'scan.watermark.alignment.max-drift'"),
            "{e}"
        );
        let e = err(&format!(
            "{}{sink}INSERT INTO out SELECT auction, date_time FROM b1;",
            table("b1", ", 'scan.watermark.alignment.max-drift' = 'soon', 'scan.watermark.alignment.group' = 'g'", true)
        ));
        assert!(e.contains("'soon' is not a duration"), "{e}");
        let e = err(&format!(
            "{}{sink}INSERT INTO out SELECT auction, date_time FROM b1;",
            table("b1", aligned, false)
        ));
        assert!(
            e.contains("table b1: watermark alignment needs a WATERMARK FOR clause"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_place_and_the_problem() {
        let sink = "CREATE TABLE out (a BIGINT) WITH ('connector' = 'blackhole');\n";
        // Unknown column: DataFusion's span points at it.
        let e = err(&format!(
            "{BID}{sink}INSERT INTO out\nSELECT nope FROM bid;"
        ));
        assert!(e.starts_with("line 7, column 8: "), "{e}");
        assert!(e.contains("nope"), "{e}");
        // Unknown table.
        let e = err(&format!("{sink}INSERT INTO out SELECT a FROM missing;"));
        assert!(e.contains("missing"), "{e}");
        assert!(e.starts_with("line 2, "), "{e}");
        // Type error.
        let e = err(&format!(
            "{BID}{sink}INSERT INTO out SELECT auction FROM bid WHERE extra > 1 + 'x';"
        ));
        assert_eq!(
            e,
            "line 6, column 1: Cannot coerce arithmetic expression Int64 + Utf8 to valid types"
        );
        // Unsupported constructs say so.
        let e = err(&format!("{BID}{sink}INSERT INTO out SELECT b1.auction FROM bid b1 LEFT JOIN bid b2 ON b1.auction = b2.bidder;"));
        assert!(
            e.contains("a Left join (inner joins are) is not supported in streaming SQL yet"),
            "{e}"
        );
        let e = err(&format!(
            "{BID}{sink}INSERT INTO out SELECT b1.auction FROM bid b1, bid b2 WHERE b1.price < b2.price;"
        ));
        assert!(e.contains("(a cross join) is not supported"), "{e}");
        let e = err(&format!("{BID}{sink}INSERT INTO out SELECT b1.auction FROM bid b1 JOIN bid b2 ON b1.auction + 1 = b2.bidder;"));
        assert!(e.contains("join keys must be columns"), "{e}");
        let e = err(&format!(
            "{BID}{sink}INSERT INTO out SELECT COUNT(*) FROM TABLE(SESSION(TABLE bid, DESCRIPTOR(date_time), INTERVAL '1' SECOND)) GROUP BY auction, window_start, window_end;"
        ));
        assert!(e.contains("SESSION windows need PARTITION BY"), "{e}");
        let e = err(&format!(
            "{BID}{sink}INSERT INTO out SELECT COUNT(*) FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(date_time), INTERVAL '1' SECOND)) GROUP BY auction, window_start, window_end;"
        ));
        assert!(
            e.contains("PARTITION BY (bidder) must be the GROUP BY's key columns (auction)"),
            "{e}"
        );
        let counts = "(SELECT auction, COUNT(*) AS c FROM bid GROUP BY auction) AS q";
        let e = err(&format!(
            "{BID}{sink}INSERT INTO out SELECT MAX(c) FROM {counts} GROUP BY auction;"
        ));
        assert!(e.contains("MAX over an updating result"), "{e}");
        let e = err(&format!(
            "{BID}{sink}INSERT INTO out SELECT COUNT(*) FROM {counts} GROUP BY c;"
        ));
        assert!(e.contains("grouping an updating result by c"), "{e}");
        let e = err(&format!(
            "{BID}{sink}INSERT INTO out SELECT auction FROM bid ORDER BY price;"
        ));
        assert!(e.contains("ORDER BY is not supported"), "{e}");
        let e = err(&format!("{BID}{sink}SELECT auction FROM bid;"));
        assert!(e.contains("bare SELECT"), "{e}");
        let e = err(&format!(
            "{BID}{sink}INSERT INTO out SELECT COUNT(DISTINCT bidder) + COUNT(DISTINCT price) FROM bid GROUP BY auction;"
        ));
        assert!(
            e.contains("COUNT(DISTINCT …) in this combination is not supported"),
            "{e}"
        );
        // Options and settings.
        let e =
            err("CREATE TABLE t (a BIGINT) WITH ('connector' = 'blackhole', 'colour' = 'red');\nCREATE TABLE s (auction BIGINT) WITH ('connector' = 'nexmark', 'table' = 'bid');\nINSERT INTO t SELECT auction FROM s;");
        assert!(
            e.contains("unknown option 'colour' for the blackhole connector"),
            "{e}"
        );
        let e = err("CREATE TABLE t (a BIGINT) WITH ('connector' = 'nosuch');\nINSERT INTO t SELECT a FROM t;");
        assert!(e.contains("unknown connector 'nosuch'"), "{e}");
        let e = err("SET 'parallelism.defualt' = '2';");
        assert!(
            e.starts_with("line 1, column 1: unknown setting 'parallelism.defualt'"),
            "{e}"
        );
        let e = err(sink);
        assert!(e.contains("no INSERT INTO"), "{e}");
        let e = err("CREATE TABLE bid (auction INT) WITH ('connector' = 'nexmark');\nCREATE TABLE out (a INT) WITH ('connector' = 'blackhole');\nINSERT INTO out SELECT auction FROM bid;");
        assert!(
            e.contains("column auction is declared Int32, the nexmark bid table has it as BIGINT"),
            "{e}"
        );
    }
}
