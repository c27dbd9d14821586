//! The admin port: plain HTTP on its own address (`--admin-bind`), apart from the gRPC port,
//! so that a kubelet's probes need neither HTTP/2 nor, once the gRPC port has TLS, a client
//! certificate.
//!
//! * `GET /healthz`: 200 while the process serves at all (its runtime answers);
//! * `GET /readyz`: 200 when the process can do its work, else 503 with the reason as the
//!   body's first word and a sentence after it (`standby: ...`). What "ready" means is the
//!   caller's: a [`Readiness`] check it passes in.
//!
//! The server is I/O at the edge only: routing is the pure [`respond`], unit-tested.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("--admin-bind {addr:?}: {reason}")]
    Bind { addr: String, reason: String },
}

/// Whether the process is ready; `Err` carries why not, starting with a one-word reason
/// (`standby`, `resuming`, `unregistered`, ...).
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// The value of `--admin-bind` that turns the admin port off.
pub const OFF: &str = "off";

/// Binds the admin address (`host:port`; `off` returns None). A bad address or a port in use
/// fails at once, naming the flag.
pub async fn bind(addr: &str) -> Result<Option<TcpListener>, AdminError> {
    let addr = addr.trim();
    if addr.eq_ignore_ascii_case(OFF) {
        return Ok(None);
    }
    let err = |reason: String| AdminError::Bind {
        addr: addr.to_string(),
        reason,
    };
    let parsed: SocketAddr = addr.parse().map_err(|_| {
        err(
            "expected host:port with a numeric host, such as 127.0.0.1:8081 or \
             0.0.0.0:8081, or `off`"
                .to_string(),
        )
    })?;
    TcpListener::bind(parsed)
        .await
        .map(Some)
        .map_err(|e| err(e.to_string()))
}

/// Connections served at once: probes come every few seconds from one kubelet; more than
/// this are closed at once rather than let an open port use up the process's descriptors,
/// which it shares with gRPC.
const MAX_CONNECTIONS: usize = 32;

/// How long a client may take to send its request's headers.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves the probes on `listener` until `shutdown` fires. One request per connection (a
/// kubelet opens one per probe), its headers within [`HEADER_TIMEOUT`].
pub async fn serve(listener: TcpListener, ready: Readiness, shutdown: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin port (probes /healthz, /readyz) listening");
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "admin port: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("admin port: {MAX_CONNECTIONS} connections open; one refused");
            continue;
        };
        let ready = ready.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let answer = respond(req.method(), req.uri().path(), &*ready);
                async move { Ok::<_, std::convert::Infallible>(answer) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                r = conn => if let Err(e) = r {
                    tracing::debug!(error = %e, "admin connection ended");
                }
            }
        });
    }
}

/// The answer to one request: no I/O, so the routing is tested without a socket.
pub fn respond(
    method: &Method,
    path: &str,
    ready: &(dyn Fn() -> Result<(), String> + Send + Sync),
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served here\n".to_string(),
        );
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n".to_string()),
        "/readyz" => match ready() {
            Ok(()) => text(StatusCode::OK, "ready\n".to_string()),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            format!("no such path: {path} (this port serves /healthz and /readyz)\n"),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(r: Response<Full<Bytes>>) -> String {
        let b = r.into_body().collect().await.map(|c| c.to_bytes());
        String::from_utf8(b.unwrap_or_default().to_vec()).unwrap_or_default()
    }

    #[tokio::test]
    async fn routes_probes() {
        let ready = |_: ()| Ok(());
        let ok = move || ready(());
        let r = respond(&Method::GET, "/healthz", &ok);
        assert_eq!(r.status(), StatusCode::OK);
        let r = respond(&Method::GET, "/readyz", &ok);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await, "ready\n");

        let standby = || Err("standby: the leader is jm-1".to_string());
        let r = respond(&Method::GET, "/readyz", &standby);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(r).await, "standby: the leader is jm-1\n");
        // Liveness does not depend on readiness: a standby is alive.
        assert_eq!(
            respond(&Method::GET, "/healthz", &standby).status(),
            StatusCode::OK
        );
        assert_eq!(
            respond(&Method::GET, "/nope", &ok).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond(&Method::POST, "/readyz", &ok).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            respond(&Method::HEAD, "/healthz", &ok).status(),
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn bad_addresses_name_the_flag() {
        for bad in [
            "localhost",
            "8081",
            "127.0.0.1",
            "1.2.3.4.5:80",
            "127.0.0.1:99999",
        ] {
            let e = bind(bad)
                .await
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.starts_with("--admin-bind"), "{bad}: {e}");
        }
        assert!(matches!(bind("off").await, Ok(None)));
        // A port in use.
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let e = bind(&addr)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("--admin-bind") && e.contains(&addr), "{e}");
    }

    /// Idle connections neither pile up (over the cap they are closed at once) nor stay (each
    /// is closed once its headers are late), and a probe still gets through afterwards.
    #[tokio::test]
    async fn idle_connections_are_capped_and_closed() {
        use tokio::io::AsyncReadExt;
        let listener = bind("127.0.0.1:0").await.unwrap().unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, Arc::new(|| Ok(())), stop.clone()));
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let mut over = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(std::time::Duration::from_secs(2), over.read(&mut buf)).await;
        assert!(
            matches!(n, Ok(Ok(0)) | Ok(Err(_))),
            "over the cap: closed at once"
        );
        for mut c in idle {
            let n = tokio::time::timeout(HEADER_TIMEOUT * 2, c.read(&mut buf)).await;
            assert!(n.is_ok(), "an idle connection outlived the header timeout");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::AsyncWriteExt;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        stop.cancel();
    }

    #[tokio::test]
    async fn serves_over_tcp() {
        let listener = bind("127.0.0.1:0").await.unwrap().unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = flag.clone();
        let ready: Readiness = Arc::new(move || {
            if f.load(std::sync::atomic::Ordering::SeqCst) {
                Ok(())
            } else {
                Err("standby: not yet".to_string())
            }
        });
        tokio::spawn(serve(listener, ready, stop.clone()));
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        let r = get("/readyz").await;
        assert!(
            r.starts_with("HTTP/1.1 503") && r.ends_with("standby: not yet\n"),
            "{r}"
        );
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        stop.cancel();
    }
}
