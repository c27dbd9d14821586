//! A throwaway PostgreSQL server for the tests: `initdb` into a temp folder, `postgres` on a
//! free port of 127.0.0.1 with prepared transactions enabled, stopped when dropped.
//!
//! The server binaries come from Debian's `postgresql` package (on this machine kind's image;
//! `scripts/test` installs it if missing). On a developer machine without them the tests that
//! need a server are skipped with a loud message; under CI (`CI` set) a missing server fails.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PgServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// `id -u NAME` / `id -g NAME`.
fn id_of(flag: &str, user: Option<&str>) -> u32 {
    let mut cmd = Command::new("id");
    cmd.arg(flag);
    if let Some(u) = user {
        cmd.arg(u);
    }
    let out = cmd.output().expect("run id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("numeric id")
}

impl PgServer {
    /// Starts a server, or returns `None` (after saying so loudly) when PostgreSQL is not
    /// installed and this is not CI.
    pub fn start() -> Option<PgServer> {
        let Some(bin) = bin_dir() else {
            if std::env::var_os("CI").is_some() {
                panic!("PostgreSQL server binaries not found under /usr/lib/postgresql (scripts/test installs the postgresql package)");
            }
            eprintln!("\n*** SKIPPED: no PostgreSQL server binaries under /usr/lib/postgresql (apt install postgresql) ***\n");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        // PostgreSQL refuses to run as root: run it as the `postgres` user then.
        let as_user = (id_of("-u", None) == 0)
            .then(|| (id_of("-u", Some("postgres")), id_of("-g", Some("postgres"))));
        if let Some((uid, gid)) = as_user {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
            std::os::unix::fs::chown(&data, Some(uid), Some(gid)).expect("chown data dir");
        }
        let command = |prog: &str| {
            let mut c = Command::new(bin.join(prog));
            if let Some((uid, gid)) = as_user {
                c.uid(uid).gid(gid);
            }
            c
        };
        let out = command("initdb")
            .args([
                "-D",
                data.to_str().expect("utf8"),
                "-A",
                "trust",
                "-U",
                "postgres",
            ])
            .args(["-E", "UTF8", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = super::free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).expect("log");
        let child = command("postgres")
            .args(["-D", data.to_str().expect("utf8"), "-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-k", ""])
            .args(["-c", "max_prepared_transactions=32", "-c", "fsync=off"])
            .args(["-c", "max_connections=100"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let server = PgServer { port, dir, child };
        server.wait_ready();
        Some(server)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A client connection (retried while the server finishes starting).
    pub async fn client(&self) -> tokio_postgres::Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await {
                Ok((client, conn)) => {
                    tokio::spawn(conn);
                    return client;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "cannot connect to postgres: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Ids of the prepared (not yet committed or rolled back) transactions.
    pub async fn prepared(&self) -> Vec<String> {
        self.client()
            .await
            .query("SELECT gid FROM pg_prepared_xacts ORDER BY gid", &[])
            .await
            .expect("list prepared")
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown (no checkpoint), and the server removes its shared memory.
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
