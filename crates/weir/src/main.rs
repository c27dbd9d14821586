//! `weir`: run a job embedded, start job and task managers, and manage jobs on a cluster.

mod embedded;
mod process;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;
use weir_client::Client;

/// With the `mimalloc` feature: mimalloc instead of glibc's malloc. The join and window
/// operators allocate and free per key, and glibc's allocator took a quarter of q6's CPU;
/// mimalloc costs task-manager memory instead (`docs/benchmarks.md`), so it is a choice.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "weir", version, about = "Weir: exactly-once stream processing")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct JmAddr {
    /// The job manager's address, or a comma list of them (a leader and its standbys: the
    /// one that leads is used).
    #[arg(
        long = "jobmanager",
        short = 'm',
        env = "WEIR_JOBMANAGER",
        default_value = "http://127.0.0.1:6123"
    )]
    jobmanager: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run a job (a JSON job graph or a SQL script) in this process: a job manager and a task
    /// manager, embedded.
    Run {
        job: PathBuf,
        /// Folder (or URL) for job records and default checkpoints.
        #[arg(long, default_value = "weir-data")]
        state_dir: String,
        /// Slots of the embedded task manager (default: what the job needs).
        #[arg(long)]
        slots: Option<u32>,
        /// Seconds between progress lines (0: none).
        #[arg(long, default_value_t = 1)]
        progress: u64,
        /// Start from this savepoint or checkpoint folder.
        #[arg(long)]
        restore_from: Option<String>,
    },
    /// Start a job manager.
    Jobmanager {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:6123")]
        bind: String,
        /// Folder (or URL) for job records and default checkpoints.
        #[arg(long, env = "WEIR_STATE_DIR", default_value = "weir-data")]
        state_dir: String,
        /// Milliseconds without a heartbeat before a task manager counts as lost (as Flink's
        /// heartbeat.timeout). A killed task manager is found at once, by its broken
        /// connection; this only bounds how long a frozen or cut-off one goes unnoticed.
        #[arg(long, env = "WEIR_HEARTBEAT_TIMEOUT_MS", default_value_t = 50_000)]
        heartbeat_timeout_ms: u64,
        /// Leader lease in milliseconds (as Flink's Kubernetes HA, 15 s). Job managers sharing
        /// a state dir elect one leader; the others stand by and take over when its lease
        /// runs out. A leader renews three times per lease.
        #[arg(long, env = "WEIR_LEASE_MS", default_value_t = 15_000)]
        lease_ms: u64,
        /// Address that clients and task managers reach this job manager at, which standbys
        /// tell them (default: http:// and the bound address).
        #[arg(long, env = "WEIR_ADVERTISE")]
        advertise: Option<String>,
        /// This job manager's id in leader claims (default: unique per process).
        #[arg(long)]
        id: Option<String>,
        /// Plain-HTTP address of the probes: /healthz (alive) and /readyz (leading, state dir
        /// writable, jobs resumed; a standby answers 503 "standby"). `off` turns it off.
        #[arg(long, default_value = "127.0.0.1:8081")]
        admin_bind: String,
    },
    /// Start a task manager that offers slots to a job manager.
    Taskmanager {
        #[command(flatten)]
        jm: JmAddr,
        #[arg(long, default_value_t = 2)]
        slots: u32,
        /// Address to listen on for the job manager and other task managers.
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: String,
        /// Address others reach this task manager at (default: http://<bound address>).
        #[arg(long)]
        advertise: Option<String>,
        /// Stable id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// Plain-HTTP address of the probes: /healthz (alive) and /readyz (registered with a
        /// job manager). Off unless given, so that several task managers share a machine.
        #[arg(long, default_value = "off")]
        admin_bind: String,
    },
    /// Submit a job (a JSON job graph or a SQL script) to a job manager.
    Submit {
        job: PathBuf,
        #[command(flatten)]
        jm: JmAddr,
        /// Start from this savepoint or checkpoint folder.
        #[arg(long)]
        restore_from: Option<String>,
        /// Wait for the job to end; exit non-zero unless it finished.
        #[arg(long)]
        wait: bool,
    },
    /// List jobs.
    List {
        #[command(flatten)]
        jm: JmAddr,
    },
    /// Show a job's state, restarts, vertices and checkpoints.
    Status {
        id: String,
        #[command(flatten)]
        jm: JmAddr,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a job.
    Cancel {
        id: String,
        #[command(flatten)]
        jm: JmAddr,
    },
    /// Take a savepoint of a running job.
    Savepoint {
        id: String,
        #[command(flatten)]
        jm: JmAddr,
        /// Folder (or URL) for the savepoint (default: the job's savepoint folder).
        #[arg(long)]
        target: Option<String>,
        /// Stop the job once the savepoint is complete.
        #[arg(long)]
        stop: bool,
    },
    /// Wait for a job to end; exit 0 if it finished, 1 otherwise.
    Wait {
        id: String,
        #[command(flatten)]
        jm: JmAddr,
        /// Give up after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Print a job's dataflow (JSON or SQL file): its tasks, their operators and parallelism,
    /// and how records are partitioned between them.
    Explain {
        job: PathBuf,
        /// Print the compiled job graph as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Show the task managers and their slots.
    Cluster {
        #[command(flatten)]
        jm: JmAddr,
    },
}

/// Binds `--admin-bind` (`off`: none) and says where, so a test or script that asked for
/// port 0 learns the port.
async fn bind_admin(addr: &str) -> anyhow::Result<Option<TcpListener>> {
    let admin = weir_admin::bind(addr).await?;
    if let Some(l) = &admin {
        println!(
            "admin port (/healthz, /readyz) on http://{}",
            l.local_addr()?
        );
    }
    Ok(admin)
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A job file: JSON (the job graph) or SQL (a script compiled to one), checked as the job
/// manager would check it; returns the job's JSON.
fn read_job(path: &PathBuf) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read job file {}", path.display()))?;
    let spec = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("sql"))
    {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sql".into());
        weir_sql::compile(&text, &name).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
    } else {
        weir_types::JobSpec::from_json(&text)
            .with_context(|| format!("job file {}", path.display()))?
    };
    weir_planner::validate(&spec).with_context(|| format!("job file {}", path.display()))?;
    Ok(spec.to_json())
}

fn print_status(s: &weir_client::JobStatus) {
    println!("job {} ({})", s.job_id, s.name);
    println!(
        "  state: {}  attempt: {}  restarts: {}",
        s.state, s.attempt, s.restarts
    );
    if !s.failure.is_empty() {
        println!("  last failure: {}", s.failure);
    }
    for v in &s.vertices {
        println!(
            "  vertex {:<40} parallelism {:>3}  in {:>12}  out {:>12}{}",
            v.name,
            v.parallelism,
            v.records_in,
            v.records_out,
            if v.alignment_paused_ms > 0 {
                format!("  paused for alignment {} ms", v.alignment_paused_ms)
            } else {
                String::new()
            }
        );
    }
    for c in &s.checkpoints {
        let kind = if c.savepoint {
            "savepoint"
        } else {
            "checkpoint"
        };
        println!(
            "  {kind} {:>5} {:<11} {:>8} bytes {:>6} ms  {}{}",
            c.checkpoint_id,
            c.state,
            c.state_bytes,
            c.duration_ms,
            c.location,
            if c.failure.is_empty() {
                String::new()
            } else {
                format!("  ({})", c.failure)
            }
        );
    }
}

fn status_json(s: &weir_client::JobStatus) -> serde_json::Value {
    serde_json::json!({
        "job_id": s.job_id, "name": s.name, "state": s.state, "attempt": s.attempt,
        "restarts": s.restarts, "failure": s.failure,
        "vertices": s.vertices.iter().map(|v| serde_json::json!({
            "name": v.name, "parallelism": v.parallelism, "records_in": v.records_in, "records_out": v.records_out,
            "alignment_paused_ms": v.alignment_paused_ms})).collect::<Vec<_>>(),
        "checkpoints": s.checkpoints.iter().map(|c| serde_json::json!({
            "id": c.checkpoint_id, "state": c.state, "savepoint": c.savepoint, "location": c.location,
            "state_bytes": c.state_bytes, "duration_ms": c.duration_ms, "failure": c.failure})).collect::<Vec<_>>(),
    })
}

async fn connect(jm: &JmAddr) -> anyhow::Result<Client> {
    Client::connect(&jm.jobmanager).await.map_err(|e| match e {
        weir_client::ClientError::NoLeader(_) => anyhow::anyhow!(
            "{e}\n(--jobmanager / WEIR_JOBMANAGER is {:?}: is any of them running and leading?)",
            jm.jobmanager
        ),
        other => other.into(),
    })
}

async fn main_inner(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run {
            job,
            state_dir,
            slots,
            progress,
            restore_from,
        } => {
            init_logging("warn");
            let text = read_job(&job)?;
            embedded::run(&text, &state_dir, slots, progress, restore_from.as_deref()).await
        }
        Command::Jobmanager {
            bind,
            state_dir,
            heartbeat_timeout_ms,
            lease_ms,
            advertise,
            id,
            admin_bind,
        } => {
            init_logging("info");
            if lease_ms < 30 {
                anyhow::bail!(
                    "--lease-ms {lease_ms}: the leader lease must be at least 30 ms (15000 is the default)"
                );
            }
            let admin = bind_admin(&admin_bind).await?;
            let listener = TcpListener::bind(&bind)
                .await
                .with_context(|| format!("cannot listen on {bind}"))?;
            println!("job manager listening on http://{}", listener.local_addr()?);
            let mut cfg = weir_jobmanager::JobManagerConfig::new(&state_dir);
            cfg.heartbeat_timeout = Duration::from_millis(heartbeat_timeout_ms);
            cfg.lease = Some(Duration::from_millis(lease_ms));
            if advertise.is_none() && bind.starts_with("0.0.0.0") {
                tracing::warn!(%bind, "no --advertise: standbys will point clients at an address of all interfaces; give the address others reach this job manager at (e.g. http://$(POD_IP):6123)");
            }
            cfg.advertise = advertise;
            if let Some(id) = id {
                cfg.id = id;
            }
            let shutdown = process::shutdown_on_signal();
            weir_jobmanager::run(cfg, listener, admin, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Taskmanager {
            jm,
            slots,
            bind,
            advertise,
            id,
            admin_bind,
        } => {
            init_logging("info");
            if slots == 0 {
                bail!("--slots must be at least 1");
            }
            let admin = bind_admin(&admin_bind).await?;
            let listener = TcpListener::bind(&bind)
                .await
                .with_context(|| format!("cannot listen on {bind}"))?;
            println!(
                "task manager listening on http://{}",
                listener.local_addr()?
            );
            let mut cfg =
                weir_taskmanager::TaskManagerConfig::new(jm.jobmanager, slots, process::registry());
            cfg.advertise = advertise;
            if let Some(id) = id {
                cfg.id = id;
            }
            weir_taskmanager::run(cfg, listener, admin, process::shutdown_on_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Submit {
            job,
            jm,
            restore_from,
            wait,
        } => {
            let text = read_job(&job)?;
            let client = connect(&jm).await?;
            let id = client.submit_json(&text, restore_from.as_deref()).await?;
            println!("{id}");
            if wait {
                let s = client.wait(&id, None).await?;
                print_status(&s);
                return Ok(if s.state == "FINISHED" {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { job, json } => {
            let text = read_job(&job)?;
            let spec = weir_types::JobSpec::from_json(&text)?;
            if json {
                println!("{text}");
            } else {
                print!("{}", weir_sql::explain(&spec)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List { jm } => {
            let jobs = connect(&jm).await?.list().await?;
            println!("{:<20} {:<12} {:>8}  NAME", "ID", "STATE", "RESTARTS");
            for j in jobs {
                println!(
                    "{:<20} {:<12} {:>8}  {}",
                    j.job_id, j.state, j.restarts, j.name
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { id, jm, json } => {
            let s = connect(&jm).await?.status(&id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status_json(&s))?);
            } else {
                print_status(&s);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel { id, jm } => {
            connect(&jm).await?.cancel(&id).await?;
            println!("cancelled {id}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Savepoint {
            id,
            jm,
            target,
            stop,
        } => {
            let (location, cid) = connect(&jm)
                .await?
                .savepoint(&id, target.as_deref(), stop)
                .await?;
            println!("savepoint {cid} at {location}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Wait { id, jm, timeout } => {
            let s = connect(&jm)
                .await?
                .wait(&id, timeout.map(Duration::from_secs))
                .await?;
            print_status(&s);
            Ok(if s.state == "FINISHED" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Cluster { jm } => {
            let tms = connect(&jm).await?.cluster().await?;
            println!(
                "{:<32} {:<28} {:>5} {:>5}",
                "ID", "ADDRESS", "SLOTS", "FREE"
            );
            for t in tms {
                println!(
                    "{:<32} {:<28} {:>5} {:>5}",
                    t.id, t.address, t.slots, t.free_slots
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(main_inner(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
