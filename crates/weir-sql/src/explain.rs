//! `weir explain`: a job graph as text, task by task (operators chained into one task run in
//! one thread per subtask), with parallelism and how records move between tasks.

use std::fmt::Write;
use weir_types::{AggSpec, ExecutionPlan, JobSpec, OperatorKind, Partitioning};

fn describe(kind: &OperatorKind) -> String {
    match kind {
        OperatorKind::Nexmark(n) => format!(
            "nexmark {} [{}]",
            n.table.name(),
            if n.columns.is_empty() {
                "all columns".to_string()
            } else {
                n.columns.join(", ")
            }
        ),
        OperatorKind::Generator(g) => format!("generator ({} keys)", g.keys),
        OperatorKind::FileSource(f) => format!("file_source {} ({:?})", f.path, f.format),
        OperatorKind::KafkaSource(k) => format!("kafka_source topic {} ({:?})", k.topic, k.format),
        OperatorKind::Filter { predicate } => format!("filter {predicate}"),
        OperatorKind::Project { exprs } => format!(
            "project {}",
            exprs
                .iter()
                .map(|e| if e.expr == e.name {
                    e.name.clone()
                } else {
                    format!("{} AS {}", e.expr, e.name)
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        OperatorKind::KeyedAggregate {
            keys, aggregates, ..
        } => format!(
            "keyed_aggregate by {}: {}",
            keys.join(", "),
            aggregates_text(aggregates)
        ),
        OperatorKind::UpdatingAggregate {
            keys,
            upsert_keys,
            aggregates,
            ..
        } => format!(
            "updating_aggregate by {} over updates of ({}): {}",
            keys.join(", "),
            upsert_keys.join(", "),
            aggregates_text(aggregates)
        ),
        OperatorKind::OverAggregate(o) => format!(
            "over_aggregate by {}, in {} order, {} preceding rows and the current one{}: {}",
            o.keys.join(", "),
            o.time,
            o.preceding.map_or("all".to_string(), |n| n.to_string()),
            if o.slack_ms > 0 {
                format!(" (rows wait {} ms past their time)", o.slack_ms)
            } else {
                String::new()
            },
            aggregates_text(&o.aggregates)
        ),
        OperatorKind::WindowAggregate(w) if w.gap_ms > 0 => format!(
            "session windows by {}, over {}: gap {} ms{}: {}",
            w.keys.join(", "),
            w.time,
            w.gap_ms,
            if w.allowed_lateness_ms > 0 {
                format!(" (allowed lateness {} ms)", w.allowed_lateness_ms)
            } else {
                String::new()
            },
            aggregates_text(&w.aggregates)
        ),
        OperatorKind::WindowAggregate(w) => format!(
            "window_aggregate by {}, window over {}: {} ms windows every {} ms{}: {}",
            w.keys.join(", "),
            w.time,
            w.size_ms,
            w.slide(),
            if w.allowed_lateness_ms > 0 {
                format!(" (allowed lateness {} ms)", w.allowed_lateness_ms)
            } else {
                String::new()
            },
            aggregates_text(&w.aggregates)
        ),
        OperatorKind::Join(j) => {
            let on: Vec<String> = j
                .left_keys
                .iter()
                .zip(&j.right_keys)
                .map(|(l, r)| format!("{l} = {r}"))
                .collect();
            let bounded = |b: &[weir_types::ExpireBound]| {
                if b.is_empty() {
                    "kept".to_string()
                } else {
                    let e: Vec<String> = b
                        .iter()
                        .map(|b| match b.offset_ms {
                            0 => b.expr.clone(),
                            o => format!(
                                "{} {} {} ms",
                                b.expr,
                                if o < 0 { "-" } else { "+" },
                                o.abs()
                            ),
                        })
                        .collect();
                    format!("until the watermark passes {}", e.join(" or "))
                }
            };
            format!(
                "join on {}{}; left rows {}, right rows {}",
                on.join(" AND "),
                j.filter
                    .as_deref()
                    .map(|f| format!(" where {f}"))
                    .unwrap_or_default(),
                bounded(&j.left_expire),
                bounded(&j.right_expire)
            )
        }
        OperatorKind::Union => "union".into(),
        OperatorKind::StdoutSink(_) => "print".into(),
        OperatorKind::BlackholeSink => "blackhole".into(),
        OperatorKind::FileSink(f) => format!("file_sink {} ({:?})", f.path, f.format),
        OperatorKind::PostgresSink(p) => format!("postgres_sink {} ({:?})", p.table, p.mode),
        OperatorKind::KafkaSink(k) => format!("kafka_sink topic {} ({:?})", k.topic, k.guarantee),
    }
}

/// `count(*) AS n, sum(price) AS total`
fn aggregates_text(aggregates: &[AggSpec]) -> String {
    aggregates
        .iter()
        .map(|a| {
            format!(
                "{}({}) AS {}",
                format!("{:?}", a.func).to_lowercase(),
                a.column.as_deref().unwrap_or("*"),
                a.name
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn partitioning(p: &Partitioning) -> String {
    match p {
        Partitioning::Forward => "forward".into(),
        Partitioning::Rebalance => "rebalance".into(),
        Partitioning::Broadcast => "broadcast".into(),
        Partitioning::Hash(k) => format!("hash({})", k.join(", ")),
    }
}

/// The job's dataflow: tasks (chains of operators) with parallelism, and the edges between
/// them with their partitioning.
pub fn explain(job: &JobSpec) -> Result<String, weir_types::TypesError> {
    let plan = ExecutionPlan::new(job)?;
    let mut out = String::new();
    let checkpoints = if job.checkpoint.interval_ms == 0 {
        "checkpoints off".to_string()
    } else {
        format!("checkpoint every {} ms", job.checkpoint.interval_ms)
    };
    let _ = writeln!(
        out,
        "job {:?}: {}, {checkpoints}, {} slots",
        job.name,
        job.guarantee.name(),
        job.slots_needed()
    );
    for v in &plan.vertices {
        let _ = writeln!(out, "task {} (parallelism {}):", v.id, v.parallelism);
        for (i, op) in v.operators.iter().enumerate() {
            let o = &job.operators[*op];
            let _ = writeln!(
                out,
                "  {}{}: {}",
                if i == 0 { "" } else { "-> " },
                o.id,
                describe(&o.kind)
            );
        }
        for e in plan.edges.iter().filter(|e| e.from_vertex == v.id) {
            let _ = writeln!(
                out,
                "  => task {} by {}",
                e.to_vertex,
                partitioning(&e.partitioning)
            );
        }
    }
    Ok(out)
}
