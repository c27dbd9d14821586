//! Checkpoints and the exactly-once file sink on a real S3-compatible server: `s3s-fs`, served
//! from this test process on 127.0.0.1 over a temp folder, reached by the `weir` processes
//! through object_store's S3 client (signed requests, path-style, plain HTTP).

mod common;

use common::s3::*;
use common::*;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;

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
