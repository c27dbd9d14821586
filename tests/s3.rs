//! Checkpoints and the exactly-once file sink on a real S3-compatible server: `s3s-fs`, served
//! from this test process on 127.0.0.1 over a temp folder, reached by the `weir` processes
//! through object_store's S3 client (signed requests, path-style, plain HTTP).

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const ACCESS_KEY: &str = "weir-test";
const SECRET_KEY: &str = "weir-test-secret";

/// An S3 endpoint serving `root` (each sub-folder is a bucket), and a count of the multipart
/// part uploads it received (`PUT …?partNumber=…&uploadId=…`).
///
/// s3s-fs 0.14 answers `If-None-Match: *` by looking for the file and then writing it, so two
/// creates of one key at the same instant can both succeed (two job managers started at once
/// both claimed epoch 1). S3 itself decides such a PUT atomically; so that this server does
/// too, its conditional PUTs are served one at a time.
async fn start_s3(root: &Path) -> (String, Arc<AtomicUsize>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder as ConnBuilder;
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs");
    let mut b = s3s::service::S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = b.build();
    let parts = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let counter = parts.clone();
    let conditional = Arc::new(tokio::sync::Mutex::new(()));
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let (service, counter) = (service.clone(), counter.clone());
            let conditional = conditional.clone();
            let counting =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let is_part = req.method() == hyper::Method::PUT
                        && req
                            .uri()
                            .query()
                            .is_some_and(|q| q.contains("uploadId=") && q.contains("partNumber="));
                    if is_part {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    let service = service.clone();
                    let create = req.method() == hyper::Method::PUT
                        && req.headers().contains_key(hyper::header::IF_NONE_MATCH);
                    let conditional = conditional.clone();
                    async move {
                        let _one_at_a_time = if create {
                            Some(conditional.lock_owned().await)
                        } else {
                            None
                        };
                        hyper::service::Service::call(&service, req).await
                    }
                });
            tokio::spawn(async move {
                let _ = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), counting)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), parts)
}

/// What a `weir` process needs to reach the endpoint.
fn s3_env(endpoint: &str) -> [(&'static str, &str); 5] {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", "us-east-1"),
    ]
}

/// `weir run JOB` against the S3 endpoint; returns what it printed, after checking it succeeded.
async fn run_on_s3(dir: &Path, name: &str, job: String, endpoint: &str) -> String {
    let job_file = dir.join(format!("{name}.json"));
    std::fs::write(&job_file, job).unwrap();
    let endpoint = endpoint.to_string();
    let state = format!("s3://weir/state-{name}");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(weir())
            .args(["run", job_file.to_str().unwrap(), "--state-dir", &state])
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

/// Large part files go up in 5 MiB parts (multipart upload) and appear whole at commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_part_files_are_uploaded_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("weir")).unwrap();
    let (endpoint, parts) = start_s3(&root).await;
    let count = 1_500_000;
    let job = count_job(
        "s3-big",
        "exactly_once",
        count,
        500,
        0,
        Path::new("s3://weir/big"),
        1,
    )
    .replace(
        r#""interval_ms": 1000 }"#,
        r#""interval_ms": 60000, "storage": "s3://weir/checkpoints-big" }"#,
    )
    .replace(
        r#""format": "csv""#,
        r#""format": "csv", "part_bytes": 5242880"#,
    );
    run_on_s3(dir.path(), "big", job, &endpoint).await;
    let out = root.join("weir/big");
    let check = check_output(&read_committed(&out), count, 500, 42);
    let sizes: Vec<u64> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
        .map(|e| e.metadata().unwrap().len())
        .collect();
    let uploaded = parts.load(Ordering::SeqCst);
    eprintln!(
        "s3-big: {} rows exact, part files {sizes:?} bytes, {uploaded} multipart part uploads",
        check.rows
    );
    check.assert_exact(count);
    assert!(
        sizes.iter().any(|s| *s > 5 << 20),
        "a part file larger than one upload part"
    );
    assert!(uploaded >= 2, "the large file was uploaded in parts");
}

/// JSON-lines part files on S3 rolled by size: with checkpoints far apart, every file but each
/// subtask's last is closed at the first batch that takes it past `roll_bytes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_files_roll_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("weir")).unwrap();
    let (endpoint, _) = start_s3(&root).await;
    let count = 1_500_000;
    let roll: u64 = 1 << 20;
    let job = count_job(
        "s3-size",
        "exactly_once",
        count,
        500,
        0,
        Path::new("s3://weir/size"),
        2,
    )
    .replace(
        r#""interval_ms": 1000 }"#,
        r#""interval_ms": 600000, "storage": "s3://weir/checkpoints-size" }"#,
    )
    .replace(
        r#""format": "csv""#,
        &format!(r#""format": "jsonl", "roll_bytes": {roll}"#),
    );
    run_on_s3(dir.path(), "size", job, &endpoint).await;
    let out = root.join("weir/size");
    let rows: Vec<(i64, i64, i64)> = committed_lines(&out)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            let field = |f: &str| v[f].as_i64().expect("an integer field");
            (field("id"), field("key"), field("n"))
        })
        .collect();
    let check = check_output(&rows, count, 500, 42);
    let sizes: Vec<u64> = committed_files(&out)
        .iter()
        .map(|f| f.metadata().unwrap().len())
        .collect();
    let total: u64 = sizes.iter().sum();
    eprintln!(
        "s3-size: {} rows exact, {} files, {total} bytes, sizes {sizes:?}",
        check.rows,
        sizes.len()
    );
    check.assert_exact(count);
    // A batch reaching the sink holds at most 8192 rows of under 40 bytes each.
    let slack = 8192 * 40;
    assert!(
        sizes.iter().all(|s| *s < roll + slack),
        "a file outgrew roll_bytes by more than a batch: {sizes:?}"
    );
    let small = sizes.iter().filter(|s| **s < roll).count();
    assert!(
        small <= 2,
        "only each subtask's last file may be short of roll_bytes: {sizes:?}"
    );
    assert!(sizes.len() as u64 >= total / (roll + slack), "{sizes:?}");
}

/// Parquet part files on S3, rolled by time as well as at checkpoints, read back by a
/// Parquet file source into CSV, and checked record by record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_part_files_roll_by_time_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("weir")).unwrap();
    let (endpoint, _) = start_s3(&root).await;
    let count = 600_000;
    let job = count_job(
        "s3-pq",
        "exactly_once",
        count,
        500,
        200_000,
        Path::new("s3://weir/pq"),
        2,
    )
    .replace(
        r#""interval_ms": 1000 }"#,
        r#""interval_ms": 1000, "storage": "s3://weir/checkpoints-pq" }"#,
    )
    .replace(
        r#""format": "csv""#,
        r#""format": "parquet", "roll_interval_ms": 200"#,
    );
    run_on_s3(dir.path(), "pq", job, &endpoint).await;
    let files: Vec<String> = std::fs::read_dir(root.join("weir/pq"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("part-"))
        .collect();
    assert!(files.iter().all(|f| f.ends_with(".parquet")), "{files:?}");
    // 3 s of input at 200 000 events/s with 1 s checkpoints: checkpoints alone make about
    // 4 files per subtask (8 in all); rolling every 200 ms makes about 15 per subtask.
    assert!(files.len() >= 20, "rolled by time: {} files", files.len());
    let back = dir.path().join("back");
    let read_job = format!(
        r#"{{"name": "read-back", "checkpoint": {{"interval_ms": 1000, "storage": "s3://weir/checkpoints-back"}},
"operators": [
 {{"id": "src", "type": "file_source", "path": "s3://weir/pq", "format": "parquet",
   "schema": [["id", "int64"], ["key", "int64"], ["n", "int64"]]}},
 {{"id": "out", "type": "file_sink", "inputs": [{{"from": "src"}}], "path": "{}", "format": "csv"}}]}}"#,
        back.display()
    );
    run_on_s3(dir.path(), "back", read_job, &endpoint).await;
    let check = check_output(&read_committed(&back), count, 500, 42);
    eprintln!(
        "s3-parquet: {} parquet files, {} rows read back, {} missing, {} duplicated",
        files.len(),
        check.rows,
        check.missing,
        check.duplicated
    );
    check.assert_exact(count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_job_with_checkpoints_and_output_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("weir")).unwrap();
    let (endpoint, _) = start_s3(&root).await;
    let count = 300_000;
    let job = count_job(
        "s3",
        "exactly_once",
        count,
        500,
        100_000,
        Path::new("s3://weir/out"),
        2,
    )
    .replace(
        r#""interval_ms": 1000 }"#,
        r#""interval_ms": 500, "storage": "s3://weir/checkpoints" }"#,
    );
    run_on_s3(dir.path(), "s3", job, &endpoint).await;
    // What the S3 server stored, read straight from its folder.
    let check = check_output(&read_committed(&root.join("weir/out")), count, 500, 42);
    check.assert_exact(count);
    let checkpoints: Vec<_> = std::fs::read_dir(root.join("weir/checkpoints"))
        .unwrap()
        .flatten()
        .collect();
    assert!(!checkpoints.is_empty(), "checkpoints were written to S3");
    assert!(
        root.join("weir/state-s3/jobs").exists(),
        "job records were written to S3"
    );
}

/// The exactly-once file sink on S3 with a task manager killed mid-run (checkpoints, job
/// records and output all on the S3 server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sink_on_s3_survives_task_manager_kill() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("weir")).unwrap();
    let (endpoint, _) = start_s3(&root).await;
    let env = s3_env(&endpoint);
    let mut cluster = TestCluster::with_env(&env);
    cluster.start_tm(2);
    cluster.start_tm(2);
    let client = cluster.wait_slots(4).await;
    let count = 1_500_000;
    let job = count_job(
        "s3-kill",
        "exactly_once",
        count,
        10_000,
        250_000,
        Path::new("s3://weir/kill"),
        2,
    )
    .replace(
        r#""interval_ms": 1000 }"#,
        r#""interval_ms": 1000, "storage": "s3://weir/checkpoints-kill" }"#,
    );
    let id = client.submit_json(&job, None).await.expect("submit");
    wait_until(&client, &id, 60, "checkpoints", |s| {
        s.state == "RUNNING" && completed_checkpoints(s) >= 3
    })
    .await;
    cluster.kill_tm(0);
    cluster.start_tm(2);
    let status = wait_finished(&cluster, &client, &id, 240).await;
    let check = check_output(&read_committed(&root.join("weir/kill")), count, 10_000, 42);
    eprintln!(
        "s3-kill: {} rows, {} missing, {} duplicated, {} keys with wrong counts, {} restarts",
        check.rows, check.missing, check.duplicated, check.bad_counts, status.restarts
    );
    assert!(status.restarts >= 1, "the kill must have caused a restart");
    check.assert_exact(count);
}

/// Credentials the S3 server refuses fail the run with the server's answer, not a hang and
/// not a silent success, and the secret is not printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_s3_credentials_fail_the_run_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("weir")).unwrap();
    let (endpoint, _) = start_s3(&root).await;
    let job = count_job(
        "s3-refused",
        "exactly_once",
        1_000,
        10,
        0,
        Path::new("s3://weir/refused"),
        1,
    )
    .replace(
        r#""interval_ms": 1000 }"#,
        r#""interval_ms": 1000, "storage": "s3://weir/checkpoints-refused" }"#,
    )
    .replace(
        r#""restart": { "fixed_delay": { "attempts": 10, "delay_ms": 200 } }"#,
        r#""restart": "none""#,
    );
    let dir_path = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        weir_run_env(
            &dir_path,
            &job,
            &[
                ("AWS_ENDPOINT_URL", endpoint.as_str()),
                ("AWS_ALLOW_HTTP", "true"),
                ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
                ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
                ("AWS_REGION", "us-east-1"),
            ],
        )
    })
    .await
    .unwrap();
    let (text, took) = (&out.text, out.took);
    let reason = text
        .lines()
        .find(|l| l.contains("s3://weir"))
        .unwrap_or_default();
    eprintln!("s3-refused: failed={} in {took:?}: {reason}", !out.ok);
    assert!(!out.ok, "{text}");
    assert!(
        text.contains("checkpoints-refused") && text.contains("SignatureDoesNotMatch"),
        "the failure names the location and the server's answer:\n{text}"
    );
    assert!(
        !text.contains("not-the-secret"),
        "the secret is printed:\n{text}"
    );
    assert!(took < std::time::Duration::from_secs(60), "took {took:?}");
    assert!(
        !root.join("weir/refused").exists(),
        "nothing may be written with refused credentials"
    );
}

/// A CSV object larger than the split size is read in byte ranges (ranged GETs) by two
/// subtasks: every row once, NULL-free empty strings and unicode intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_csv_object_is_read_in_ranges_by_two_subtasks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("weir/in")).unwrap();
    let (endpoint, _) = start_s3(&root).await;
    let n = 200_000u64;
    let text: String = (0..n)
        .map(|i| match i % 3 {
            0 => format!("{i},\n"),
            1 => format!("{i},ünï \"{i}\"\n").replace('"', ""),
            _ => format!("{i},\"quoted, with comma\"\n"),
        })
        .collect();
    std::fs::write(root.join("weir/in/big.csv"), &text).unwrap();
    let split = text.len() / 4 + 1;
    let out = dir.path().join("out");
    let job = format!(
        r#"{{"name": "s3-ranges", "checkpoint": {{"interval_ms": 1000, "storage": "s3://weir/checkpoints-ranges"}},
"operators": [
 {{"id": "src", "type": "file_source", "path": "s3://weir/in", "format": "csv", "parallelism": 2,
   "split_bytes": {split}, "batch_size": 3000, "schema": [["id", "int64"], ["s", "utf8"]]}},
 {{"id": "out", "type": "file_sink", "parallelism": 2, "inputs": [{{"from": "src"}}], "path": "{}", "format": "csv"}}]}}"#,
        out.display()
    );
    run_on_s3(dir.path(), "ranges", job, &endpoint).await;
    let mut ids = std::collections::BTreeMap::new();
    for line in committed_lines(&out) {
        let (id, s) = line.split_once(',').unwrap();
        let id: u64 = id.parse().unwrap();
        let want = match id % 3 {
            0 => String::new(),
            1 => format!("ünï {id}"),
            _ => "\"quoted, with comma\"".to_string(),
        };
        assert_eq!(s, want, "row {id}");
        *ids.entry(id).or_insert(0u32) += 1;
    }
    assert_eq!(ids.len() as u64, n);
    assert!(ids.values().all(|c| *c == 1), "duplicates");
}

/// Two job managers on one state dir on S3 (issue 17): the claim is a conditional PUT
/// (`If-None-Match: *`), which the server honours, so of two started at once exactly one
/// leads; killing it hands the job to the other, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_job_managers_on_s3_elect_one_and_fail_over() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("weir")).unwrap();
    let (endpoint, _) = start_s3(&root).await;
    let env = s3_env(&endpoint);
    let ports = [free_port(), free_port()];
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let both = urls.join(",");
    let log = |name: &str| dir.path().join(format!("{name}.log"));
    let mut jms: Vec<Option<Proc>> = (0..2)
        .map(|i| {
            let bind = format!("127.0.0.1:{}", ports[i]);
            let id = format!("jm{i}");
            Some(Proc::spawn_env(
                &id,
                &[
                    "jobmanager",
                    "--bind",
                    &bind,
                    "--state-dir",
                    "s3://weir/ha-state",
                    "--lease-ms",
                    "4500",
                    "--id",
                    &id,
                    "--admin-bind",
                    "off",
                ],
                &log(&id),
                &env,
            ))
        })
        .collect();
    let read_log = |name: &str| strip_ansi(&std::fs::read_to_string(log(name)).unwrap_or_default());
    let _tms: Vec<Proc> = (0..2)
        .map(|i| {
            let id = format!("tm{i}");
            Proc::spawn_env(
                &id,
                &[
                    "taskmanager",
                    "--jobmanager",
                    &both,
                    "--slots",
                    "2",
                    "--id",
                    &id,
                ],
                &log(&id),
                &env,
            )
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let client = loop {
        if let Ok(c) = weir_client::Client::connect(&both).await {
            if c.cluster()
                .await
                .is_ok_and(|t| t.iter().map(|t| t.slots).sum::<u32>() >= 4)
            {
                break c;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no leader with 4 slots"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let leaders: Vec<usize> = (0..2)
        .filter(|i| read_log(&format!("jm{i}")).contains("leader for"))
        .collect();
    assert_eq!(leaders.len(), 1, "exactly one leads: {leaders:?}");
    let leader = leaders[0];

    let count = 2_000_000;
    let job = count_job(
        "s3-ha",
        "exactly_once",
        count,
        10_000,
        200_000,
        Path::new("s3://weir/ha-out"),
        2,
    )
    .replace(
        r#""interval_ms": 1000 }"#,
        r#""interval_ms": 1000, "storage": "s3://weir/ha-checkpoints" }"#,
    );
    let id = client.submit_json(&job, None).await.expect("submit");
    wait_until(&client, &id, 60, "checkpoints", |s| {
        s.state == "RUNNING" && completed_checkpoints(s) >= 3
    })
    .await;
    let standby = read_log(&format!("jm{}", 1 - leader));
    assert!(standby.contains("standby for"), "{standby}");
    jms[leader].take().expect("leader").kill9();
    let status = client
        .wait(&id, Some(std::time::Duration::from_secs(240)))
        .await
        .expect("the job ends under the new leader");
    assert_eq!(status.state, "FINISHED", "{}", status.failure);
    assert!(status.attempt >= 2, "the new leader restarted the job");
    assert!(read_log(&format!("jm{}", 1 - leader)).contains("leader for"));
    let check = check_output(
        &read_committed(&root.join("weir/ha-out")),
        count,
        10_000,
        42,
    );
    eprintln!(
        "s3-ha: {} rows, {} missing, {} duplicated, attempt {}",
        check.rows, check.missing, check.duplicated, status.attempt
    );
    check.assert_exact(count);
    drop(jms);
}

/// The Deployments of a manifest file rendered from the Helm chart: name -> (replicas, the
/// first container).
fn rendered_deployments(
    path: &Path,
) -> std::collections::HashMap<String, (u64, serde_yaml::Value)> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).expect("rendered manifests");
    let mut out = std::collections::HashMap::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v = serde_yaml::Value::deserialize(doc).expect("YAML");
        if v["kind"].as_str() != Some("Deployment") {
            continue;
        }
        let name = v["metadata"]["name"].as_str().expect("name").to_string();
        let replicas = v["spec"]["replicas"].as_u64().unwrap_or(1);
        let container = v["spec"]["template"]["spec"]["containers"][0].clone();
        out.insert(name, (replicas, container));
    }
    out
}

/// Replaces Kubernetes' `$(NAME)` references in `s` by the variables defined so far.
fn expand_k8s(s: &str, env: &[(String, String)]) -> String {
    let mut s = s.to_string();
    for (k, v) in env {
        s = s.replace(&format!("$({k})"), v);
    }
    s
}

/// A container of the rendered manifests as a process: its environment resolved as the kubelet
/// would (the downward API's pod IP, the Secret's keys; the S3 endpoint, a Service of the
/// cluster, becomes the test's server), and its args with `$(VAR)` expanded.
fn pod_command(
    container: &serde_yaml::Value,
    pod_ip: &str,
    endpoint: &str,
) -> (Vec<String>, Vec<(String, String)>) {
    let mut env: Vec<(String, String)> = Vec::new();
    for e in container["env"].as_sequence().expect("env") {
        let name = e["name"].as_str().expect("env name").to_string();
        let value = if let Some(v) = e["value"].as_str() {
            expand_k8s(v, &env)
        } else if e["valueFrom"]["fieldRef"]["fieldPath"].as_str() == Some("status.podIP") {
            pod_ip.to_string()
        } else {
            match e["valueFrom"]["secretKeyRef"]["key"].as_str() {
                Some("AWS_ACCESS_KEY_ID") => ACCESS_KEY.to_string(),
                Some("AWS_SECRET_ACCESS_KEY") => SECRET_KEY.to_string(),
                other => panic!("env {name}: an unexpected source {other:?}"),
            }
        };
        let value = if name == "AWS_ENDPOINT_URL" {
            endpoint.to_string()
        } else {
            value
        };
        env.push((name, value));
    }
    let args = container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| expand_k8s(a.as_str().expect("string arg"), &env))
        .collect();
    (args, env)
}

/// The cluster of `deploy/kubernetes/weir-ha.yaml` (the chart with two job-manager replicas),
/// started with exactly the container args and environment rendered there: each pod a process
/// on a loopback address of its own (127.0.0.x for its pod IP and for the `0.0.0.0` it binds),
/// the job-manager Service replaced by the list of job-manager pods, and the state on S3.
/// `examples/keyed-count.json` runs to FINISHED while the leader is killed once, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_kubernetes_manifests_run_a_job_across_a_leader_kill() {
    let manifests =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes/weir-ha.yaml");
    let deployments = rendered_deployments(&manifests);
    let (jm_replicas, jm) = deployments
        .get("weir-jobmanager")
        .expect("job manager")
        .clone();
    let (tm_replicas, tm) = deployments
        .get("weir-taskmanager")
        .expect("task manager")
        .clone();
    assert_eq!(
        jm_replicas, 2,
        "the HA rendering has a leader and a standby"
    );

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("weir")).unwrap();
    let (endpoint, _) = start_s3(&root).await;
    let log = |name: &str| dir.path().join(format!("{name}.log"));
    let read_log = |name: &str| strip_ansi(&std::fs::read_to_string(log(name)).unwrap_or_default());

    // Pod IPs: job managers 127.0.0.12.., task managers 127.0.0.22..
    let jm_ips: Vec<[u8; 4]> = (0..jm_replicas)
        .map(|i| [127, 0, 0, 12 + i as u8])
        .collect();
    let tm_ips: Vec<[u8; 4]> = (0..tm_replicas)
        .map(|i| [127, 0, 0, 22 + i as u8])
        .collect();
    let dotted = |ip: &[u8; 4]| format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]);
    let service = "http://weir-jobmanager:6123";
    let jm_list = jm_ips
        .iter()
        .map(|ip| format!("http://{}:6123", dotted(ip)))
        .collect::<Vec<_>>()
        .join(",");
    let start = |name: &str, container: &serde_yaml::Value, ip: &[u8; 4]| {
        let ip = dotted(ip);
        let (args, env) = pod_command(container, &ip, &endpoint);
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("0.0.0.0", &ip).replace(service, &jm_list))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Proc::spawn_env(name, &args, &log(name), &env)
    };
    // What the rendering must hold for the substitutions above to mean anything.
    let tm_args = pod_command(&tm, "POD", "S3").0;
    assert!(tm_args.iter().any(|a| a == service), "{tm_args:?}");
    assert!(
        tm_args.iter().any(|a| a == "http://POD:6124"),
        "{tm_args:?}"
    );

    let mut jms: Vec<Option<Proc>> = jm_ips
        .iter()
        .enumerate()
        .map(|(i, ip)| Some(start(&format!("jm{i}"), &jm, ip)))
        .collect();
    let _tms: Vec<Proc> = tm_ips
        .iter()
        .enumerate()
        .map(|(i, ip)| start(&format!("tm{i}"), &tm, ip))
        .collect();

    // The kubelet's view: one job manager ready (the Service's only endpoint), every task
    // manager ready once registered.
    let ready = |ip: &[u8; 4]| probe_at(*ip, 8081, "/readyz").map(|p| p.0) == Some(200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let leader = loop {
        let leaders: Vec<usize> = (0..jm_ips.len()).filter(|i| ready(&jm_ips[*i])).collect();
        if leaders.len() == 1 && tm_ips.iter().all(ready) {
            break leaders[0];
        }
        if std::time::Instant::now() > deadline {
            dump_logs_in(dir.path(), 40);
            panic!("no single ready job manager with ready task managers: {leaders:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let standby = probe_at(jm_ips[1 - leader], 8081, "/readyz").expect("standby answers");
    assert!(
        standby.0 == 503 && standby.1.starts_with("standby"),
        "{standby:?}"
    );

    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/keyed-count.json"),
    )
    .expect("example");
    let local_path = "weir-data/output/keyed-count";
    assert!(example.contains(local_path));
    let client = weir_client::Client::connect(&jm_list)
        .await
        .expect("client");
    let id = client
        .submit_json(
            &example.replace(local_path, "s3://weir/output/keyed-count"),
            None,
        )
        .await
        .expect("submit");
    checkpoints_pass(&client, &id, 2).await;
    let killed = std::time::Instant::now();
    jms[leader].take().expect("leader").kill9();
    let status = client
        .wait(&id, Some(std::time::Duration::from_secs(240)))
        .await
        .expect("the job ends under the new leader");
    if status.state != "FINISHED" {
        dump_logs_in(dir.path(), 40);
    }
    assert_eq!(status.state, "FINISHED", "{}", status.failure);
    assert!(
        status.attempt >= 2,
        "the kill restarted the job from a checkpoint"
    );
    assert!(read_log(&format!("jm{}", 1 - leader)).contains("leader for"));
    assert!(ready(&jm_ips[1 - leader]), "the new leader is ready");
    eprintln!(
        "the job finished {:?} after the leader's kill",
        killed.elapsed()
    );

    // The same example run embedded is the reference: the same rows, each once, and per key
    // the running counts 1..=n with the final sum.
    let reference_dir = dir.path().join("reference");
    std::fs::create_dir_all(&reference_dir).unwrap();
    let reference_out = reference_dir.join("out");
    let run = weir_run(
        &reference_dir,
        &example.replace(local_path, reference_out.to_str().unwrap()),
    );
    assert!(run.ok, "{}", run.text);
    let rows = |dir: &Path| -> Vec<[i64; 5]> {
        committed_lines(dir)
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
                ["id", "key", "value", "n", "total"].map(|f| v[f].as_i64().expect(f))
            })
            .collect()
    };
    let got = rows(&root.join("weir/output/keyed-count"));
    let want = rows(&reference_out);
    let inputs = |rows: &[[i64; 5]]| {
        let mut v: Vec<[i64; 3]> = rows.iter().map(|r| [r[0], r[1], r[2]]).collect();
        v.sort_unstable();
        v
    };
    let per_key = |rows: &[[i64; 5]]| {
        let mut m: std::collections::BTreeMap<i64, (Vec<i64>, i64, i64)> = Default::default();
        for r in rows {
            let e = m.entry(r[1]).or_default();
            e.0.push(r[3]);
            e.1 += r[2];
            e.2 = e.2.max(r[4]);
        }
        for e in m.values_mut() {
            e.0.sort_unstable();
        }
        m
    };
    eprintln!(
        "rendered HA cluster: {} rows (reference {}), attempt {}",
        got.len(),
        want.len(),
        status.attempt
    );
    assert!(want.len() > 1_000_000, "the reference ran: {}", want.len());
    assert!(inputs(&got) == inputs(&want), "rows lost or duplicated");
    let (got_keys, want_keys) = (per_key(&got), per_key(&want));
    assert!(got_keys == want_keys, "running counts or sums differ");
    for (n, sum, total) in want_keys.values() {
        assert_eq!(*n, (1..=n.len() as i64).collect::<Vec<_>>());
        assert_eq!(sum, total);
    }
    drop(jms);
}
