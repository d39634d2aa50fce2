//! `fenrir`: a Loki-compatible log store in one binary.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

/// Command line, in Loki's flag style (`-config.file=…` works as well as `--config.file`).
#[derive(Debug, Parser)]
#[command(
    name = "fenrir",
    version,
    about = "A log store that speaks Grafana Loki's protocols"
)]
struct Args {
    /// YAML configuration file with Loki's key names; none runs the zero-config server.
    #[arg(long = "config.file")]
    config_file: Option<PathBuf>,
    /// Expand `${VAR}` and `${VAR:-default}` in the configuration file.
    #[arg(long = "config.expand-env", default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    expand_env: bool,
}

/// Loki's flags are single-dash long flags; clap wants two dashes.
fn normalise_args(args: impl Iterator<Item = String>) -> Vec<String> {
    args.enumerate()
        .map(|(i, a)| {
            if i > 0 && a.starts_with('-') && !a.starts_with("--") && a.len() > 2 {
                format!("-{a}")
            } else {
                a
            }
        })
        .collect()
}

/// Blocking threads (sled, zstd, push decoding): enough for every core and the requests
/// in flight, few enough that their stacks and allocations stay small. Tokio's default is
/// 512.
const MAX_BLOCKING_THREADS: usize = 64;

fn main() -> std::process::ExitCode {
    // Before any other thread exists: glibc reads these settings once.
    fenrir_server::tune_malloc();
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole cause chain: what failed, on which path, and why.
            eprintln!("fenrir: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse_from(normalise_args(std::env::args()));
    let config = match &args.config_file {
        Some(path) => fenrir_config::load(path, args.expand_env)
            .with_context(|| format!("loading {}", path.display()))?,
        None => fenrir_config::Config::default(),
    };
    config.validate()?;
    init_tracing(&config.server.log_level);
    for key in config.ignored_keys() {
        tracing::warn!(
            key,
            "configuration key accepted but has no effect in fenrir"
        );
    }
    if config.querier.multi_tenant_queries_enabled {
        tracing::warn!("querier.multi_tenant_queries_enabled is not supported: queries with X-Scope-OrgID a|b are refused (400 multiple org IDs present)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()?;
    runtime.block_on(fenrir_server::serve(Arc::new(config)))
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loki_style_flags_parse() {
        let argv = ["fenrir", "-config.file=/x.yaml", "-config.expand-env=true"]
            .map(String::from)
            .into_iter();
        let args = Args::parse_from(normalise_args(argv));
        assert_eq!(args.config_file, Some(PathBuf::from("/x.yaml")));
        assert!(args.expand_env);
        let args = Args::parse_from(normalise_args(
            ["fenrir", "--config.file", "a.yaml"]
                .map(String::from)
                .into_iter(),
        ));
        assert_eq!(args.config_file, Some(PathBuf::from("a.yaml")));
        assert!(!args.expand_env);
    }
}
