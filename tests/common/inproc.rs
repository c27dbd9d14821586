//! An in-process cluster: a job manager and several task managers running as tasks of the
//! test process, each with its own listener, config and shutdown token (config is passed,
//! never global, so nothing leaks between them). Starts in milliseconds, so the tests that
//! use it check cluster behaviour (scheduling across task managers, losing one, cancelling)
//! without starting processes; the kill -9 tests stay multi-process.

use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weir_client::Client;
use weir_runtime::registry::Registry;
use weir_storage::Opener;

struct Member {
    shutdown: CancellationToken,
    handle: JoinHandle<()>,
}

pub struct InProcCluster {
    pub dir: tempfile::TempDir,
    pub jm_url: String,
    jm: Member,
    tms: Vec<Option<Member>>,
    registry: Arc<Registry>,
    storage: Opener,
}

impl InProcCluster {
    /// A job manager on a state dir of its own and `tms` task managers of `slots` slots.
    pub async fn start(tms: usize, slots: u32) -> Self {
        Self::start_with(tms, slots, Opener::real()).await
    }

    /// As [`InProcCluster::start`], every member opening storage through `storage` (a
    /// failing one: `Opener::failing`).
    pub async fn start_with(tms: usize, slots: u32, storage: Opener) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let mut cfg = weir_jobmanager::JobManagerConfig::new(state.to_str().expect("utf-8"));
        cfg.heartbeat_timeout = Duration::from_secs(10);
        cfg.storage = storage.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let jm_url = format!("http://{}", listener.local_addr().expect("address"));
        let shutdown = CancellationToken::new();
        let s = shutdown.clone();
        let handle = tokio::spawn(async move {
            if let Err(e) = weir_jobmanager::run(cfg, listener, None, s).await {
                eprintln!("in-process job manager: {e}");
            }
        });
        let mut registry = Registry::new();
        weir_operators::register(&mut registry);
        weir_connectors::register(&mut registry);
        let mut cluster = Self {
            dir,
            jm_url,
            jm: Member { shutdown, handle },
            tms: Vec::new(),
            registry: Arc::new(registry),
            storage,
        };
        for _ in 0..tms {
            cluster.add_tm(slots).await;
        }
        cluster.wait_slots(tms as u32 * slots).await;
        cluster
    }

    /// Starts one more task manager; returns its index.
    pub async fn add_tm(&mut self, slots: u32) -> usize {
        let mut cfg =
            weir_taskmanager::TaskManagerConfig::new(&self.jm_url, slots, self.registry.clone());
        cfg.id = format!("inproc-tm-{}", self.tms.len());
        cfg.storage = self.storage.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let shutdown = CancellationToken::new();
        let s = shutdown.clone();
        let handle = tokio::spawn(async move {
            if let Err(e) = weir_taskmanager::run(cfg, listener, None, s).await {
                eprintln!("in-process task manager: {e}");
            }
        });
        self.tms.push(Some(Member { shutdown, handle }));
        self.tms.len() - 1
    }

    /// Stops task manager `i` and waits until it has: its tasks are cancelled and its
    /// heartbeat stream closes, so the job manager counts it lost at once.
    pub async fn stop_tm(&mut self, i: usize) {
        if let Some(m) = self.tms.get_mut(i).and_then(Option::take) {
            m.shutdown.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(30), m.handle).await;
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.jm_url).await.expect("connect")
    }

    /// Waits until the registered task managers offer `slots` slots in all.
    pub async fn wait_slots(&self, slots: u32) -> Client {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(c) = Client::connect(&self.jm_url).await {
                if let Ok(tms) = c.cluster().await {
                    if tms.iter().map(|t| t.slots).sum::<u32>() >= slots {
                        return c;
                    }
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the in-process task managers did not register {slots} slots"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for InProcCluster {
    fn drop(&mut self) {
        for m in self.tms.iter().flatten() {
            m.shutdown.cancel();
        }
        self.jm.shutdown.cancel();
        self.jm.handle.abort();
    }
}
