//! `weir run`: a job manager and one task manager in this process, on loopback ports, running
//! one job and printing its progress. The same code paths as a cluster, in one process.

use anyhow::Context;
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;
use weir_client::Client;

pub async fn run(
    job_json: &str,
    state_dir: &str,
    slots: Option<u32>,
    progress: u64,
    restore_from: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let spec = weir_types::JobSpec::from_json(job_json)?;
    let slots = slots.unwrap_or_else(|| spec.slots_needed()).max(1);
    let shutdown = crate::process::shutdown_on_signal();
    let jm_listener = TcpListener::bind("127.0.0.1:0").await?;
    let jm_addr = format!("http://{}", jm_listener.local_addr()?);
    let mut cfg = weir_jobmanager::JobManagerConfig::new(state_dir);
    cfg.resume = false;
    let jm = tokio::spawn(weir_jobmanager::run(
        cfg,
        jm_listener,
        None,
        shutdown.clone(),
    ));
    let tm_listener = TcpListener::bind("127.0.0.1:0").await?;
    let tm = tokio::spawn(weir_taskmanager::run(
        weir_taskmanager::TaskManagerConfig::new(
            jm_addr.clone(),
            slots,
            crate::process::registry(),
        ),
        tm_listener,
        None,
        shutdown.clone(),
    ));
    let client = Client::connect(&jm_addr).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client.cluster().await?.iter().map(|t| t.slots).sum::<u32>() < slots {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the embedded task manager did not register"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = client
        .submit_json(job_json, restore_from)
        .await
        .context("submitting the job")?;
    eprintln!(
        "job {id} ({}) running embedded with {slots} slots; state in {state_dir}",
        spec.name
    );
    let started = std::time::Instant::now();
    let mut last_print = std::time::Instant::now();
    // Records from sources at the previous progress line, for the rate since it.
    let mut last_count = 0u64;
    let status = loop {
        if shutdown.is_cancelled() {
            let _ = client.cancel(&id).await;
            eprintln!("interrupted; job cancelled");
            break client.status(&id).await?;
        }
        let s = client.status(&id).await?;
        if s.state.is_terminal() {
            break s;
        }
        if progress > 0 && last_print.elapsed() >= Duration::from_secs(progress) {
            let since = last_print.elapsed().as_secs_f64();
            last_print = std::time::Instant::now();
            let source_out: u64 = s.vertices.first().map(|v| v.records_out).unwrap_or(0);
            let rate = source_out.saturating_sub(last_count) as f64 / since.max(1e-3);
            last_count = source_out;
            let done = s
                .checkpoints
                .iter()
                .filter(|c| c.state == "COMPLETED")
                .count();
            let last = s
                .checkpoints
                .iter()
                .rev()
                .find(|c| c.state == "COMPLETED")
                .map_or_else(
                    || "none yet".to_string(),
                    |c| format!("last {}", c.checkpoint_id),
                );
            eprintln!(
                "[{:>5.1}s] {} records from sources ({:.0}/s), {} checkpoints completed ({}), restarts {}",
                started.elapsed().as_secs_f64(),
                source_out,
                rate,
                done,
                last,
                s.restarts
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "job {id} {} after {secs:.1}s{}",
        status.state,
        if status.failure.is_empty() {
            String::new()
        } else {
            format!(": {}", status.failure)
        }
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = jm.await;
        let _ = tm.await;
    })
    .await;
    Ok(if status.state == "FINISHED" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
