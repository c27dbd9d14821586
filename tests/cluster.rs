//! Multi-process tests: a job manager and task managers as separate `weir` processes on
//! 127.0.0.1, jobs submitted over gRPC, processes killed with SIGKILL mid-run, and the
//! committed output checked record by record.

mod common;

use common::*;
use std::time::Duration;

const SEED: u64 = 42;

/// Runs a count job on a 2-TM cluster; `disrupt` kills things mid-run. Returns the output check.
async fn run_with<F, Fut>(
    name: &str,
    guarantee: &str,
    count: u64,
    keys: u64,
    rate: u64,
    disrupt: F,
) -> (OutputCheck, weir_client::JobStatus)
where
    F: FnOnce(TestCluster, weir_client::Client, String) -> Fut,
    Fut: std::future::Future<Output = TestCluster>,
{
    run_edited(name, guarantee, count, keys, rate, |j| j, disrupt).await
}

/// As [`run_with`], with the job JSON edited first.
async fn run_edited<F, Fut>(
    name: &str,
    guarantee: &str,
    count: u64,
    keys: u64,
    rate: u64,
    edit: impl FnOnce(String) -> String,
    disrupt: F,
) -> (OutputCheck, weir_client::JobStatus)
where
    F: FnOnce(TestCluster, weir_client::Client, String) -> Fut,
    Fut: std::future::Future<Output = TestCluster>,
{
    let mut cluster = TestCluster::new();
    cluster.start_tm(2);
    cluster.start_tm(2);
    let client = cluster.wait_slots(4).await;
    let out = cluster.path("out");
    let job = edit(count_job(name, guarantee, count, keys, rate, &out, 2));
    let id = client.submit_json(&job, None).await.expect("submit");
    let cluster = disrupt(cluster, client, id.clone()).await;
    let client = cluster.client().await;
    let status = wait_finished(&cluster, &client, &id, 240).await;
    let rows = read_committed(&out);
    let check = check_output(&rows, count, keys, SEED);
    if check.duplicated > 0 || check.missing > 0 {
        // Keep what a diagnosis needs: where the duplicates are, and every process's log.
        for (files, ids) in duplicate_sources(&out).iter().take(10) {
            eprintln!("{ids} ids duplicated across {files:?}");
        }
        cluster.dump_logs();
    }
    eprintln!(
        "{name}: {} rows, {} distinct ids of {count}, {} missing, {} duplicated, {} keys with wrong counts, {} restarts",
        check.rows, check.distinct_ids, check.missing, check.duplicated, check.bad_counts, status.restarts
    );
    (check, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_survives_task_manager_kill() {
    let count = 5_000_000;
    let (check, status) = run_with(
        "tm-kill",
        "exactly_once",
        count,
        10_000,
        250_000,
        |mut c, client, id| async move {
            checkpoints_pass(&client, &id, 3).await;
            c.kill_tm(0);
            c.start_tm(2);
            wait_until(&client, &id, 60, "restart", |s| s.restarts >= 1).await;
            c
        },
    )
    .await;
    assert!(status.restarts >= 1, "the kill must have caused a restart");
    check.assert_exact(count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_survives_two_task_manager_kills_in_a_row() {
    let count = 2_000_000;
    let (check, status) = run_with(
        "tm-kill-twice",
        "exactly_once",
        count,
        10_000,
        100_000,
        |mut c, client, id| async move {
            checkpoints_pass(&client, &id, 2).await;
            c.kill_tm(0);
            let replacement = c.start_tm(2);
            wait_until(&client, &id, 60, "first restart", |s| s.restarts >= 1).await;
            checkpoints_pass(&client, &id, 2).await;
            c.kill_tm(replacement);
            c.start_tm(2);
            wait_until(&client, &id, 60, "second restart", |s| s.restarts >= 2).await;
            c
        },
    )
    .await;
    assert!(status.restarts >= 2);
    check.assert_exact(count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_survives_job_manager_kill() {
    let count = 2_000_000;
    let (check, status) = run_with(
        "jm-kill",
        "exactly_once",
        count,
        10_000,
        100_000,
        |mut c, client, id| async move {
            checkpoints_pass(&client, &id, 3).await;
            c.kill_jm();
            tokio::time::sleep(Duration::from_millis(500)).await;
            c.start_jm();
            let client = c.client().await;
            wait_until(&client, &id, 60, "job resumed", |s| {
                s.state == "RUNNING" && s.attempt >= 2
            })
            .await;
            c
        },
    )
    .await;
    assert!(
        status.attempt >= 2,
        "the job must have been redeployed by the new job manager"
    );
    check.assert_exact(count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_loses_nothing_after_a_kill() {
    let count = 2_000_000;
    let (check, status) = run_with(
        "alo-kill",
        "at_least_once",
        count,
        10_000,
        100_000,
        |mut c, client, id| async move {
            checkpoints_pass(&client, &id, 3).await;
            c.kill_tm(1);
            c.start_tm(2);
            wait_until(&client, &id, 60, "restart", |s| s.restarts >= 1).await;
            c
        },
    )
    .await;
    assert!(status.restarts >= 1);
    eprintln!(
        "at-least-once: {} duplicated ids after the kill (allowed), {} missing",
        check.duplicated, check.missing
    );
    assert_eq!(check.missing, 0, "at-least-once must not lose records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_once_duplicates_nothing_after_a_kill() {
    let count = 2_000_000;
    let mut cluster = TestCluster::new();
    cluster.start_tm(2);
    cluster.start_tm(2);
    let client = cluster.wait_slots(4).await;
    let out = cluster.path("out");
    // At-most-once output is not held back for checkpoints, so the check has to allow the
    // counts of keys to be off (lost records); it must never see an id twice.
    let job = count_job("amo-kill", "at_most_once", count, 10_000, 100_000, &out, 2);
    let id = client.submit_json(&job, None).await.expect("submit");
    checkpoints_pass(&client, &id, 3).await;
    cluster.kill_tm(0);
    cluster.start_tm(2);
    wait_until(&client, &id, 60, "restart", |s| s.restarts >= 1).await;
    let status = client
        .wait(&id, Some(Duration::from_secs(240)))
        .await
        .expect("job ends");
    if status.state != "FINISHED" {
        cluster.dump_logs();
        panic!("job ended {}: {}", status.state, status.failure);
    }
    let check = check_output(&read_committed(&out), count, 10_000, SEED);
    eprintln!(
        "at-most-once: {} ids lost after the kill (allowed), {} duplicated",
        check.missing, check.duplicated
    );
    assert_eq!(
        check.duplicated, 0,
        "at-most-once must not deliver a record twice"
    );
    assert!(
        check.missing > 0,
        "a kill mid-run loses the records in flight; finding none means the kill did not bite"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoint_at_parallelism_2_resumes_at_parallelism_3() {
    let count = 1_000_000;
    let keys = 5_000;
    let mut cluster = TestCluster::new();
    cluster.start_tm(3);
    cluster.start_tm(3);
    let client = cluster.wait_slots(6).await;
    let out = cluster.path("out");
    let first = count_job("rescale", "exactly_once", count, keys, 100_000, &out, 2);
    let id = client.submit_json(&first, None).await.expect("submit");
    checkpoints_pass(&client, &id, 2).await;
    let (savepoint, _) = client
        .savepoint(
            &id,
            Some(cluster.path("savepoints").to_str().unwrap()),
            true,
        )
        .await
        .expect("stop with savepoint");
    let s = client
        .wait(&id, Some(Duration::from_secs(60)))
        .await
        .expect("first job ends");
    assert_eq!(s.state, "FINISHED", "{}", s.failure);
    let before = read_committed(&out).len();
    assert!(
        before > 0 && (before as u64) < count,
        "the first run stopped mid-way ({before} rows)"
    );

    let second = count_job("rescale", "exactly_once", count, keys, 0, &out, 3);
    let id2 = client
        .submit_json(&second, Some(&savepoint))
        .await
        .expect("submit from savepoint");
    let s = client
        .wait(&id2, Some(Duration::from_secs(120)))
        .await
        .expect("second job ends");
    if s.state != "FINISHED" {
        cluster.dump_logs();
        panic!("second job ended {}: {}", s.state, s.failure);
    }
    let check = check_output(&read_committed(&out), count, keys, SEED);
    eprintln!(
        "rescale: {before} rows before the savepoint, {} in all",
        check.rows
    );
    check.assert_exact(count);
}

#[cfg(feature = "rocksdb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_with_rocksdb_state_survives_task_manager_kill() {
    let count = 1_000_000;
    let edit = |j: String| {
        j.replace(
            r#""guarantee": "exactly_once","#,
            r#""guarantee": "exactly_once", "state_backend": "rocksdb","#,
        )
    };
    let (check, status) = run_edited(
        "rocksdb-kill",
        "exactly_once",
        count,
        10_000,
        100_000,
        edit,
        |mut c, client, id| async move {
            checkpoints_pass(&client, &id, 2).await;
            c.kill_tm(1);
            c.start_tm(2);
            wait_until(&client, &id, 60, "restart", |s| s.restarts >= 1).await;
            c
        },
    )
    .await;
    assert!(status.restarts >= 1);
    check.assert_exact(count);
}

/// Tasks that hog their threads: after every batch each task keeps its thread busy for 3 s
/// (the `task_batch` spin point), on every slot of the only task manager. Its heartbeat runs
/// apart from the tasks and must still reach the job manager within the 2 s timeout this
/// cluster runs with (the old default, which such tasks used to trip): the job finishes on its
/// first attempt, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_that_hog_their_threads_do_not_lose_their_task_manager() {
    let mut cluster = TestCluster::with_env(&[("WEIR_HEARTBEAT_TIMEOUT_MS", "2000")]);
    cluster.start_tm_env(4, &[("WEIR_FAILPOINTS", "task_batch=spin:3000")]);
    let client = cluster.wait_slots(4).await;
    let out = cluster.path("out");
    let count = 400;
    let job = count_job("hog", "exactly_once", count, 100, 0, &out, 2).replace(
        r#""seed": 42 }"#,
        r#""seed": 42, "batch_size": 1000, "partitions": 2 }"#,
    );
    assert!(job.contains("batch_size"));
    let id = client.submit_json(&job, None).await.expect("submit");
    let status = client
        .wait(&id, Some(Duration::from_secs(240)))
        .await
        .expect("wait");
    let spins = std::fs::read_to_string(cluster.path("tm-1.log"))
        .unwrap_or_default()
        .matches("failpoint hit: spinning")
        .count();
    let lost = std::fs::read_dir(cluster.dir.path())
        .expect("cluster dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("jm-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .map(|log| log.matches("missed its heartbeats").count())
        .sum::<usize>();
    eprintln!(
        "hog: {} after {} restarts; {spins} spins of 3 s; {lost} heartbeat losses logged",
        status.state, status.restarts
    );
    if status.state != "FINISHED" || status.restarts > 0 {
        cluster.dump_logs();
    }
    assert_eq!(status.state, "FINISHED", "{}", status.failure);
    assert!(spins >= 4, "the tasks hogged their threads {spins} times");
    assert_eq!(lost, 0, "the job manager declared the task manager lost");
    assert_eq!(status.restarts, 0, "{}", status.failure);
    check_output(&read_committed(&out), count, 100, SEED).assert_exact(count);
}
