//! The `weir` command as a user runs it: the embedded default, and bad input of every kind
//! getting a clear error and a non-zero exit while the job manager keeps running.

mod common;

use common::*;
use std::process::Command;

fn weir_cmd(args: &[&str]) -> (bool, String) {
    let out = Command::new(weir()).args(args).output().expect("run weir");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs a count job (edited by `edit`) with `weir run` in a temp folder; returns the folder,
/// the sink's output folder and what the command printed, after checking it succeeded.
fn run_embedded(
    name: &str,
    count: u64,
    keys: u64,
    rate: u64,
    edit: impl FnOnce(String) -> String,
) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let job = dir.path().join("job.json");
    std::fs::write(
        &job,
        edit(count_job(name, "exactly_once", count, keys, rate, &out, 2)),
    )
    .unwrap();
    let state = dir.path().join("state");
    let (ok, text) = weir_cmd(&[
        "run",
        job.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    (dir, out, text)
}

#[test]
fn embedded_run_commits_exact_output() {
    let (_dir, out, text) = run_embedded("embedded", 200_000, 100, 0, |j| j);
    assert!(text.contains("FINISHED"), "{text}");
    let check = check_output(&read_committed(&out), 200_000, 100, 42);
    check.assert_exact(200_000);
    assert!(
        !out.join("_pending").exists()
            || std::fs::read_dir(out.join("_pending"))
                .unwrap()
                .next()
                .is_none(),
        "nothing left pending"
    );
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        "run",
        "jobmanager",
        "taskmanager",
        "submit",
        "list",
        "status",
        "cancel",
        "savepoint",
        "wait",
        "cluster",
    ] {
        let (ok, text) = weir_cmd(&[sub, "--help"]);
        assert!(ok && text.contains("Usage"), "{sub}: {text}");
    }
}

#[test]
fn unreachable_job_manager_is_a_clear_error() {
    let port = free_port();
    let (ok, text) = weir_cmd(&["list", "--jobmanager", &format!("http://127.0.0.1:{port}")]);
    assert!(!ok);
    assert!(text.contains("cannot reach the job manager"), "{text}");

    // A list of job managers none of which answers: every address and the flag are named.
    let other = free_port();
    let list = format!("127.0.0.1:{port},127.0.0.1:{other}");
    let (ok, text) = weir_cmd(&["list", "--jobmanager", &list]);
    assert!(!ok);
    assert!(text.contains("no leading job manager"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{other}")), "{text}");
    assert!(text.contains("--jobmanager"), "{text}");

    // A lease of 0 ms is refused before anything starts.
    let (ok, text) = weir_cmd(&["jobmanager", "--lease-ms", "0", "--bind", "127.0.0.1:0"]);
    assert!(!ok);
    assert!(text.contains("--lease-ms 0"), "{text}");
}

/// The probes a kubelet calls (`--admin-bind`): a job manager is ready once it leads and has
/// resumed its jobs; a task manager once registered, and not while its job manager is gone.
/// A bad or taken `--admin-bind` fails at once, naming the flag.
#[test]
fn probes_and_bad_admin_binds() {
    for sub in ["jobmanager", "taskmanager"] {
        for bad in ["localhost:8081", "8081", "127.0.0.1:99999"] {
            let (ok, text) = weir_cmd(&[sub, "--admin-bind", bad, "--bind", "127.0.0.1:0"]);
            assert!(!ok, "{sub} --admin-bind {bad}: {text}");
            assert!(text.contains(&format!("--admin-bind \"{bad}\"")), "{text}");
        }
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (ok, text) = weir_cmd(&["jobmanager", "--admin-bind", &addr, "--bind", "127.0.0.1:0"]);
    assert!(
        !ok && text.contains("--admin-bind") && text.contains(&addr),
        "{text}"
    );
    drop(taken);

    let dir = tempfile::tempdir().unwrap();
    let (jm_port, jm_admin, tm_admin) = (free_port(), free_port(), free_port());
    let jm_url = format!("http://127.0.0.1:{jm_port}");
    let wait_for = |port: u16, code: u16, what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let p = probe(port, "/readyz");
            if p.as_ref().is_some_and(|p| p.0 == code) {
                return p.map(|p| p.1).unwrap_or_default();
            }
            assert!(std::time::Instant::now() < deadline, "{what}: {p:?}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    // A task manager with no job manager yet: alive, not ready.
    let mut tm = Proc::spawn(
        "tm",
        &[
            "taskmanager",
            "--jobmanager",
            &jm_url,
            "--admin-bind",
            &format!("127.0.0.1:{tm_admin}"),
        ],
        &dir.path().join("tm.log"),
    );
    let body = wait_for(tm_admin, 503, "a task manager without a job manager");
    assert!(body.starts_with("unregistered"), "{body}");
    assert_eq!(probe(tm_admin, "/healthz").map(|p| p.0), Some(200));
    assert_eq!(probe(tm_admin, "/nope").map(|p| p.0), Some(404));

    let state = dir.path().join("state");
    let mut jm = Proc::spawn(
        "jm",
        &[
            "jobmanager",
            "--bind",
            &format!("127.0.0.1:{jm_port}"),
            "--state-dir",
            state.to_str().unwrap(),
            "--lease-ms",
            "3000",
            "--admin-bind",
            &format!("127.0.0.1:{jm_admin}"),
        ],
        &dir.path().join("jm.log"),
    );
    wait_for(jm_admin, 200, "the job manager leads");
    assert_eq!(probe(jm_admin, "/healthz").map(|p| p.0), Some(200));
    wait_for(tm_admin, 200, "the task manager registers");
    // The job manager gone: the task manager is no longer ready, and still alive.
    jm.kill9();
    let body = wait_for(tm_admin, 503, "the task manager lost its job manager");
    assert!(body.starts_with("unregistered"), "{body}");
    assert_eq!(probe(tm_admin, "/healthz").map(|p| p.0), Some(200));
    tm.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_jobs_are_refused_and_the_job_manager_keeps_running() {
    let mut cluster = TestCluster::new();
    cluster.start_tm(2);
    let client = cluster.wait_slots(2).await;
    let jm = cluster.jm_url();
    let dir = cluster.path("jobs");
    std::fs::create_dir_all(&dir).unwrap();
    let submit = |name: &str, body: &str| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        weir_cmd(&["submit", p.to_str().unwrap(), "--jobmanager", &jm])
    };
    let good = r#"{"name":"ok","operators":[{"id":"g","type":"generator","count":1000},{"id":"o","type":"blackhole_sink","inputs":[{"from":"g"}]}]}"#;
    let cases = [
        ("malformed.json", "{\"name\": \"x\", ".to_string(), "malformed job JSON"),
        ("unknown-op.json", good.replace("blackhole_sink", "teleport_sink"), "unknown variant `teleport_sink`"),
        (
            "unknown-column.json",
            good.replace(r#"{"id":"o""#, r#"{"id":"f","type":"filter","inputs":[{"from":"g"}],"predicate":"colour = 1"},{"id":"o""#)
                .replace(r#""inputs":[{"from":"g"}]}]"#, r#""inputs":[{"from":"f"}]}]"#),
            "colour",
        ),
        ("too-big.json", good.replace(r#""count":1000"#, r#""count":1000,"parallelism":3"#).replace(r#""type":"blackhole_sink","#, r#""type":"blackhole_sink","parallelism":3,"#), "needs 3 slots; the cluster has 2"),
        ("unwritable.json", good.replace(r#""name":"ok","#, r#""name":"ok","checkpoint":{"interval_ms":1000,"storage":"/proc/weir-no"},"#), "checkpoint storage"),
        (
            "missing-input.json",
            r#"{"name":"missing","operators":[{"id":"f","type":"file_source","path":"/tmp/weir-no-such-input/x.csv","format":"lines"},{"id":"o","type":"blackhole_sink","inputs":[{"from":"f"}]}]}"#.to_string(),
            "operator \"f\": the source path \"/tmp/weir-no-such-input/x.csv\" does not exist",
        ),
        // At-most-once needs a source that leases positions; a file source would re-emit.
        (
            "amo-file.json",
            r#"{"name":"amo","guarantee":"at_most_once","operators":[{"id":"f","type":"file_source","path":"/tmp","format":"lines"},{"id":"o","type":"blackhole_sink","inputs":[{"from":"f"}]}]}"#.to_string(),
            "file_source cannot give at_most_once",
        ),
    ];
    for (file, body, want) in cases {
        let (ok, text) = submit(file, &body);
        assert!(!ok, "{file} must fail: {text}");
        assert!(text.contains(want), "{file}: expected {want:?} in {text:?}");
    }
    // Still alive and still accepting good jobs.
    let (ok, text) = submit("good.json", good);
    assert!(ok, "{text}");
    let id = text.trim().to_string();
    let status = client
        .wait(&id, Some(std::time::Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(status.state, "FINISHED", "{}", status.failure);
    assert!(client.list().await.unwrap().iter().any(|j| j.job_id == id));
}

/// The embedded job with keyed state in RocksDB (the kill test with RocksDB is in cluster.rs).
#[cfg(feature = "rocksdb")]
#[test]
fn embedded_run_with_rocksdb_state() {
    let (_dir, out, _) = run_embedded("rocksdb", 300_000, 1000, 150_000, |j| {
        j.replace(
            r#""guarantee": "exactly_once","#,
            r#""guarantee": "exactly_once", "state_backend": "rocksdb","#,
        )
    });
    let check = check_output(&read_committed(&out), 300_000, 1000, 42);
    check.assert_exact(300_000);
}

/// Runs `script` (SQL) with `weir run` in `dir`; (success, output, seconds taken).
fn run_sql(dir: &std::path::Path, script: &str, env: &[(&str, &str)]) -> (bool, String, f64) {
    let file = dir.join("job.sql");
    std::fs::write(&file, script).unwrap();
    let started = std::time::Instant::now();
    let out = Command::new(weir())
        .current_dir(dir)
        .args(["run", file.to_str().unwrap(), "--progress", "0"])
        .envs(env.iter().copied())
        .output()
        .expect("run weir");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success(),
        strip_ansi(&text),
        started.elapsed().as_secs_f64(),
    )
}

/// Bad data, a value that cannot be cast and an expression that cannot run would fail again
/// after every restart: each fails the job at once (before: about 100 restarts over 51 s),
/// with its cause in `weir run`'s output.
#[test]
fn deterministic_failures_fail_the_job_at_once_with_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("a.csv"), "1,x\n2,abc\nthree,y\n").unwrap();
    let table = |types: &str| {
        format!(
            "CREATE TABLE f ({types}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
CREATE TABLE o (v BIGINT) WITH ('connector' = 'print');",
            input.display()
        )
    };
    let cases = [
        // A bad CSV value: "three" is no BIGINT.
        (
            format!("{}\nINSERT INTO o SELECT id FROM f;", table("id BIGINT, s VARCHAR")),
            "three",
        ),
        // A VARCHAR that cannot be a BIGINT, cast explicitly ('x' is the first row's).
        (
            format!(
                "{}\nINSERT INTO o SELECT CAST(s AS BIGINT) FROM f;",
                table("id VARCHAR, s VARCHAR")
            ),
            "'x'",
        ),
        // An expression that cannot run: integer division by zero.
        (
            format!(
                "{}\nINSERT INTO o SELECT CHAR_LENGTH(id) / (CHAR_LENGTH(s) - CHAR_LENGTH(s)) FROM f;",
                table("id VARCHAR, s VARCHAR")
            ),
            "ivide by zero",
        ),
    ];
    for (script, cause) in cases {
        let (ok, text, secs) = run_sql(dir.path(), &script, &[]);
        eprintln!("{cause}: failed after {secs:.1} s");
        assert!(!ok, "{script}: {text}");
        assert!(text.contains("FAILED"), "{text}");
        assert!(text.contains(cause), "expected {cause:?} in {text}");
        assert!(text.contains("not restarted"), "{text}");
        assert!(!text.contains("restarts 1"), "{text}");
        assert!(secs < 5.0, "{cause}: took {secs:.1} s to fail");
    }
}

/// The notification that the final checkpoint completed (after the sources ended) is lost
/// once (a failpoint in the job manager): it is sent again, the sinks commit, and the job
/// finishes with its output exact (before, the job waited for ever).
#[test]
fn a_lost_final_commit_notice_is_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let job = dir.path().join("job.json");
    std::fs::write(
        &job,
        count_job("lost-notice", "exactly_once", 100_000, 100, 0, &out, 2),
    )
    .unwrap();
    let state = dir.path().join("state");
    let started = std::time::Instant::now();
    let res = Command::new(weir())
        .args([
            "run",
            job.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ])
        .env("WEIR_FAILPOINTS", "jm_final_notify=drop")
        .output()
        .expect("run weir");
    let text = strip_ansi(&format!(
        "{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    ));
    assert!(res.status.success(), "{text}");
    assert!(text.contains("FINISHED"), "{text}");
    assert!(
        text.contains("failpoint hit: dropping the message"),
        "the failpoint never fired: {text}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    check_output(&read_committed(&out), 100_000, 100, 42).assert_exact(100_000);
}

/// The progress line of `weir run` speaks plainly: the last checkpoint as a number (or "none
/// yet"), records per second, no Rust debug formatting (it printed `(last Some(2))`).
#[test]
fn the_progress_line_has_no_debug_formatting() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let job = dir.path().join("job.json");
    std::fs::write(
        &job,
        count_job("progress", "exactly_once", 300_000, 100, 100_000, &out, 2),
    )
    .unwrap();
    let state = dir.path().join("state");
    let (ok, text) = weir_cmd(&[
        "run",
        job.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--progress",
        "1",
    ]);
    assert!(ok, "{text}");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("records from sources"))
        .collect();
    assert!(!lines.is_empty(), "no progress line in {text}");
    for l in &lines {
        assert!(!l.contains("Some(") && !l.contains("None"), "{l}");
        assert!(l.contains("/s)"), "no rate in {l}");
        assert!(l.contains("(last ") || l.contains("(none yet)"), "{l}");
    }
}
