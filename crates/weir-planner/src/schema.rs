//! Schemas and semantic checks of a whole job: the Arrow schema every operator produces, and
//! every column name, expression and type checked against it. The job manager calls
//! [`validate`] at submit time, so a job with an unknown column or a bad expression is refused
//! before it runs.

use crate::error::{PlanError, Result};
use crate::expr;
use crate::keys::is_key_type;
use crate::types::{agg_type, column, parse_type, plan_err};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;
use weir_types::{ExecutionPlan, JobSpec, OperatorKind, Partitioning};

/// The generator's schema: `id`, `key`, `value`, `ts` (epoch milliseconds).
pub fn generator_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("key", DataType::Int64, false),
        Field::new("value", DataType::Int64, false),
        Field::new("ts", DataType::Int64, false),
    ]))
}

/// Output schema of each operator (sinks produce the schema they consume).
pub fn schemas(spec: &JobSpec) -> Result<Vec<SchemaRef>> {
    let mut out: Vec<SchemaRef> = Vec::with_capacity(spec.operators.len());
    for op in &spec.operators {
        let mut inputs = Vec::new();
        for input in &op.inputs {
            let i = spec
                .operator_index(&input.from)
                .ok_or_else(|| PlanError::Invalid(format!("unknown operator {:?}", input.from)))?;
            let s = out
                .get(i)
                .cloned()
                .ok_or_else(|| PlanError::Invalid("operators must follow their inputs".into()))?;
            if let Partitioning::Hash(keys) = &input.partition {
                for k in keys {
                    let f = column(&s, &op.id, k)?;
                    if !is_key_type(f.data_type()) {
                        return plan_err(
                            &op.id,
                            format!("cannot partition by {k:?} of type {}", f.data_type()),
                        );
                    }
                }
            }
            inputs.push(s);
        }
        let is_join = matches!(op.kind, OperatorKind::Join(_));
        if let Some(first) = inputs.first().filter(|_| !is_join) {
            for other in &inputs[1..] {
                if !same_columns(first, other) {
                    return plan_err(
                        &op.id,
                        format!(
                            "its inputs have different schemas: {:?} vs {:?}",
                            field_list(first),
                            field_list(other)
                        ),
                    );
                }
            }
        }
        let input = inputs.first().cloned();
        let schema = match &op.kind {
            OperatorKind::Generator(_) => generator_schema(),
            OperatorKind::Nexmark(n) => crate::nexmark::schema(n)?,
            OperatorKind::FileSource(f) => {
                if f.format == weir_types::FileFormat::Lines {
                    Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, false)]))
                } else {
                    if f.schema.is_empty() {
                        return plan_err(
                            &op.id,
                            "a csv, jsonl or parquet file source needs a \"schema\"".into(),
                        );
                    }
                    let fields = f
                        .schema
                        .iter()
                        .map(|(n, t)| Ok(Field::new(n, parse_type(t)?, true)))
                        .collect::<Result<Vec<_>>>()?;
                    Arc::new(Schema::new(fields))
                }
            }
            OperatorKind::KafkaSource(k) => crate::kafka::source_schema(k)?,
            OperatorKind::Filter { predicate } => {
                let input =
                    input.ok_or_else(|| PlanError::Internal("filter without input".into()))?;
                let e = expr::compile(predicate, &input)
                    .or_else(|e| plan_err(&op.id, e.to_string()))?;
                if e.data_type != DataType::Boolean {
                    return plan_err(
                        &op.id,
                        format!("predicate {predicate:?} is {}, not boolean", e.data_type),
                    );
                }
                input
            }
            OperatorKind::Project { exprs } => {
                let input =
                    input.ok_or_else(|| PlanError::Internal("project without input".into()))?;
                if exprs.is_empty() {
                    return plan_err(&op.id, "a projection needs at least one expression".into());
                }
                let mut fields = Vec::new();
                for p in exprs {
                    let e = expr::compile(&p.expr, &input)
                        .or_else(|e| plan_err(&op.id, e.to_string()))?;
                    if fields.iter().any(|f: &Field| f.name() == &p.name) {
                        return plan_err(&op.id, format!("column {:?} is defined twice", p.name));
                    }
                    fields.push(Field::new(&p.name, e.data_type, e.nullable));
                }
                Arc::new(Schema::new(fields))
            }
            OperatorKind::WindowAggregate(w) => {
                let input =
                    input.ok_or_else(|| PlanError::Internal("window without input".into()))?;
                crate::window::schema(w, &input, &op.id)?
            }
            OperatorKind::Join(j) => match inputs.as_slice() {
                [left, right] => crate::join::schema(j, left, right, &op.id)?,
                _ => return plan_err(&op.id, "a join needs two inputs".into()),
            },
            OperatorKind::KeyedAggregate {
                keys, aggregates, ..
            }
            | OperatorKind::UpdatingAggregate {
                keys, aggregates, ..
            }
            | OperatorKind::OverAggregate(weir_types::OverSpec {
                keys, aggregates, ..
            }) => {
                let input =
                    input.ok_or_else(|| PlanError::Internal("aggregate without input".into()))?;
                if let OperatorKind::OverAggregate(o) = &op.kind {
                    let t = column(&input, &op.id, &o.time)?.data_type();
                    if !matches!(t, DataType::Timestamp(..) | DataType::Int64) {
                        return plan_err(
                            &op.id,
                            format!("ORDER BY column {:?} is {t}, not a timestamp", o.time),
                        );
                    }
                }
                for k in keys {
                    let f = column(&input, &op.id, k)?;
                    if !is_key_type(f.data_type()) {
                        return plan_err(
                            &op.id,
                            format!("cannot key by {k:?} of type {}", f.data_type()),
                        );
                    }
                }
                let mut fields: Vec<Field> =
                    input.fields().iter().map(|f| f.as_ref().clone()).collect();
                for a in aggregates {
                    let t = agg_type(&input, &op.id, a.func, a.column.as_deref())?;
                    if fields.iter().any(|f| f.name() == &a.name) {
                        return plan_err(
                            &op.id,
                            format!("output column {:?} already exists", a.name),
                        );
                    }
                    // SUM, MIN and MAX over no values are NULL.
                    fields.push(Field::new(&a.name, t, a.func != weir_types::AggFn::Count));
                }
                Arc::new(Schema::new(fields))
            }
            OperatorKind::Union
            | OperatorKind::StdoutSink(_)
            | OperatorKind::BlackholeSink
            | OperatorKind::FileSink(_) => {
                input.ok_or_else(|| PlanError::Internal("operator without input".into()))?
            }
            OperatorKind::KafkaSink(k) => {
                let input =
                    input.ok_or_else(|| PlanError::Internal("sink without input".into()))?;
                crate::kafka::sink_key(k, &input, &op.id)?;
                input
            }
            OperatorKind::PostgresSink(p) => {
                let input =
                    input.ok_or_else(|| PlanError::Internal("sink without input".into()))?;
                crate::postgres::build_sql(p, &input, &op.id)?;
                input
            }
        };
        out.push(schema);
    }
    Ok(out)
}

fn same_columns(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

fn field_list(s: &Schema) -> Vec<String> {
    s.fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect()
}

/// The cargo feature an operator type needs, for the types that need one.
pub fn feature_of(type_name: &str) -> Option<&'static str> {
    match type_name {
        "kafka_source" | "kafka_sink" => Some("kafka"),
        "postgres_sink" => Some("postgres"),
        _ => None,
    }
}

/// The error for a part of a job that needs a cargo feature this build lacks.
pub fn not_built(what: &str, feature: &str) -> PlanError {
    PlanError::Invalid(format!(
        "{what} is not in this build of weir (cargo feature `{feature}`)"
    ))
}

/// A Kafka sink committing its source's offsets (`commit_source_offsets`) needs that source
/// at the head of its own task: the offsets reach it as the task snapshots, not over the
/// network.
fn check_source_offset_commits(spec: &JobSpec, plan: &ExecutionPlan) -> Result<()> {
    for (index, op) in spec.operators.iter().enumerate() {
        let OperatorKind::KafkaSink(k) = &op.kind else {
            continue;
        };
        let Some(group) = &k.commit_source_offsets else {
            continue;
        };
        if k.guarantee != weir_types::KafkaSinkGuarantee::ExactlyOnce {
            return plan_err(
                &op.id,
                "commit_source_offsets needs the exactly_once guarantee (the offsets go into the sink's transactions)".into(),
            );
        }
        let head = plan
            .vertices
            .iter()
            .find(|v| v.operators.contains(&index))
            .and_then(|v| v.operators.first())
            .map(|h| &spec.operators[*h]);
        match head.map(|h| (h, &h.kind)) {
            Some((h, OperatorKind::KafkaSource(src))) => {
                if src.group_id.as_deref() == Some(group.as_str()) {
                    return plan_err(
                        &op.id,
                        format!(
                            "consumer group {group:?} is also kafka_source {:?}'s group_id, which commits after each checkpoint outside any transaction; drop the source's group_id",
                            h.id
                        ),
                    );
                }
            }
            _ => {
                return plan_err(
                    &op.id,
                    "commit_source_offsets needs a kafka_source in the same task: connect them by forward edges only, at one parallelism (no hash, rebalance or broadcast in between)".into(),
                )
            }
        }
    }
    Ok(())
}

/// Everything checkable before running: structure (weir-types) and schemas (here).
pub fn validate(spec: &JobSpec) -> Result<()> {
    spec.validate()
        .map_err(|e| PlanError::Invalid(e.to_string()))?;
    let plan = ExecutionPlan::new(spec).map_err(|e| PlanError::Invalid(e.to_string()))?;
    check_source_offset_commits(spec, &plan)?;
    if spec.state_backend == weir_types::StateBackend::Rocksdb && !cfg!(feature = "rocksdb") {
        return Err(not_built("state_backend \"rocksdb\"", "rocksdb"));
    }
    for op in &spec.operators {
        if matches!(op.kind, OperatorKind::PostgresSink(_)) && !cfg!(feature = "postgres") {
            return Err(not_built(
                &format!("operator {:?}: postgres_sink", op.id),
                "postgres",
            ));
        }
        let parquet = match &op.kind {
            OperatorKind::FileSink(f) => f.format == weir_types::FileFormat::Parquet,
            OperatorKind::FileSource(f) => f.format == weir_types::FileFormat::Parquet,
            _ => false,
        };
        if parquet && !cfg!(feature = "parquet") {
            return Err(not_built(
                &format!("operator {:?}: the parquet format", op.id),
                "parquet",
            ));
        }
        if matches!(
            op.kind,
            OperatorKind::KafkaSource(_) | OperatorKind::KafkaSink(_)
        ) && !cfg!(feature = "kafka")
        {
            return Err(not_built(
                &format!("operator {:?}: {}", op.id, op.kind.type_name()),
                "kafka",
            ));
        }
    }
    if spec.guarantee == weir_types::DeliveryGuarantee::AtMostOnce {
        if let Some(op) = spec
            .operators
            .iter()
            .find(|o| o.kind.is_source() && !o.kind.leases_positions())
        {
            return Err(PlanError::Invalid(format!(
                "operator {:?}: {} cannot give at_most_once (it has no position leases: after a failure it would resume from its last checkpoint and emit again what it emitted since); use at_least_once or exactly_once",
                op.id,
                op.kind.type_name()
            )));
        }
    }
    schemas(spec)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(ops: &str) -> JobSpec {
        JobSpec::from_json(&format!(r#"{{"name":"t","operators":[{ops}]}}"#)).unwrap()
    }

    #[test]
    fn schemas_flow_through_the_graph() {
        let s = job(r#"{"id":"g","type":"generator"},
            {"id":"p","type":"project","inputs":[{"from":"g"}],"exprs":[{"expr":"key","as":"k"},{"expr":"value * 2","as":"v2"}]},
            {"id":"a","type":"keyed_aggregate","inputs":[{"from":"p","partition":{"hash":["k"]}}],"keys":["k"],
             "aggregates":[{"fn":"count","as":"n"},{"fn":"sum","column":"v2","as":"total"}]},
            {"id":"o","type":"blackhole_sink","inputs":[{"from":"a"}]}"#);
        let schemas = schemas(&s).unwrap();
        let names: Vec<_> = schemas[2]
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, vec!["k", "v2", "n", "total"]);
    }

    #[test]
    fn unknown_columns_and_bad_predicates_are_named() {
        let s = job(r#"{"id":"g","type":"generator"},
            {"id":"f","type":"filter","inputs":[{"from":"g"}],"predicate":"colour = 'red'"},
            {"id":"o","type":"blackhole_sink","inputs":[{"from":"f"}]}"#);
        let err = validate(&s).unwrap_err().to_string();
        assert!(err.contains("\"f\"") && err.contains("colour"), "{err}");
        let s = job(r#"{"id":"g","type":"generator"},
            {"id":"f","type":"filter","inputs":[{"from":"g"}],"predicate":"key + 1"},
            {"id":"o","type":"blackhole_sink","inputs":[{"from":"f"}]}"#);
        assert!(validate(&s)
            .unwrap_err()
            .to_string()
            .contains("not boolean"));
        let s = job(r#"{"id":"g","type":"generator"},
            {"id":"a","type":"keyed_aggregate","inputs":[{"from":"g","partition":{"hash":["nokey"]}}],"keys":["nokey"],
             "aggregates":[{"fn":"count","as":"n"}]},
            {"id":"o","type":"blackhole_sink","inputs":[{"from":"a"}]}"#);
        assert!(validate(&s)
            .unwrap_err()
            .to_string()
            .contains("unknown column \"nokey\""));
    }

    #[test]
    fn source_offsets_in_sink_transactions_need_a_chained_source() {
        let with = |source_group: &str, edge: &str, guarantee: &str| {
            JobSpec::from_json(&format!(
                r#"{{"name":"t","checkpoint":{{"interval_ms":1000}},"operators":[
                   {{"id":"k","type":"kafka_source","parallelism":2,"bootstrap_servers":"127.0.0.1:1","topic":"a",
                    "format":"json","schema":[["id","int64"]]{source_group}}},
                   {{"id":"o","type":"kafka_sink","parallelism":2,"inputs":[{{"from":"k"{edge}}}],
                    "bootstrap_servers":"127.0.0.1:1","topic":"b","guarantee":"{guarantee}",
                    "commit_source_offsets":"g"}}]}}"#
            ))
            .unwrap()
        };
        let shuffled = with("", r#","partition":{"hash":["id"]}"#, "exactly_once");
        let err = validate(&shuffled).unwrap_err().to_string();
        assert!(err.contains("same task") && err.contains("\"o\""), "{err}");
        let twice = with(r#","group_id":"g""#, "", "exactly_once");
        let err = validate(&twice).unwrap_err().to_string();
        assert!(err.contains("also kafka_source \"k\"'s group_id"), "{err}");
        let loose = with("", "", "at_least_once");
        let err = validate(&loose).unwrap_err().to_string();
        assert!(err.contains("needs the exactly_once guarantee"), "{err}");
        #[cfg(feature = "kafka")]
        validate(&with("", "", "exactly_once")).unwrap();
    }
}
