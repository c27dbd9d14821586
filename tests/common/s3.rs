//! An S3-compatible server in the test process: s3s-fs over a temp folder on 127.0.0.1,
//! reached by the `weir` processes through object_store's S3 client (signed requests,
//! path-style, plain HTTP).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub const ACCESS_KEY: &str = "weir-test";
pub const SECRET_KEY: &str = "weir-test-secret";

/// An S3 endpoint serving `root` (each sub-folder is a bucket), and a count of the multipart
/// part uploads it received (`PUT …?partNumber=…&uploadId=…`).
///
/// s3s-fs 0.14 answers `If-None-Match: *` by looking for the file and then writing it, so two
/// creates of one key at the same instant can both succeed (two job managers started at once
/// both claimed epoch 1). S3 itself decides such a PUT atomically; so that this server does
/// too, its conditional PUTs are served one at a time.
pub async fn start_s3(root: &Path) -> (String, Arc<AtomicUsize>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder as ConnBuilder;
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs");
    let mut b = s3s::service::S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = b.build();
    let parts = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let counter = parts.clone();
    let conditional = Arc::new(tokio::sync::Mutex::new(()));
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let (service, counter) = (service.clone(), counter.clone());
            let conditional = conditional.clone();
            let counting =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let is_part = req.method() == hyper::Method::PUT
                        && req
                            .uri()
                            .query()
                            .is_some_and(|q| q.contains("uploadId=") && q.contains("partNumber="));
                    if is_part {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    let service = service.clone();
                    let create = req.method() == hyper::Method::PUT
                        && req.headers().contains_key(hyper::header::IF_NONE_MATCH);
                    let conditional = conditional.clone();
                    async move {
                        let _one_at_a_time = if create {
                            Some(conditional.lock_owned().await)
                        } else {
                            None
                        };
                        hyper::service::Service::call(&service, req).await
                    }
                });
            tokio::spawn(async move {
                let _ = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), counting)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), parts)
}

/// What a `weir` process needs to reach the endpoint.
pub fn s3_env(endpoint: &str) -> [(&'static str, &str); 5] {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", "us-east-1"),
    ]
}
