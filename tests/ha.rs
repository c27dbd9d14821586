//! Several job managers on one state dir (issue 17): exactly one leads and drives the jobs,
//! the others stand by and take over when the leader dies or freezes; the output stays
//! exactly-once throughout. Real `weir` processes on 127.0.0.1, killed with SIGKILL and
//! frozen with SIGSTOP.

mod common;

use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use weir_client::Client;

const SEED: u64 = 42;
/// The lease of the job managers here: short, so failovers are quick, but with room for a
/// loaded machine (a leader steps down two thirds of a lease after its last renewal).
const LEASE_MS: &str = "4500";
const KEYS: u64 = 10_000;

/// Job managers sharing `state`, and task managers.
struct Ha {
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    /// Each job manager's `--admin-bind` port (probes).
    admin: Vec<u16>,
    jms: Vec<Option<Proc>>,
    tms: Vec<Proc>,
    starts: usize,
}

impl Ha {
    fn new(jms: usize) -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            ports: (0..jms).map(|_| free_port()).collect(),
            admin: (0..jms).map(|_| free_port()).collect(),
            jms: (0..jms).map(|_| None).collect(),
            tms: Vec::new(),
            starts: 0,
        }
    }

    fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    /// Every job manager's address, as a comma list (what a Service of several pods is).
    fn urls(&self) -> String {
        (0..self.ports.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    fn start_jm(&mut self, i: usize) {
        self.starts += 1;
        let log = self.log_path(&format!("jm{i}-{}", self.starts));
        let state = self.dir.path().join("state");
        let bind = format!("127.0.0.1:{}", self.ports[i]);
        let id = format!("jm{i}-{}", self.starts);
        self.jms[i] = Some(Proc::spawn(
            &id,
            &[
                "jobmanager",
                "--bind",
                &bind,
                "--state-dir",
                state.to_str().expect("utf8"),
                "--lease-ms",
                LEASE_MS,
                "--id",
                &id,
                "--admin-bind",
                &format!("127.0.0.1:{}", self.admin[i]),
            ],
            &log,
        ));
    }

    /// Job manager `i`'s readiness probe: its status code and body (None: no answer).
    fn ready(&self, i: usize) -> Option<(u16, String)> {
        probe(self.admin[i], "/readyz")
    }

    fn start_tm(&mut self, jobmanager: &str, slots: u32) {
        let id = format!("tm-{}", self.tms.len());
        let log = self.log_path(&id);
        self.tms.push(Proc::spawn(
            &id,
            &[
                "taskmanager",
                "--jobmanager",
                jobmanager,
                "--slots",
                &slots.to_string(),
                "--id",
                &id,
            ],
            &log,
        ));
    }

    fn pid(&self, i: usize) -> u32 {
        self.jms[i].as_ref().expect("running").child.id()
    }

    fn signal(&self, i: usize, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.pid(i).to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig}");
    }

    /// Everything job manager `i`'s processes logged, across restarts.
    fn jm_log(&self, i: usize) -> String {
        let mut text = String::new();
        for e in std::fs::read_dir(self.dir.path()).expect("dir").flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("jm{i}-")) && name.ends_with(".log") {
                text += &strip_ansi(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        text
    }

    fn dump_logs(&self) {
        dump_logs_in(self.dir.path(), 60);
    }

    /// A client of whichever job manager leads (retrying until one does).
    async fn client(&self, addrs: &str, secs: u64) -> Client {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            match Client::connect(addrs).await {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => {
                    self.dump_logs();
                    panic!("no job manager leads at {addrs}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn wait_slots(&self, addrs: &str, slots: u32) -> Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let c = self.client(addrs, 30).await;
            if let Ok(tms) = c.cluster().await {
                if tms.iter().map(|t| t.slots).sum::<u32>() >= slots {
                    return c;
                }
            }
            assert!(Instant::now() < deadline, "task managers did not register");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Waits for the job to finish (asking whoever leads), then checks the output record by
    /// record.
    async fn finish_and_check(&self, id: &str, count: u64) -> weir_client::JobStatus {
        let deadline = Instant::now() + Duration::from_secs(240);
        let status = loop {
            let c = self.client(&self.urls(), 60).await;
            if let Ok(s) = c.status(id).await {
                if s.state.is_terminal() {
                    break s;
                }
            }
            if Instant::now() > deadline {
                self.dump_logs();
                panic!("job {id} did not end");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        if status.state != "FINISHED" {
            self.dump_logs();
            panic!("job ended {}: {}", status.state, status.failure);
        }
        let rows = read_committed(&self.out());
        let check = check_output(&rows, count, KEYS, SEED);
        eprintln!(
            "{} rows, {} distinct ids of {count}, {} missing, {} duplicated, {} bad counts, attempt {}",
            check.rows,
            check.distinct_ids,
            check.missing,
            check.duplicated,
            check.bad_counts,
            status.attempt
        );
        if check.duplicated > 0 || check.missing > 0 || check.bad_counts > 0 {
            self.dump_logs();
        }
        check.assert_exact(count);
        status
    }
}

/// Job manager 0 leading, job manager 1 standing by, `tms` task managers of 2 slots given
/// both addresses, and the 3 M-event count job running with 3 checkpoints completed.
async fn leader_standby_and_a_running_job(name: &str, tms: u32) -> (Ha, String, u64) {
    let count = 3_000_000;
    let mut ha = Ha::new(2);
    ha.start_jm(0);
    ha.client(&ha.url(0), 30).await;
    ha.start_jm(1);
    let urls = ha.urls();
    for _ in 0..tms {
        ha.start_tm(&urls, 2);
    }
    let client = ha.wait_slots(&urls, 2 * tms).await;
    let job = count_job(name, "exactly_once", count, KEYS, 200_000, &ha.out(), 2);
    let id = client.submit_json(&job, None).await.expect("submit");
    checkpoints_pass(&client, &id, 3).await;
    (ha, id, count)
}

/// The scenario of the issue: a second job manager started on the same state dir while the
/// first runs a job, each with a task manager of its own (what a Deployment's rolling update
/// does). Before leader election both drove the job and 2 249 250 of 3 000 000 ids were
/// committed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_job_manager_on_the_same_state_dir_stands_by() {
    let count = 3_000_000;
    let mut ha = Ha::new(2);
    ha.start_jm(0);
    ha.start_tm(&ha.url(0), 4);
    let client = ha.wait_slots(&ha.url(0), 4).await;
    let job = count_job(
        "second-jm",
        "exactly_once",
        count,
        KEYS,
        250_000,
        &ha.out(),
        2,
    );
    let id = client.submit_json(&job, None).await.expect("submit");
    tokio::time::sleep(Duration::from_secs(4)).await;
    ha.start_jm(1);
    ha.start_tm(&ha.url(1), 4);

    // The second one stands by, naming the leader; a client given only the standby is sent
    // on to the leader.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ha.jm_log(1).contains("standby for") {
        assert!(
            Instant::now() < deadline,
            "the second job manager never stood by"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let standby = ha.jm_log(1);
    assert!(standby.contains("leader jm0-1 epoch 1"), "{standby}");
    let via_standby = ha.client(&ha.url(1), 10).await;
    assert!(
        via_standby.status(&id).await.is_ok(),
        "the standby points at the leader"
    );

    let status = ha.finish_and_check(&id, count).await;
    assert_eq!(status.attempt, 1, "the job was never restarted");
    let standby = ha.jm_log(1);
    assert!(standby.contains("standby for"), "{standby}");
    assert!(
        !standby.contains("leader for"),
        "the second job manager must not lead"
    );
}

/// kill -9 of the leader mid-run: the standby takes over within the lease, the task
/// managers follow it, and the job resumes from its last checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_when_the_leader_is_killed() {
    let (mut ha, id, count) = leader_standby_and_a_running_job("leader-kill", 2).await;

    assert_eq!(ha.ready(0).map(|p| p.0), Some(200), "the leader is ready");
    let standby = ha.ready(1).expect("the standby's probe answers");
    assert!(
        standby.0 == 503 && standby.1.starts_with("standby"),
        "{standby:?}"
    );

    let killed = Instant::now();
    ha.jms[0].take().expect("leader").kill9();
    let client = ha.client(&ha.url(1), 30).await;
    let new_leader = killed.elapsed();
    wait_until(&client, &id, 60, "resumed", |s| {
        s.state == "RUNNING" && s.attempt >= 2
    })
    .await;
    let running = killed.elapsed();
    eprintln!("new leader after {new_leader:?}, job running again after {running:?}");
    // The new leader's probe turns ready once it has resumed the job.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ha.ready(1).map(|p| p.0) != Some(200) {
        assert!(Instant::now() < deadline, "never ready: {:?}", ha.ready(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = ha.finish_and_check(&id, count).await;
    assert!(status.attempt >= 2);
    assert!(ha.jm_log(1).contains("leader for"));
}

/// SIGSTOP of the leader for longer than its lease, then SIGCONT: the standby has taken over
/// meanwhile, and the old leader steps down on waking instead of driving the job again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_past_its_lease_steps_down() {
    let (ha, id, count) = leader_standby_and_a_running_job("leader-freeze", 2).await;

    ha.signal(0, "-STOP");
    let client = ha.client(&ha.url(1), 30).await;
    wait_until(&client, &id, 60, "resumed", |s| {
        s.state == "RUNNING" && s.attempt >= 2
    })
    .await;
    ha.signal(0, "-CONT");
    let status = ha.finish_and_check(&id, count).await;
    assert!(status.attempt >= 2);
    let old = ha.jm_log(0);
    assert!(old.contains("lost the leadership"), "{old}");

    // Nothing the frozen job manager had in flight completed after the takeover: every
    // `_metadata` of its attempt is at or below the checkpoint the next attempt restored.
    let state = ha.dir.path().join("state");
    let attempts = state.join(format!("jobs/{id}/attempts"));
    let mut restores: Vec<(u64, Option<u64>)> = std::fs::read_dir(&attempts)
        .expect("attempt records")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".restore"))
        .map(|e| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path()).expect("read")).expect("json");
            (
                v["attempt"].as_u64().expect("attempt"),
                v["checkpoint"].as_u64(),
            )
        })
        .collect();
    restores.sort();
    let takeover = restores
        .iter()
        .find(|r| r.0 >= 2)
        .and_then(|r| r.1)
        .expect("the takeover restored a checkpoint");
    let mut seen = 0;
    for e in std::fs::read_dir(state.join(format!("checkpoints/{id}")))
        .expect("checkpoints")
        .flatten()
    {
        let Ok(bytes) = std::fs::read(e.path().join("_metadata")) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("metadata");
        if v["attempt"].as_u64() == Some(1) {
            seen += 1;
            let n = v["checkpoint_id"].as_u64().expect("id");
            assert!(
                n <= takeover,
                "checkpoint {n} of the deposed attempt completed after the takeover from {takeover}"
            );
        }
    }
    eprintln!("takeover restored checkpoint {takeover}; {seen} checkpoints of attempt 1 remain");
}

/// Waits up to `secs` for a process to exit; its exit code.
fn exit_code(p: &mut Proc, secs: u64) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = p.child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// SIGTERM of the leader (what a rolling update does first): it gives its lease up on the way
/// out, so the standby leads at its next read instead of after a whole lease; a task manager
/// told SIGTERM cancels its tasks and exits 0 within 10 s. The job goes on, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_the_lead_over_at_once() {
    let (mut ha, id, count) = leader_standby_and_a_running_job("sigterm", 3).await;

    let termed = Instant::now();
    ha.signal(0, "-TERM");
    let mut old = ha.jms[0].take().expect("leader");
    let code = exit_code(&mut old, 10);
    assert_eq!(code, Some(0), "the leader exits 0 on SIGTERM");
    ha.client(&ha.url(1), 30).await;
    let handed_over = termed.elapsed();
    eprintln!("SIGTERM of the leader: the standby leads after {handed_over:?}");
    assert!(
        handed_over < Duration::from_millis(LEASE_MS.parse().expect("ms")),
        "the standby waited out the lease ({handed_over:?}): it was not released"
    );
    assert!(ha.jm_log(0).contains("released the leadership"));

    // A task manager running the job's tasks, told SIGTERM: it stops them and exits 0; the
    // job restarts on the other two.
    let client = ha.client(&ha.url(1), 30).await;
    checkpoints_pass(&client, &id, 2).await;
    let pid = ha.tms[0].child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let code = exit_code(&mut ha.tms[0], 10);
    assert_eq!(
        code,
        Some(0),
        "a task manager exits 0 within 10 s of SIGTERM"
    );
    let status = ha.finish_and_check(&id, count).await;
    assert!(status.attempt >= 2);
}

/// Two job managers started at the same instant on an empty state dir: exactly one leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_job_managers_started_at_once_exactly_one_leads() {
    let mut ha = Ha::new(2);
    ha.start_jm(0);
    ha.start_jm(1);
    ha.client(&ha.urls(), 30).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Exactly one is ready (what a Service routes to); the other's probe says it stands by.
    let probes: Vec<Option<(u16, String)>> = (0..2).map(|i| ha.ready(i)).collect();
    let ready: Vec<usize> = (0..2)
        .filter(|i| probes[*i].as_ref().is_some_and(|p| p.0 == 200))
        .collect();
    assert_eq!(ready.len(), 1, "ready: {probes:?}");
    let other = probes[1 - ready[0]].clone().expect("the standby answers");
    assert!(
        other.0 == 503 && other.1.starts_with("standby"),
        "the standby's /readyz: {other:?}"
    );
    for i in 0..2 {
        assert_eq!(probe(ha.admin[i], "/healthz").map(|p| p.0), Some(200));
    }
    let leaders: Vec<usize> = (0..2)
        .filter(|i| ha.jm_log(*i).contains("leader for"))
        .collect();
    let standbys: Vec<usize> = (0..2)
        .filter(|i| ha.jm_log(*i).contains("standby for"))
        .collect();
    if leaders.len() != 1 || standbys.len() != 1 {
        ha.dump_logs();
    }
    assert_eq!(leaders.len(), 1, "leaders: {leaders:?}");
    assert_eq!(standbys.len(), 1, "standbys: {standbys:?}");
    assert_ne!(leaders, standbys);
    assert_eq!(leaders, ready, "the ready one is the one that leads");
}

/// The leader's state dir stops taking writes (the `FailingStore`, injected into a job
/// manager running in this process): it stops leading before its lease can expire, says so,
/// and leads again once the storage is back and the lease has run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_storage_fails_steps_down_before_its_lease_expires() {
    let lease = Duration::from_millis(6000);
    let dir = tempfile::tempdir().expect("tempdir");
    let (storage, switch) =
        weir_storage::Storage::open_failing(dir.path().to_str().expect("utf8")).expect("store");
    let mut cfg = weir_jobmanager::JobManagerConfig::new(dir.path().to_str().expect("utf8"));
    cfg.lease = Some(lease);
    cfg.state_store = Some(storage);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let jm = tokio::spawn(weir_jobmanager::run(cfg, listener, None, shutdown.clone()));

    let leads = |addr: String| async move {
        match Client::connect(&addr).await {
            Ok(c) => c.list().await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while leads(addr.clone()).await.is_err() {
        assert!(Instant::now() < deadline, "the job manager never led");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    switch.fail_writes("leader/");
    let failed = Instant::now();
    let refusal = loop {
        if let Err(e) = leads(addr.clone()).await {
            break e;
        }
        assert!(
            failed.elapsed() < lease,
            "still leading a whole lease after its storage failed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stepped_down = failed.elapsed();
    assert!(
        refusal.contains("lost the leadership") || refusal.contains("standby"),
        "{refusal}"
    );
    eprintln!("stepped down {stepped_down:?} after its storage failed (lease {lease:?})");

    switch.disarm();
    let deadline = Instant::now() + lease * 3;
    while leads(addr.clone()).await.is_err() {
        assert!(Instant::now() < deadline, "never led again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "led again {:?} after the storage came back",
        failed.elapsed() - stepped_down
    );
    shutdown.cancel();
    let _ = jm.await;
}
