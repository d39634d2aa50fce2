//! Serving until a signal, then a graceful stop: no new connections, in-flight requests
//! get `server.graceful_shutdown_timeout` to finish, every head is flushed, the WAL is
//! closed.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fenrir_config::Config;
use tokio::sync::watch;

use fenrir_ingest::Ingester;

use crate::wiring::{build, ingest_config, Built};

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
    serve_until(
        built,
        listener,
        stop_rx,
        config.server.graceful_shutdown_timeout,
        FlushSchedule::from_config(&config),
    )
    .await
}

/// When the background flusher runs: every `period`; after a failure, after a backoff
/// doubling from `min_backoff` to `max_backoff`.
#[derive(Debug, Clone, Copy)]
struct FlushSchedule {
    period: Duration,
    min_backoff: Duration,
    max_backoff: Duration,
}

impl FlushSchedule {
    fn from_config(config: &Config) -> Self {
        let backoff = &config.ingester.flush_op_backoff;
        FlushSchedule {
            period: ingest_config(config)
                .flush_check_period
                .min(Duration::from_secs(10)),
            min_backoff: backoff.min_period,
            max_backoff: backoff.max_period.max(backoff.min_period),
        }
    }
}

/// Starts the background flusher: a flush cycle every `flush_check_period` (at most 10s);
/// after a failure, the next try comes after `ingester.flush_op_backoff` (doubling from
/// `min_period` to `max_period`), for as long as it takes: the WAL holds the data.
pub fn spawn_flusher(ingester: Ingester, config: &Config) -> tokio::task::JoinHandle<()> {
    run_flusher(ingester, FlushSchedule::from_config(config))
}

fn run_flusher(ingester: Ingester, schedule: FlushSchedule) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut delay = schedule.period;
        let mut next_backoff = schedule.min_backoff;
        loop {
            tokio::time::sleep(delay).await;
            match ingester.flush_due().await {
                Ok(_) => {
                    delay = schedule.period;
                    next_backoff = schedule.min_backoff;
                }
                Err(e) => {
                    let backlog = ingester.backlog();
                    tracing::warn!(
                        error = %e,
                        retry_in = ?next_backoff,
                        unflushed_bytes = backlog.unflushed_bytes,
                        unflushed_chunks = backlog.unflushed_chunks,
                        "flush failed; the wal keeps the data"
                    );
                    delay = next_backoff;
                    next_backoff = (next_backoff * 2).min(schedule.max_backoff);
                }
            }
        }
    })
}

/// Serves on `listener` until `stop` turns true, then stops as [`serve`] describes.
async fn serve_until(
    built: Built,
    listener: tokio::net::TcpListener,
    stop: watch::Receiver<bool>,
    grace: Duration,
    flush_schedule: FlushSchedule,
) -> anyhow::Result<()> {
    let Built {
        app,
        ingester,
        state,
        ..
    } = built;
    let flusher = run_flusher(ingester.clone(), flush_schedule);
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
