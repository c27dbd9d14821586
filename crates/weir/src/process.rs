//! What the binary's modes share: the operators and connectors it was built with, and the
//! signals that stop it.

use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use weir_runtime::registry::Registry;

/// Every operator and connector this binary was built with, for its task managers.
pub(crate) fn registry() -> Arc<Registry> {
    let mut r = Registry::new();
    weir_operators::register(&mut r);
    weir_connectors::register(&mut r);
    Arc::new(r)
}

/// A token cancelled on Ctrl-C or SIGTERM.
pub(crate) fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
        t.cancel();
    });
    token
}
