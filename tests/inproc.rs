//! A job manager and several task managers in the test process (`common/inproc.rs`): fast
//! checks of scheduling across task managers, the loss of one, a storage outage during a
//! restore (a failing store injected through the configs' storage opener), and cancelling,
//! on the same job and output checks as the multi-process kill tests.

mod common;

use common::inproc::InProcCluster;
use common::{check_output, checkpoints_pass, count_job, read_committed, wait_until};
use std::time::Duration;
use weir_storage::failing::FaultSwitch;
use weir_storage::Opener;

const SEED: u64 = 42;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_across_three_task_managers_of_one_process() {
    let cluster = InProcCluster::start(3, 2).await;
    let client = cluster.client().await;
    let out = cluster.dir.path().join("out");
    let count = 300_000;
    // 2 generator subtasks and 3 of the chained count -> project -> sink: 5 of 6 slots.
    let job = count_job(
        "inproc-spread",
        "exactly_once",
        count,
        1_000,
        500_000,
        &out,
        3,
    );
    let id = client.submit_json(&job, None).await.expect("submit");
    let s = client
        .wait(&id, Some(Duration::from_secs(60)))
        .await
        .expect("wait");
    assert_eq!(s.state, "FINISHED", "{}", s.failure);
    assert_eq!(s.restarts, 0);
    let tms = client.cluster().await.expect("cluster");
    assert_eq!(tms.len(), 3);
    check_output(&read_committed(&out), count, 1_000, SEED).assert_exact(count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_task_manager_restarts_the_job_on_the_others_exactly_once() {
    let mut cluster = InProcCluster::start(3, 2).await;
    let client = cluster.client().await;
    let out = cluster.dir.path().join("out");
    let count = 1_000_000;
    // 4 slots of 6: losing one task manager leaves enough.
    let job = count_job(
        "inproc-loss",
        "exactly_once",
        count,
        1_000,
        200_000,
        &out,
        2,
    );
    let id = client.submit_json(&job, None).await.expect("submit");
    checkpoints_pass(&client, &id, 2).await;
    cluster.stop_tm(0).await;
    wait_until(&client, &id, 60, "restart", |s| s.restarts >= 1).await;
    let s = client
        .wait(&id, Some(Duration::from_secs(90)))
        .await
        .expect("wait");
    assert_eq!(s.state, "FINISHED", "{}", s.failure);
    check_output(&read_committed(&out), count, 1_000, SEED).assert_exact(count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_during_a_storage_outage_is_retried_until_the_store_answers() {
    let faults = FaultSwitch::default();
    let mut cluster = InProcCluster::start_with(3, 2, Opener::failing(faults.clone())).await;
    let client = cluster.client().await;
    let out = cluster.dir.path().join("out");
    let count = 1_000_000;
    let job = count_job(
        "inproc-outage",
        "exactly_once",
        count,
        1_000,
        200_000,
        &out,
        2,
    );
    let id = client.submit_json(&job, None).await.expect("submit");
    checkpoints_pass(&client, &id, 2).await;
    // Checkpoint folders cannot be read (nor written) while the job restarts from one.
    faults.fail_reads("chk-");
    faults.fail_writes("chk-");
    cluster.stop_tm(0).await;
    let s = wait_until(&client, &id, 60, "a restart that met the outage", |s| {
        s.restarts >= 2
    })
    .await;
    assert!(
        s.failure.contains("injected read failure"),
        "the restart failed on the outage: {}",
        s.failure
    );
    faults.disarm();
    let s = client
        .wait(&id, Some(Duration::from_secs(90)))
        .await
        .expect("wait");
    assert_eq!(s.state, "FINISHED", "{}", s.failure);
    check_output(&read_committed(&out), count, 1_000, SEED).assert_exact(count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_frees_its_slots() {
    let cluster = InProcCluster::start(2, 2).await;
    let client = cluster.client().await;
    let out = cluster.dir.path().join("out");
    let job = count_job(
        "inproc-cancel",
        "exactly_once",
        50_000_000,
        1_000,
        100_000,
        &out,
        2,
    );
    let id = client.submit_json(&job, None).await.expect("submit");
    checkpoints_pass(&client, &id, 1).await;
    client.cancel(&id).await.expect("cancel");
    let s = client
        .wait(&id, Some(Duration::from_secs(30)))
        .await
        .expect("wait");
    assert_eq!(s.state, "CANCELED");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let tms = client.cluster().await.expect("cluster");
        if tms.iter().map(|t| t.free_slots).sum::<u32>() == 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slots not freed: {tms:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
