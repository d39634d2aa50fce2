//! Per-tenant limits from `runtime_config.file`, re-read every `runtime_config.period`
//! without a restart.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use fenrir_config::{Config, TenantLimits};

/// Every tenant's limits: `limits_config`, with the runtime file's overrides when one is
/// configured. A runtime file that does not load at start is an error, as in Loki.
pub(crate) fn initial_limits(config: &Config) -> anyhow::Result<TenantLimits> {
    let limits = TenantLimits::new(config.limits_config.clone());
    if let Some(path) = &config.runtime_config.file {
        let tenants = limits
            .reload_file(path)
            .with_context(|| format!("loading runtime config {}", path.display()))?;
        tracing::info!(file = %path.display(), tenants, "loaded per-tenant overrides");
    }
    Ok(limits)
}

/// Re-reads the runtime file every `period`. A file that fails to load leaves the last
/// good overrides in force.
pub(crate) fn spawn_reloader(
    limits: TenantLimits,
    path: PathBuf,
    period: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last_error: Option<String> = None;
        loop {
            tick.tick().await;
            let (limits, path2) = (limits.clone(), path.clone());
            let outcome = tokio::task::spawn_blocking(move || limits.reload_file(&path2)).await;
            match outcome {
                Ok(Ok(tenants)) => {
                    if last_error.take().is_some() {
                        tracing::info!(file = %path.display(), tenants, "runtime config loads again");
                    }
                    tracing::debug!(file = %path.display(), tenants, "reloaded per-tenant overrides");
                }
                Ok(Err(e)) => {
                    let message = e.to_string();
                    if last_error.as_deref() != Some(message.as_str()) {
                        tracing::warn!(file = %path.display(), error = %message, "runtime config not reloaded; keeping the previous overrides");
                    }
                    last_error = Some(message);
                }
                Err(e) => tracing::error!(error = %e, "runtime config reload task failed"),
            }
        }
    })
}

/// Aborts the task when dropped, so a dropped server stops its background work.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
