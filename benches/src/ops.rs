//! `fenrir-bench startup` (start a server and time it to `/ready`) and `fenrir-bench flush`.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Serialize;

use crate::error::{BenchError, Result};
use crate::http::{Connection, Target};

const READY_POLL: Duration = Duration::from_millis(5);

/// How long a server took from being started to answering `GET /ready` with 200.
#[derive(Debug, Serialize)]
pub(crate) struct StartupReport {
    pub(crate) pid: u32,
    pub(crate) ready_s: f64,
}

/// How long `POST /flush` took.
#[derive(Debug, Serialize)]
pub(crate) struct FlushReport {
    pub(crate) status: u16,
    pub(crate) flush_s: f64,
}

/// Starts `command` (left running, its output appended to `log`) and polls `/ready`.
pub(crate) fn startup(
    url: &str,
    command: &[String],
    log: Option<PathBuf>,
    timeout: Duration,
) -> Result<StartupReport> {
    let target = Target::parse(url)?;
    let (program, args) = command
        .split_first()
        .ok_or_else(|| BenchError::Usage("startup needs a command after --".into()))?;
    let output = |log: &Option<PathBuf>| -> Result<Stdio> {
        match log {
            None => Ok(Stdio::null()),
            Some(path) => File::options()
                .create(true)
                .append(true)
                .open(path)
                .map(Stdio::from)
                .map_err(|source| BenchError::Io {
                    what: "cannot open the log",
                    path: path.clone(),
                    source,
                }),
        }
    };
    let runtime = runtime()?;
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(output(&log)?)
        .stderr(output(&log)?)
        .spawn()
        .map_err(|source| BenchError::Io {
            what: "cannot start",
            path: PathBuf::from(program),
            source,
        })?;
    let ready = runtime.block_on(async {
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(BenchError::Usage(format!(
                    "the server exited before it was ready: {status}"
                )));
            }
            if let Ok(mut connection) = Connection::open(&target).await {
                let answer = connection
                    .send(Method::GET, "/ready", &[], Bytes::new())
                    .await;
                if answer.is_ok_and(|a| a.status == StatusCode::OK) {
                    return Ok(started.elapsed());
                }
            }
            tokio::time::sleep(READY_POLL).await;
        }
        Err(BenchError::Http {
            url: target.url("/ready"),
            message: format!("not ready after {timeout:?}"),
        })
    })?;
    Ok(StartupReport {
        pid: child.id(),
        ready_s: ready.as_secs_f64(),
    })
}

/// `POST /flush`, timed.
pub(crate) fn flush(url: &str) -> Result<FlushReport> {
    let target = Target::parse(url)?;
    let started = Instant::now();
    let answer = runtime()?.block_on(async {
        let mut connection = Connection::open(&target).await?;
        connection
            .send(Method::POST, "/flush", &[], Bytes::new())
            .await
    })?;
    if !answer.status.is_success() {
        return Err(BenchError::Http {
            url: target.url("/flush"),
            message: format!(
                "{}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            ),
        });
    }
    Ok(FlushReport {
        status: answer.status.as_u16(),
        flush_s: started.elapsed().as_secs_f64(),
    })
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| BenchError::Io {
            what: "cannot start the async runtime",
            path: PathBuf::new(),
            source,
        })
}
