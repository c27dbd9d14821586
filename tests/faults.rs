//! Fault injection against real processes: a checkpoint whose upload fails is aborted while
//! the job runs on; a corrupt checkpoint stops the restore with a clear error.

mod common;

use common::*;
use std::time::Duration;

fn with_storage(job: &str, root: &std::path::Path, restart_delay_ms: u64) -> String {
    job.replace(
        r#""checkpoint": { "interval_ms": 1000 }"#,
        &format!(
            r#""checkpoint": {{ "interval_ms": 1000, "storage": "{}" }}"#,
            root.display()
        ),
    )
    .replace(
        r#""delay_ms": 200"#,
        &format!(r#""delay_ms": {restart_delay_ms}"#),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_checkpoint_is_aborted_and_the_job_runs_on() {
    let mut cluster = TestCluster::new();
    cluster.start_tm(4);
    let client = cluster.wait_slots(4).await;
    let out = cluster.path("out");
    let root = cluster.path("checkpoints");
    let count = 1_000_000;
    let job = with_storage(
        &count_job("ckpt-fail", "exactly_once", count, 1000, 100_000, &out, 2),
        &root,
        200,
    );
    let id = client.submit_json(&job, None).await.expect("submit");
    // A plain file where checkpoint 3's folder must go: its uploads fail, for real.
    std::fs::write(root.join(&id).join("chk-000000000003"), b"in the way").unwrap();
    let status = client
        .wait(&id, Some(Duration::from_secs(120)))
        .await
        .expect("job ends");
    assert_eq!(status.state, "FINISHED", "{}", status.failure);
    let third = status
        .checkpoints
        .iter()
        .find(|c| c.checkpoint_id == 3)
        .expect("checkpoint 3 in history");
    eprintln!("checkpoint 3: {} ({})", third.state, third.failure);
    assert_eq!(third.state, "FAILED");
    assert!(
        third.failure.contains("chk-000000000003"),
        "{}",
        third.failure
    );
    assert!(status
        .checkpoints
        .iter()
        .any(|c| c.checkpoint_id > 3 && c.state == "COMPLETED"));
    assert_eq!(
        status.restarts, 0,
        "a failed checkpoint must not restart the job"
    );
    let check = check_output(&read_committed(&out), count, 1000, 42);
    check.assert_exact(count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_checkpoint_fails_the_restore_with_a_clear_error() {
    let mut cluster = TestCluster::new();
    cluster.start_tm(2);
    cluster.start_tm(2);
    let client = cluster.wait_slots(4).await;
    let out = cluster.path("out");
    let root = cluster.path("checkpoints");
    let job = with_storage(
        &count_job("corrupt", "exactly_once", 2_000_000, 1000, 100_000, &out, 2),
        &root,
        1500,
    );
    let id = client.submit_json(&job, None).await.expect("submit");
    wait_until(&client, &id, 60, "checkpoints", |s| {
        completed_checkpoints(s) >= 2
    })
    .await;
    // Kill a task manager (no checkpoint can complete after this), then corrupt every
    // completed checkpoint's metadata before the restart delay is over.
    cluster.kill_tm(0);
    for entry in std::fs::read_dir(root.join(&id)).unwrap().flatten() {
        let meta = entry.path().join("_metadata");
        if meta.exists() {
            std::fs::write(&meta, b"{ this is not metadata").unwrap();
        }
    }
    cluster.start_tm(2);
    let status = client
        .wait(&id, Some(Duration::from_secs(60)))
        .await
        .expect("job ends");
    eprintln!("after corruption: {} ({})", status.state, status.failure);
    assert_eq!(status.state, "FAILED");
    assert!(
        status.failure.contains("corrupt checkpoint metadata"),
        "{}",
        status.failure
    );
    assert!(
        status.failure.contains("chk-"),
        "the error names the checkpoint: {}",
        status.failure
    );
    // The job manager is still up and answering.
    assert!(client.list().await.unwrap().iter().any(|j| j.job_id == id));
}
