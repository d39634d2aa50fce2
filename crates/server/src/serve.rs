//! Serving until a signal, then a graceful stop: no new connections, in-flight requests
//! get `server.graceful_shutdown_timeout` to finish, every head is flushed, the WAL is
//! closed.

use std::sync::Arc;

use anyhow::Context;
use fenrir_config::Config;
use tokio::sync::watch;

use crate::wiring::{build, spawn_flusher, Built};

/// Runs the server until SIGTERM or Ctrl-C, then stops gracefully.
pub async fn serve(config: Arc<Config>) -> anyhow::Result<()> {
    survive_file_size_limit();
    let built = build(&config).await?;
    let addr = config.listen_addr()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, data = %config.data_dir().display(), "fenrir listening");
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    serve_until(built, listener, stop_rx, &config).await
}

/// Serves on `listener` until `stop` turns true, then stops as [`serve`] describes.
async fn serve_until(
    built: Built,
    listener: tokio::net::TcpListener,
    stop: watch::Receiver<bool>,
    config: &Config,
) -> anyhow::Result<()> {
    let grace = config.server.graceful_shutdown_timeout;
    let Built {
        app,
        ingester,
        state,
        ..
    } = built;
    let flusher = spawn_flusher(ingester.clone(), config);
    let trimmer = crate::malloc::spawn_memory_trimmer(ingester.clone());
    let stopped = {
        let mut stop = stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
            state.set_stopping();
            tracing::info!(
                grace = ?grace,
                "shutting down: no new connections, waiting for in-flight requests"
            );
        }
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(stopped);
    let deadline = {
        let mut stop = stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        }
    };
    tokio::select! {
        served = server => served?,
        () = deadline => tracing::warn!(
            grace = ?grace,
            "requests still running after server.graceful_shutdown_timeout; stopping without them"
        ),
    }
    flusher.abort();
    trimmer.abort();
    tracing::info!("flushing before shutdown");
    match ingester.flush_all().await {
        Ok(stats) => tracing::info!(chunks = stats.chunks, bytes = stats.bytes, "flushed"),
        Err(e) => tracing::error!(error = %e, "final flush failed; the wal keeps the data"),
    }
    ingester.shutdown_wal();
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("interrupt received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}

/// A file-size limit (`ulimit -f`) kills a process with SIGXFSZ by default; with a
/// handler installed the write fails with EFBIG instead, and the WAL answers 503 until
/// the limit is raised, as it does when the disk is full.
fn survive_file_size_limit() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::from_raw(libc::SIGXFSZ)) {
            Ok(mut s) => {
                tokio::spawn(async move {
                    while s.recv().await.is_some() {
                        tracing::warn!(
                            "file size limit reached (SIGXFSZ): writes fail until it is raised"
                        );
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot handle SIGXFSZ"),
        }
    }
}
