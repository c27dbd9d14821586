//! Test harness: real `weir` processes on 127.0.0.1, killed for real with SIGKILL, and
//! readers of the committed output that check it record by record.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weir_client::Client;

pub mod inproc;
pub mod kafka;
pub mod kafka_jobs;
pub mod kafka_raw;
pub mod pg;
pub mod s3;
pub mod sqlrun;

/// The `weir` binary the tests start: the one cargo built, or `WEIR_TEST_BIN` (to loop a test
/// on frozen binaries while the workspace is rebuilt).
pub fn weir() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("WEIR_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_weir").to_string())
    })
}

/// The leader lease of the job managers a [`TestCluster`] starts (`--lease-ms`): a restarted
/// job manager waits it out. Not shorter: the suite loads both cores (busy tasks, 250 000
/// records/s), and a leader whose renewal is late by two thirds of a lease steps down.
pub const TEST_LEASE_MS: &str = "8000";

/// GET `path` on an admin port (`--admin-bind`) over plain HTTP/1.1: the status code and
/// the body, or None if nothing answers (what a kubelet's httpGet probe sees).
pub fn probe(port: u16, path: &str) -> Option<(u16, String)> {
    probe_at([127, 0, 0, 1], port, path)
}

/// [`probe`] on another loopback address (a "pod IP" of 127.0.0.x).
pub fn probe_at(ip: [u8; 4], port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from((ip, port)),
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((code, body))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process, killed (SIGKILL) when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
}

impl Proc {
    pub fn spawn(name: &str, args: &[&str], log: &Path) -> Proc {
        Self::spawn_env(name, args, log, &[])
    }

    /// As [`Proc::spawn`], with extra environment variables (e.g. `WEIR_FAILPOINTS`).
    pub fn spawn_env(name: &str, args: &[&str], log: &Path, env: &[(&str, &str)]) -> Proc {
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(weir())
            .args(args)
            .envs(env.iter().copied())
            .env("WEIR_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn weir");
        Proc {
            name: name.to_string(),
            child,
        }
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A job manager and task managers as separate OS processes.
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub jm_port: u16,
    /// The job manager's `--admin-bind` port (probes).
    pub admin_port: u16,
    pub jm: Option<Proc>,
    pub tms: Vec<Proc>,
    tm_count: usize,
    /// Environment every process of the cluster gets (e.g. S3 credentials).
    env: Vec<(String, String)>,
}

impl TestCluster {
    pub fn new() -> Self {
        Self::with_env(&[])
    }

    /// A cluster whose processes all get `env`.
    pub fn with_env(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = TestCluster {
            dir,
            jm_port: free_port(),
            admin_port: free_port(),
            jm: None,
            tms: vec![],
            tm_count: 0,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        c.start_jm();
        c
    }

    /// The cluster's environment plus `extra`, owned (so `self` stays free to change).
    fn env_with(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        self.env
            .iter()
            .cloned()
            .chain(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .collect()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn jm_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.jm_port)
    }

    pub fn start_jm(&mut self) {
        let state = self.path("state");
        let log = self.path(&format!("jm-{}.log", free_port()));
        let port = self.jm_port.to_string();
        let env = self.env_with(&[]);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.jm = Some(Proc::spawn_env(
            "jobmanager",
            &[
                "jobmanager",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--state-dir",
                state.to_str().expect("utf8"),
                // A restarted job manager waits out its predecessor's lease: short in tests.
                "--lease-ms",
                TEST_LEASE_MS,
                "--admin-bind",
                &format!("127.0.0.1:{}", self.admin_port),
            ],
            &log,
            &env,
        ));
    }

    pub fn kill_jm(&mut self) {
        if let Some(mut jm) = self.jm.take() {
            jm.kill9();
        }
    }

    /// Starts a task manager; returns its index in `tms`.
    pub fn start_tm(&mut self, slots: u32) -> usize {
        self.start_tm_env(slots, &[])
    }

    /// Starts a task manager with extra environment variables; returns its index in `tms`.
    pub fn start_tm_env(&mut self, slots: u32, env: &[(&str, &str)]) -> usize {
        self.tm_count += 1;
        let id = format!("tm-{}", self.tm_count);
        let log = self.path(&format!("{id}.log"));
        let env = self.env_with(env);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let proc = Proc::spawn_env(
            &id,
            &[
                "taskmanager",
                "--jobmanager",
                &self.jm_url(),
                "--slots",
                &slots.to_string(),
                "--id",
                &id,
            ],
            &log,
            &env,
        );
        self.tms.push(proc);
        self.tms.len() - 1
    }

    pub fn kill_tm(&mut self, i: usize) {
        self.tms[i].kill9();
    }

    pub async fn client(&self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Client::connect(&self.jm_url()).await {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => {
                    self.dump_logs();
                    panic!("job manager did not come up: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn wait_slots(&self, slots: u32) -> Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let c = self.client().await;
            if let Ok(tms) = c.cluster().await {
                if tms.iter().map(|t| t.slots).sum::<u32>() >= slots {
                    return c;
                }
            }
            assert!(Instant::now() < deadline, "task managers did not register");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Prints the processes' logs (for a failing test's output).
    pub fn dump_logs(&self) {
        dump_logs_in(self.dir.path(), 40);
    }
}

/// Prints the last `lines` lines of every `*.log` in `dir` (for a failing test's output).
pub fn dump_logs_in(dir: &Path, lines: usize) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(lines).collect();
                eprintln!("==== {} (last {lines} lines)", p.display());
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// Waits until job `id` ends and asserts it FINISHED; otherwise prints every process's log
/// and panics with the state and failure.
pub async fn wait_finished(
    cluster: &TestCluster,
    client: &Client,
    id: &str,
    secs: u64,
) -> weir_client::JobStatus {
    let s = match client.wait(id, Some(Duration::from_secs(secs))).await {
        Ok(s) => s,
        Err(e) => {
            cluster.dump_logs();
            panic!("job did not end: {e}");
        }
    };
    if s.state != "FINISHED" {
        cluster.dump_logs();
        panic!("job ended {}: {}", s.state, s.failure);
    }
    s
}

/// Polls the job's status until `pred` holds (or panics after `secs`).
pub async fn wait_until(
    client: &Client,
    job: &str,
    secs: u64,
    what: &str,
    pred: impl Fn(&weir_client::JobStatus) -> bool,
) -> weir_client::JobStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(s) = client.status(job).await {
            if pred(&s) {
                return s;
            }
            assert!(
                !s.state.is_terminal() || pred(&s),
                "job ended ({}) while waiting for {what}: {}",
                s.state,
                s.failure
            );
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the job has completed `n` more checkpoints than now (so it is mid-run).
pub async fn checkpoints_pass(client: &Client, id: &str, n: usize) {
    let now = client
        .status(id)
        .await
        .map(|s| completed_checkpoints(&s))
        .unwrap_or(0);
    wait_until(client, id, 60, "checkpoints", |s| {
        s.state == "RUNNING" && completed_checkpoints(s) >= now + n
    })
    .await;
}

/// The id of the job's newest completed checkpoint (0 before the first): it grows with every
/// completed checkpoint, unlike a count over the status's history, which keeps only the
/// newest entries and stops growing once full.
pub fn completed_checkpoints(s: &weir_client::JobStatus) -> usize {
    s.checkpoints
        .iter()
        .filter(|c| c.state == "COMPLETED" && !c.savepoint)
        .map(|c| c.checkpoint_id as usize)
        .max()
        .unwrap_or(0)
}

/// The job JSON used by the kill tests: generator -> hash(key) -> running count -> project
/// (id, key, n) -> file sink (CSV), all at `parallelism`, checkpoints every second.
pub fn count_job(
    name: &str,
    guarantee: &str,
    count: u64,
    keys: u64,
    rate: u64,
    out: &Path,
    parallelism: u32,
) -> String {
    let sink = format!(
        r#""type": "file_sink", "path": "{}", "format": "csv""#,
        out.display()
    );
    count_job_into(name, guarantee, count, keys, rate, &sink, parallelism)
}

/// [`count_job`] with another sink: `sink` is the sink operator's JSON fields after its id
/// (`"type": …` and the sink's settings).
pub fn count_job_into(
    name: &str,
    guarantee: &str,
    count: u64,
    keys: u64,
    rate: u64,
    sink: &str,
    parallelism: u32,
) -> String {
    format!(
        r#"{{
  "name": "{name}",
  "guarantee": "{guarantee}",
  "checkpoint": {{ "interval_ms": 1000 }},
  "restart": {{ "fixed_delay": {{ "attempts": 10, "delay_ms": 200 }} }},
  "operators": [
    {{ "id": "events", "type": "generator", "parallelism": 2, "count": {count}, "keys": {keys}, "rate": {rate}, "seed": 42 }},
    {{ "id": "counts", "type": "keyed_aggregate", "parallelism": {parallelism},
       "inputs": [{{ "from": "events", "partition": {{ "hash": ["key"] }} }}],
       "keys": ["key"], "aggregates": [{{ "fn": "count", "as": "n" }}] }},
    {{ "id": "slim", "type": "project", "parallelism": {parallelism}, "inputs": [{{ "from": "counts" }}],
       "exprs": [{{ "expr": "id", "as": "id" }}, {{ "expr": "key", "as": "key" }}, {{ "expr": "n", "as": "n" }}] }},
    {{ "id": "out", "parallelism": {parallelism}, "inputs": [{{ "from": "slim" }}], {sink} }}
  ]
}}"#
    )
}

/// The committed part files (top-level `part-*`) of a file sink folder, in name order.
pub fn committed_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("part-"))
        })
        .collect();
    files.sort();
    files
}

/// Every line of the committed part files of a CSV or JSON-lines sink folder (CSV part files
/// have no header line, as Flink's).
pub fn committed_lines(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for f in committed_files(dir) {
        let file = std::fs::File::open(&f).expect("open part");
        for line in BufReader::new(file).lines() {
            let line = line.expect("read part");
            if !line.is_empty() {
                lines.push(line);
            }
        }
    }
    lines
}

/// Rows (id, key, n) of every committed part file (top-level `part-*`) of a CSV sink folder.
pub fn read_committed(dir: &Path) -> Vec<(i64, i64, i64)> {
    committed_lines(dir)
        .iter()
        .map(|line| {
            let mut it = line.split(',').map(|x| x.parse::<i64>().expect("number"));
            (
                it.next().expect("id"),
                it.next().expect("key"),
                it.next().expect("n"),
            )
        })
        .collect()
}

/// What `weir run` printed (stdout then stderr, colour codes removed), whether it succeeded,
/// and how long it took.
pub struct RunOutput {
    pub ok: bool,
    pub text: String,
    pub took: Duration,
}

/// Runs the JSON job `job` embedded (`weir run`), its file and state folder in `dir`.
pub fn weir_run(dir: &Path, job: &str) -> RunOutput {
    weir_run_env(dir, job, &[])
}

/// [`weir_run`] with extra environment variables (an S3 endpoint and credentials).
pub fn weir_run_env(dir: &Path, job: &str, env: &[(&str, &str)]) -> RunOutput {
    let path = dir.join("job.json");
    std::fs::write(&path, job).expect("write job");
    let started = Instant::now();
    let out = Command::new(weir())
        .args(["run", path.to_str().expect("utf8 path"), "--state-dir"])
        .arg(dir.join("state"))
        .envs(env.iter().copied())
        .output()
        .expect("run weir");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    RunOutput {
        ok: out.status.success(),
        text: strip_ansi(&text),
        took: started.elapsed(),
    }
}

/// Text without its terminal colour codes (`ESC [ … m`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The generator's key function, written out again here so the check does not trust the
/// engine's own code: MurmurHash3 fmix64 of `id ^ rotl(seed, 17)`, modulo `keys`.
pub fn expected_key(id: u64, seed: u64, keys: u64) -> i64 {
    let mut k = id ^ seed.rotate_left(17);
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    (k % keys) as i64
}

pub struct OutputCheck {
    pub rows: usize,
    pub distinct_ids: usize,
    pub missing: usize,
    pub duplicated: usize,
    /// Keys whose running counts are not exactly 1..=N (N = events of that key).
    pub bad_counts: usize,
}

impl OutputCheck {
    /// Every one of `count` events exactly once, and every key's running counts exactly 1..=N.
    pub fn assert_exact(&self, count: u64) {
        assert_eq!(
            (
                self.rows as u64,
                self.missing,
                self.duplicated,
                self.bad_counts
            ),
            (count, 0, 0, 0),
            "(rows, missing, duplicated, keys with wrong counts)"
        );
    }
}

/// Checks the committed output of a count job against what `count` events must produce.
pub fn check_output(rows: &[(i64, i64, i64)], count: u64, keys: u64, seed: u64) -> OutputCheck {
    let mut seen = vec![0u32; count as usize];
    let mut per_key: HashMap<i64, Vec<i64>> = HashMap::new();
    for &(id, key, n) in rows {
        assert!(id >= 0 && (id as u64) < count, "id {id} out of range");
        assert_eq!(
            key,
            expected_key(id as u64, seed, keys),
            "wrong key for id {id}"
        );
        seen[id as usize] += 1;
        per_key.entry(key).or_default().push(n);
    }
    let mut expected_per_key: BTreeMap<i64, i64> = BTreeMap::new();
    for id in 0..count {
        *expected_per_key
            .entry(expected_key(id, seed, keys))
            .or_default() += 1;
    }
    let mut bad_counts = 0;
    for (key, expected) in &expected_per_key {
        let mut ns = per_key.remove(key).unwrap_or_default();
        ns.sort_unstable();
        if ns != (1..=*expected).collect::<Vec<_>>() {
            bad_counts += 1;
        }
    }
    OutputCheck {
        rows: rows.len(),
        distinct_ids: seen.iter().filter(|c| **c > 0).count(),
        missing: seen.iter().filter(|c| **c == 0).count(),
        duplicated: seen.iter().filter(|c| **c > 1).count(),
        bad_counts,
    }
}

/// For a failing output check: which committed part files hold the duplicated ids (file names
/// carry the subtask and attempt), as (files, ids) sorted by count; printed by the tests.
pub fn duplicate_sources(dir: &Path) -> Vec<(Vec<String>, usize)> {
    let mut by_id: HashMap<i64, Vec<String>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with("part-") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        for line in text
            .lines()
            .filter(|l| !l.starts_with("id,") && !l.is_empty())
        {
            if let Some(Ok(id)) = line.split(',').next().map(str::parse::<i64>) {
                by_id.entry(id).or_default().push(name.clone());
            }
        }
    }
    let mut groups: HashMap<Vec<String>, usize> = HashMap::new();
    for (_, mut files) in by_id.into_iter().filter(|(_, f)| f.len() > 1) {
        files.sort();
        *groups.entry(files).or_default() += 1;
    }
    let mut out: Vec<_> = groups.into_iter().collect();
    out.sort_by_key(|g| std::cmp::Reverse(g.1));
    out
}

/// Mid-run task-manager failure: waits until the job is running with `n` completed
/// checkpoints, kills task manager `tm` with SIGKILL, starts a replacement with `slots` slots,
/// and waits until the job has restarted.
pub async fn kill_tm_mid_run(
    cluster: &mut TestCluster,
    client: &Client,
    id: &str,
    n: usize,
    tm: usize,
    slots: u32,
) {
    wait_until(client, id, 60, "checkpoints", |s| {
        s.state == "RUNNING" && completed_checkpoints(s) >= n
    })
    .await;
    cluster.kill_tm(tm);
    cluster.start_tm(slots);
    wait_until(client, id, 60, "restart", |s| s.restarts >= 1).await;
}
