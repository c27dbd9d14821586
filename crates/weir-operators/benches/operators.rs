//! Micro-benchmarks of the hot paths: generating events, hashing keys to key groups, and the
//! keyed running count. Run with `cargo bench -p weir-runtime`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::sync::Arc;
use weir_planner::schemas;
use weir_runtime::hashing::hash_columns;
use weir_runtime::operator::{OperatorContext, SourcePoll};
use weir_runtime::registry::Registry;
use weir_types::JobSpec;

const ROWS: usize = 8192;

fn spec() -> JobSpec {
    JobSpec::from_json(
        r#"{"name":"b","operators":[
        {"id":"g","type":"generator","keys":100000},
        {"id":"a","type":"keyed_aggregate","inputs":[{"from":"g","partition":{"hash":["key"]}}],
         "keys":["key"],"aggregates":[{"fn":"count","as":"n"}]},
        {"id":"o","type":"blackhole_sink","inputs":[{"from":"a"}]}]}"#,
    )
    .expect("bench job")
}

fn registry() -> Registry {
    let mut r = Registry::new();
    weir_operators::register(&mut r);
    weir_connectors::register(&mut r);
    r
}

fn ctx(spec: &JobSpec, op: usize) -> OperatorContext {
    let s = schemas(spec).expect("schemas");
    OperatorContext {
        job_id: weir_types::JobId("bench".into()),
        op_id: spec.operators[op].id.clone(),
        subtask: 0,
        parallelism: 1,
        max_parallelism: spec.max_parallelism,
        attempt: 1,
        guarantee: spec.guarantee,
        checkpointing: false,
        state_backend: Default::default(),
        input_schema: op.checked_sub(1).map(|i| s[i].clone()),
        input_schemas: vec![],
        output_schema: s[op].clone(),
        inflight: Default::default(),
        storage: Default::default(),
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let spec = spec();
    let mut source = rt
        .block_on(registry().build_source(&ctx(&spec, 0), &spec.operators[0], None))
        .expect("source");
    let batch = match rt.block_on(source.poll_next()).expect("poll") {
        SourcePoll::Batch(b) => b,
        _ => panic!("no batch"),
    };
    let mut g = c.benchmark_group("operators");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function(BenchmarkId::new("generator", ROWS), |b| {
        b.iter(|| rt.block_on(source.poll_next()).expect("poll"))
    });
    let keys = vec![batch.column(1).clone()];
    let mut hashes = Vec::new();
    g.bench_function(BenchmarkId::new("hash_keys", ROWS), |b| {
        b.iter(|| hash_columns(&keys, &mut hashes).expect("hash"))
    });
    let mut agg = rt
        .block_on(registry().build_operator(&ctx(&spec, 1), &spec.operators[1], None))
        .expect("aggregate");
    let input = Arc::new(batch);
    g.bench_function(BenchmarkId::new("keyed_count", ROWS), |b| {
        b.iter(|| {
            rt.block_on(agg.process(input.as_ref().clone()))
                .expect("process")
        })
    });
    g.finish();
}

criterion_group!(operators, benches);
criterion_main!(operators);
