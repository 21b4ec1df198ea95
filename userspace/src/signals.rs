//! Shutdown on SIGINT or SIGTERM, for the binaries: a task that cancels a token.

use tokio_util::sync::CancellationToken;

/// Spawns a task that cancels `shutdown` on the first SIGINT or SIGTERM (logging that it
/// does); without signal handlers it logs why and the process stops only when killed.
pub fn cancel_on_termination(shutdown: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        shutdown.cancel();
    });
}
