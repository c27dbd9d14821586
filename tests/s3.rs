//! Checkpoints and the exactly-once file sink on a real S3-compatible server: `s3s-fs`, served
//! from this test process on 127.0.0.1 over a temp folder, reached by the `weir` processes
//! through object_store's S3 client (signed requests, path-style, plain HTTP).

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

const ACCESS_KEY: &str = "weir-test";
const SECRET_KEY: &str = "weir-test-secret";

/// Serves `root` as an S3 endpoint; each sub-folder is a bucket.
async fn start_s3(root: &Path) -> String {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder as ConnBuilder;
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs");
    let mut b = s3s::service::S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = b.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_job_with_checkpoints_and_output_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("weir")).unwrap();
    let endpoint = start_s3(&root).await;
    let count = 300_000;
    let job = count_job(
        "s3",
        "exactly_once",
        count,
        500,
        100_000,
        Path::new("s3://weir/out"),
        2,
    )
    .replace(
        r#""interval_ms": 1000 }"#,
        r#""interval_ms": 500, "storage": "s3://weir/checkpoints" }"#,
    );
    let job_file = dir.path().join("job.json");
    std::fs::write(&job_file, job).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(weir())
            .args([
                "run",
                job_file.to_str().unwrap(),
                "--state-dir",
                "s3://weir/state",
            ])
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    // What the S3 server stored, read straight from its folder.
    let check = check_output(&read_committed(&root.join("weir/out")), count, 500, 42);
    check.assert_exact(count);
    let checkpoints: Vec<_> = std::fs::read_dir(root.join("weir/checkpoints"))
        .unwrap()
        .flatten()
        .collect();
    assert!(!checkpoints.is_empty(), "checkpoints were written to S3");
    assert!(
        root.join("weir/state/jobs").exists(),
        "job records were written to S3"
    );
}
