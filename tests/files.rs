//! The file source streaming (issue 22), with real job and task manager processes: a kill in
//! the middle of a large file resumes at the recorded byte offset, one file read in byte
//! ranges by 3 subtasks and rescaled to 2 from a savepoint, files added while a monitoring
//! job runs (and across a kill), and a Parquet file of which only the declared columns are
//! fetched. Bytes read come from the task managers' "file split read" log lines.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// `n` JSON lines with ids `first..first + n` and some padding.
fn write_jsonl(path: &Path, first: u64, n: u64) -> u64 {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in first..first + n {
        writeln!(
            f,
            r#"{{"id": {i}, "pad": "row {i} ünïcödé, with a comma"}}"#
        )
        .unwrap();
    }
    f.flush().unwrap();
    drop(f);
    std::fs::metadata(path).unwrap().len()
}

/// The fields of every log line of the cluster's task managers that contains `what`.
fn log_events(dir: &Path, what: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    for p in logs {
        let text = strip_ansi(&std::fs::read_to_string(&p).unwrap_or_default());
        for line in text.lines().filter(|l| l.contains(what)) {
            let mut fields = BTreeMap::new();
            fields.insert(
                "log".to_string(),
                p.file_name().unwrap().to_string_lossy().into_owned(),
            );
            for tok in line.split_whitespace() {
                if let Some((k, v)) = tok.split_once('=') {
                    fields.insert(k.to_string(), v.trim_matches('"').to_string());
                }
            }
            out.push(fields);
        }
    }
    out
}

fn num(fields: &BTreeMap<String, String>, key: &str) -> u64 {
    fields
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {fields:?}"))
}

/// The ids of the committed output (first CSV field), with how often each appears.
fn committed_ids(out: &Path) -> BTreeMap<u64, u32> {
    let mut ids = BTreeMap::new();
    for line in committed_lines(out) {
        let id: u64 = line.split(',').next().unwrap().parse().expect("id");
        *ids.entry(id).or_insert(0) += 1;
    }
    ids
}

fn assert_each_once(ids: &BTreeMap<u64, u32>, expect: impl Iterator<Item = u64>) {
    let want: Vec<u64> = expect.collect();
    let dups = ids.values().filter(|c| **c > 1).count();
    let missing = want.iter().filter(|i| !ids.contains_key(i)).count();
    let extra = ids.len() + missing - want.len();
    assert!(
        dups == 0 && missing == 0 && extra == 0,
        "{} ids out, {dups} duplicated, {missing} missing, {extra} unexpected",
        ids.len()
    );
}

fn job(name: &str, source: &str, out: &Path, parallelism: u32, interval_ms: u64) -> String {
    format!(
        r#"{{"name": "{name}", "checkpoint": {{"interval_ms": {interval_ms}}},
"operators": [
 {{"id": "src", "parallelism": {parallelism}, {source}}},
 {{"id": "out", "type": "file_sink", "parallelism": {parallelism}, "inputs": [{{"from": "src"}}],
   "path": "{}", "format": "csv"}}]}}"#,
        out.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_file_resumes_at_the_recorded_byte_offset() {
    let mut cluster = TestCluster::new();
    // Every batch costs 15 ms on the first task manager, so the kill lands mid-file.
    cluster.start_tm_env(1, &[("WEIR_FAILPOINTS", "task_batch=spin:15")]);
    let client = cluster.wait_slots(1).await;
    let input = cluster.path("big.jsonl");
    let n = 400_000;
    let size = write_jsonl(&input, 0, n);
    let out = cluster.path("out");
    let source = format!(
        r#""type": "file_source", "path": "{}", "format": "jsonl", "batch_size": 1000,
   "schema": [["id", "int64"], ["pad", "utf8"]]"#,
        input.display()
    );
    let id = client
        .submit_json(&job("mid-file", &source, &out, 1, 300), None)
        .await
        .expect("submit");
    kill_tm_mid_run(&mut cluster, &client, &id, 3, 0, 1).await;
    wait_finished(&cluster, &client, &id, 120).await;
    assert_each_once(&committed_ids(&out), 0..n);

    // tm-2 ran the restored attempt: it opened the file at a record offset past the start
    // and fetched exactly the bytes from there to the end.
    let opened: Vec<_> = log_events(cluster.dir.path(), "reading file split")
        .into_iter()
        .filter(|f| f["log"] == "tm-2.log")
        .collect();
    let read: Vec<_> = log_events(cluster.dir.path(), "file split read")
        .into_iter()
        .filter(|f| f["log"] == "tm-2.log")
        .collect();
    assert_eq!((opened.len(), read.len()), (1, 1), "{opened:?} {read:?}");
    let from = num(&opened[0], "from");
    let bytes = num(&read[0], "bytes_read");
    eprintln!(
        "mid-file: {size} bytes, restored at byte {from} ({:.0} %), {bytes} bytes read after the restore",
        100.0 * from as f64 / size as f64
    );
    assert!(from > 0 && from < size, "restored at {from} of {size}");
    assert_eq!(
        bytes,
        size - from,
        "the restore reads from its offset on, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_file_read_by_three_subtasks_then_rescaled_to_two_reads_every_row_once() {
    let mut cluster = TestCluster::new();
    let slow = [("WEIR_FAILPOINTS", "task_batch=spin:10")];
    cluster.start_tm_env(3, &slow);
    cluster.start_tm_env(3, &slow);
    let client = cluster.wait_slots(6).await;
    let input = cluster.path("one.jsonl");
    let n = 600_000;
    let size = write_jsonl(&input, 0, n);
    let out = cluster.path("out");
    // The same source at both parallelisms: its splits are the file's, not the subtasks'.
    let source = format!(
        r#""type": "file_source", "path": "{}", "format": "jsonl", "batch_size": 1000,
   "split_bytes": {}, "schema": [["id", "int64"], ["pad", "utf8"]]"#,
        input.display(),
        size / 3 + 1
    );
    let id = client
        .submit_json(&job("split", &source, &out, 3, 300), None)
        .await
        .expect("submit");
    wait_until(&client, &id, 60, "checkpoints", |s| {
        s.state == "RUNNING" && completed_checkpoints(s) >= 3
    })
    .await;
    let (savepoint, _) = client
        .savepoint(
            &id,
            Some(cluster.path("savepoints").to_str().unwrap()),
            true,
        )
        .await
        .expect("stop with savepoint");
    wait_finished(&cluster, &client, &id, 60).await;
    let opened = log_events(cluster.dir.path(), "reading file split");
    let mut splits: Vec<(u64, u64)> = opened
        .iter()
        .map(|f| (num(f, "start"), num(f, "end")))
        .collect();
    splits.sort();
    assert_eq!(
        splits,
        vec![
            (0, size / 3 + 1),
            (size / 3 + 1, 2 * (size / 3 + 1)),
            (2 * (size / 3 + 1), size)
        ],
        "three subtasks read a third each"
    );
    let before = committed_ids(&out).len() as u64;
    assert!(before > 0 && before < n, "stopped mid-way ({before} rows)");

    let id2 = client
        .submit_json(&job("split", &source, &out, 2, 300), Some(&savepoint))
        .await
        .expect("submit from savepoint");
    wait_finished(&cluster, &client, &id2, 120).await;
    let resumed = log_events(cluster.dir.path(), "reading file split").len() - opened.len();
    eprintln!("split-rescale: {size} bytes in 3 splits, {before} rows before the savepoint, {resumed} splits resumed by 2 subtasks");
    assert_eq!(resumed, 3, "every unfinished split resumed once");
    assert_each_once(&committed_ids(&out), 0..n);
}

/// Writes a file into the watched folder as a producer should: under a hidden name, then
/// renamed into place, so the source never sees it half-written.
fn drop_file(dir: &Path, name: &str, first: u64, n: u64) {
    let tmp = dir.join(format!("_{name}.tmp"));
    write_jsonl(&tmp, first, n);
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

async fn wait_rows(cluster: &TestCluster, out: &Path, rows: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let have = committed_lines(out).len();
        if have >= rows {
            return;
        }
        if Instant::now() > deadline {
            cluster.dump_logs();
            panic!("{have} rows committed, waited for {rows}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_added_while_the_job_runs_are_read_once_also_across_a_kill() {
    let mut cluster = TestCluster::new();
    cluster.start_tm(2);
    cluster.start_tm(2);
    let client = cluster.wait_slots(4).await;
    let watched = cluster.path("in");
    std::fs::create_dir_all(&watched).unwrap();
    drop_file(&watched, "a.jsonl", 0, 1000);
    drop_file(&watched, "b.jsonl", 1000, 1000);
    let out = cluster.path("out");
    let source = format!(
        r#""type": "file_source", "path": "{}", "format": "jsonl", "monitor_interval_ms": 200,
   "schema": [["id", "int64"], ["pad", "utf8"]]"#,
        watched.display()
    );
    let id = client
        .submit_json(&job("watch", &source, &out, 2, 300), None)
        .await
        .expect("submit");
    wait_rows(&cluster, &out, 2000, 60).await;
    drop_file(&watched, "c.jsonl", 2000, 1000);
    drop_file(&watched, "d.jsonl", 3000, 1000);
    wait_rows(&cluster, &out, 4000, 60).await;
    // A kill: the restored attempt must neither re-read a, b, c, d nor miss what comes next.
    kill_tm_mid_run(&mut cluster, &client, &id, 0, 0, 2).await;
    drop_file(&watched, "e.jsonl", 4000, 1000);
    std::fs::create_dir_all(watched.join("sub")).unwrap();
    drop_file(&watched.join("sub"), "f.jsonl", 5000, 1000);
    wait_rows(&cluster, &out, 6000, 60).await;
    // A seen file is not read again when it is touched.
    std::fs::File::options()
        .append(true)
        .open(watched.join("a.jsonl"))
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = client.status(&id).await.unwrap();
    assert_eq!(
        s.state, "RUNNING",
        "a monitoring source never ends: {}",
        s.failure
    );
    let (_, _) = client
        .savepoint(
            &id,
            Some(cluster.path("savepoints").to_str().unwrap()),
            true,
        )
        .await
        .expect("stop with savepoint");
    wait_finished(&cluster, &client, &id, 60).await;
    let ids = committed_ids(&out);
    eprintln!(
        "watch: {} rows from 6 files added in 3 rounds, {} restarts",
        ids.len(),
        client.status(&id).await.unwrap().restarts
    );
    assert_each_once(&ids, 0..6000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_source_fetches_only_the_declared_columns() {
    use arrow::array::{ArrayRef, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    let mut cluster = TestCluster::new();
    cluster.start_tm(1);
    let client = cluster.wait_slots(1).await;
    let dir = cluster.path("pq");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wide.parquet");
    let cols = 40;
    let rows: i64 = 200_000;
    let schema = Arc::new(Schema::new(
        (0..cols)
            .map(|c| Field::new(format!("c{c}"), DataType::Int64, false))
            .collect::<Vec<_>>(),
    ));
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(50_000))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        schema.clone(),
        Some(props),
    )
    .unwrap();
    for chunk in 0..(rows / 10_000) {
        let range = chunk * 10_000..(chunk + 1) * 10_000;
        let arrays: Vec<ArrayRef> = (0..cols)
            .map(|c| {
                Arc::new(Int64Array::from_iter_values(range.clone().map(|i| {
                    if c == 0 {
                        i
                    } else {
                        (i * 2_654_435_761 + c as i64 * 97) % 1_000_000_007
                    }
                }))) as ArrayRef
            })
            .collect();
        w.write(&arrow::record_batch::RecordBatch::try_new(schema.clone(), arrays).unwrap())
            .unwrap();
    }
    w.close().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let out = cluster.path("out");
    let source = format!(
        r#""type": "file_source", "path": "{}", "format": "parquet",
   "schema": [["c0", "int64"], ["c17", "int64"]]"#,
        path.display()
    );
    let id = client
        .submit_json(&job("wide", &source, &out, 1, 1000), None)
        .await
        .expect("submit");
    wait_finished(&cluster, &client, &id, 60).await;
    let lines = committed_lines(&out);
    assert_eq!(lines.len(), rows as usize);
    for l in lines.iter().step_by(997) {
        let (a, b) = l.split_once(',').unwrap();
        let i: i64 = a.parse().unwrap();
        assert_eq!(
            b.parse::<i64>().unwrap(),
            (i * 2_654_435_761 + 17 * 97) % 1_000_000_007
        );
    }
    let read = log_events(cluster.dir.path(), "file split read");
    assert_eq!(read.len(), 1, "{read:?}");
    let bytes = num(&read[0], "bytes_read");
    eprintln!(
        "parquet: 2 of {cols} columns, {bytes} of {size} bytes read ({:.1} %)",
        100.0 * bytes as f64 / size as f64
    );
    assert!(bytes * 10 < size, "{bytes} of {size} bytes read");
}
