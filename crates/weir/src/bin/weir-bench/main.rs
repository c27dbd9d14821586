//! A Nexmark-style throughput harness: runs generator pipelines on the embedded default and
//! on a 2-task-manager cluster, each with checkpoints off and every second (exactly-once), and
//! prints events per second per core (events / CPU-seconds of every Weir process), wall
//! throughput, and the peak RSS of each process. Build with `--release`.
//!
//! ```sh
//! cargo run --release -p weir --bin weir-bench -- --events 50000000 --runs 3
//! ```
//!
//! With `--kafka HOST:PORT` (build with `--features kafka`) it measures Kafka → Kafka instead
//! (see `kafka.rs`); `--broker-pid PID` adds the broker's CPU time to the report.

#[cfg(feature = "kafka")]
mod kafka;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Usage {
    cpu_secs: f64,
    peak_rss_mb: f64,
}

/// CPU time and peak RSS of a live process, from /proc.
fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(Usage {
        cpu_secs: ticks / 100.0,
        peak_rss_mb: hwm_kb / 1024.0,
    })
}

fn weir() -> PathBuf {
    let me = std::env::current_exe().expect("current exe");
    me.with_file_name("weir")
}

fn job(kind: &str, events: u64, checkpoint_ms: u64, parallelism: u32, dir: &Path) -> String {
    let storage = dir.join("checkpoints");
    let middle = match kind {
        "passthrough" => String::new(),
        "filter" => format!(
            r#"{{"id":"f","type":"filter","parallelism":{parallelism},"inputs":[{{"from":"events"}}],"predicate":"value % 2 = 0"}},"#
        ),
        "keyed-count" => format!(
            r#"{{"id":"f","type":"keyed_aggregate","parallelism":{parallelism},"inputs":[{{"from":"events","partition":{{"hash":["key"]}}}}],"keys":["key"],"aggregates":[{{"fn":"count","as":"n"}}]}},"#
        ),
        other => panic!("unknown pipeline {other}"),
    };
    let sink_input = if kind == "passthrough" { "events" } else { "f" };
    format!(
        r#"{{"name":"bench-{kind}","checkpoint":{{"interval_ms":{checkpoint_ms},"storage":"{}"}},
"operators":[{{"id":"events","type":"generator","parallelism":{parallelism},"count":{events},"keys":100000,"partitions":32}},
{middle}
{{"id":"sink","type":"blackhole_sink","parallelism":{parallelism},"inputs":[{{"from":"{sink_input}"}}]}}]}}"#,
        storage.display()
    )
}

struct Outcome {
    wall: f64,
    cpu: f64,
    peak_mb: Vec<(String, f64)>,
}

fn spawn(args: &[&str], quiet: bool) -> Child {
    Command::new(weir())
        .args(args)
        .stdin(Stdio::null())
        .stdout(if quiet {
            Stdio::null()
        } else {
            Stdio::inherit()
        })
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn weir")
}

/// Polls a child until it exits, keeping its last /proc sample.
fn wait_sampled(child: &mut Child) -> Usage {
    let pid = child.id();
    let mut last = Usage {
        cpu_secs: 0.0,
        peak_rss_mb: 0.0,
    };
    loop {
        if let Some(u) = usage(pid) {
            last = u;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return last;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_embedded(job_json: &str, dir: &Path) -> Outcome {
    let path = dir.join("job.json");
    std::fs::write(&path, job_json).expect("write job");
    let start = Instant::now();
    let mut child = spawn(
        &[
            "run",
            path.to_str().expect("utf8"),
            "--progress",
            "0",
            "--state-dir",
            dir.join("state").to_str().expect("utf8"),
        ],
        true,
    );
    let u = wait_sampled(&mut child);
    Outcome {
        wall: start.elapsed().as_secs_f64(),
        cpu: u.cpu_secs,
        peak_mb: vec![("weir run".into(), u.peak_rss_mb)],
    }
}

fn run_cluster(job_json: &str, dir: &Path, parallelism: u32) -> Outcome {
    let path = dir.join("job.json");
    std::fs::write(&path, job_json).expect("write job");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let url = format!("http://127.0.0.1:{port}");
    let state = dir.join("state");
    let mut jm = spawn(
        &[
            "jobmanager",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--state-dir",
            state.to_str().expect("utf8"),
            "--admin-bind",
            "off",
        ],
        true,
    );
    let slots = (parallelism * 2).to_string();
    let mut tms: Vec<Child> = (0..2)
        .map(|_| {
            spawn(
                &["taskmanager", "--jobmanager", &url, "--slots", &slots],
                true,
            )
        })
        .collect();
    // Wait for both task managers, then submit and time the job.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new(weir())
            .args(["cluster", "--jobmanager", &url])
            .output()
            .expect("weir cluster");
        if String::from_utf8_lossy(&out.stdout).lines().count() >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "cluster did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before: f64 = tms
        .iter()
        .chain(std::iter::once(&jm))
        .filter_map(|c| usage(c.id()))
        .map(|u| u.cpu_secs)
        .sum();
    let start = Instant::now();
    let out = Command::new(weir())
        .args([
            "submit",
            path.to_str().expect("utf8"),
            "--jobmanager",
            &url,
            "--wait",
        ])
        .output()
        .expect("weir submit");
    let wall = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "job failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut cpu = 0.0;
    let mut peak_mb = vec![];
    for (name, c) in [
        ("jobmanager", &jm),
        ("taskmanager 1", &tms[0]),
        ("taskmanager 2", &tms[1]),
    ] {
        if let Some(u) = usage(c.id()) {
            cpu += u.cpu_secs;
            peak_mb.push((name.to_string(), u.peak_rss_mb));
        }
    }
    for c in tms.iter_mut().chain(std::iter::once(&mut jm)) {
        let _ = c.kill();
        let _ = c.wait();
    }
    Outcome {
        wall,
        cpu: cpu - before,
        peak_mb,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let events = arg("--events", 20_000_000);
    let runs = arg("--runs", 3).max(1) as usize;
    let parallelism = arg("--parallelism", 1) as u32;
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    if let Some(broker) = args
        .iter()
        .position(|a| a == "--kafka")
        .and_then(|i| args.get(i + 1))
    {
        #[cfg(feature = "kafka")]
        {
            let pid = args
                .iter()
                .position(|a| a == "--broker-pid")
                .and_then(|i| args.get(i + 1))
                .and_then(|p| p.parse().ok());
            println!("weir-bench --kafka {broker}: {events} events per run, median of {runs} runs");
            kafka::bench(broker, events, runs, pid);
            return;
        }
        #[cfg(not(feature = "kafka"))]
        {
            eprintln!("weir-bench was built without the `kafka` feature; rebuild with --features kafka ({broker})");
            std::process::exit(2);
        }
    }
    println!("weir-bench: {events} events per run, median of {runs} runs, parallelism {parallelism} per pipeline stage, {} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    println!(
        "{:<12} {:<9} {:<12} {:>14} {:>16} {:>10}  peak RSS (MB)",
        "pipeline", "mode", "checkpoints", "events/s", "events/s/core", "wall s"
    );
    for kind in ["passthrough", "filter", "keyed-count"] {
        if only.as_deref().is_some_and(|o| o != kind) {
            continue;
        }
        for mode in ["embedded", "cluster"] {
            for checkpoint_ms in [0u64, 1000] {
                let mut walls = vec![];
                let mut per_core = vec![];
                let mut peaks: Vec<(String, f64)> = vec![];
                for _ in 0..runs {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let j = job(kind, events, checkpoint_ms, parallelism, dir.path());
                    let o = if mode == "embedded" {
                        run_embedded(&j, dir.path())
                    } else {
                        run_cluster(&j, dir.path(), parallelism)
                    };
                    walls.push(o.wall);
                    per_core.push(events as f64 / o.cpu.max(1e-9));
                    for (name, mb) in o.peak_mb {
                        match peaks.iter_mut().find(|p| p.0 == name) {
                            Some(p) => p.1 = p.1.max(mb),
                            None => peaks.push((name, mb)),
                        }
                    }
                }
                let wall = median(walls);
                let peaks: Vec<String> =
                    peaks.iter().map(|(n, mb)| format!("{n} {mb:.0}")).collect();
                println!(
                    "{:<12} {:<9} {:<12} {:>14.0} {:>16.0} {:>10.2}  {}",
                    kind,
                    mode,
                    if checkpoint_ms == 0 {
                        "off".to_string()
                    } else {
                        format!("{checkpoint_ms} ms EO")
                    },
                    events as f64 / wall,
                    median(per_core),
                    wall,
                    peaks.join(", ")
                );
            }
        }
    }
}
