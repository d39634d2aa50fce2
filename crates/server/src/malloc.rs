//! glibc malloc settings for a process whose memory must stay flat.
//!
//! With glibc's defaults the heap held far more than the live data on the 1M- and 10M-line
//! benches: glibc raises its mmap threshold to the largest block freed so far (up to
//! 32 MiB), so that after the first flush segment objects, request bodies and sealed chunks
//! all come from arenas, where the holes they leave are rarely given back to the kernel;
//! and every thread that allocates may get an arena of its own (up to 8 per core). Fixing
//! the threshold at 1 MiB (which also stops the raising) and allowing two arenas cut the
//! peak RSS of the 1M bench from 117 to 88 MiB for about 0.1 CPU-s per million lines.
//!
//! An operator's own `MALLOC_ARENA_MAX` or `MALLOC_MMAP_THRESHOLD_` (glibc reads them at
//! start) wins: then nothing is changed here.

/// Arenas: the runtime workers and the blocking threads share them, so freed memory is
/// found again instead of stranded in an arena another thread used once.
const ARENA_MAX: i32 = 2;
/// Blocks from this size up get their own mapping, returned to the kernel when freed.
const MMAP_THRESHOLD: i32 = 1 << 20;

const OPERATOR_VARS: [&str; 2] = ["MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_"];

/// Whether the operator tuned malloc through the environment.
fn operator_tuned(get: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    OPERATOR_VARS.iter().any(|name| get(name).is_some())
}

/// Applies the settings above. Call it first thing in `main`, before any thread starts.
pub fn tune_malloc() {
    if operator_tuned(|name| std::env::var_os(name)) {
        return;
    }
    set_glibc_options();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
// One of the project's two unsafe calls (the crate denies unsafe code everywhere else):
// `mallopt` takes two integers and has no memory-safety preconditions; it only returns 0
// when glibc refuses a value.
#[allow(unsafe_code)]
fn set_glibc_options() -> bool {
    let mut all_taken = true;
    for (option, value) in [
        (libc::M_ARENA_MAX, ARENA_MAX),
        (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
    ] {
        // SAFETY: mallopt only stores the integer setting; any value is memory-safe.
        if unsafe { libc::mallopt(option, value) } == 0 {
            eprintln!(
                "fenrir: glibc refused malloc option {option} = {value}; keeping its default"
            );
            all_taken = false;
        }
    }
    all_taken
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_glibc_options() -> bool {
    true
}

/// How often the trimmer looks whether a flush happened.
const TRIM_CHECK: std::time::Duration = std::time::Duration::from_secs(2);
/// The longest time between two trims while anything was allocated: queries free their
/// decoded blocks without any flush.
const TRIM_AT_LEAST_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Gives the heap memory freed since the last call back to the kernel, on a blocking
/// thread, after every flush and at least every few seconds, while the process holds more
/// than twice the write path's memory budget.
///
/// Even with the settings above, glibc keeps freed blocks below its mmap threshold in its
/// arenas, and a flush frees many of them (open blocks, parts, sealed chunks) between live
/// ones, so nothing sits at the top of the heap for glibc to give back by itself. On the
/// 10M-line bench the server held 271 MiB after a flush and 51 MiB after one
/// `malloc_trim(0)`.
pub(crate) fn spawn_memory_trimmer(
    ingester: fenrir_ingest::Ingester,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut flushed = ingester.backlog().flushed_chunks;
        let mut last_trim = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(TRIM_CHECK).await;
            let backlog = ingester.backlog();
            let now_flushed = backlog.flushed_chunks;
            if now_flushed == flushed && last_trim.elapsed() < TRIM_AT_LEAST_EVERY {
                continue;
            }
            let threshold = 2 * backlog.memory_budget;
            // Reading /proc and trimming both block: off the runtime's threads.
            let trimmed = tokio::task::spawn_blocking(move || {
                // A trim walks the whole heap: not worth it while the process is small.
                if resident_bytes().is_some_and(|rss| rss < threshold) {
                    return false;
                }
                release_free_memory();
                true
            })
            .await;
            match trimmed {
                Ok(true) => {
                    flushed = now_flushed;
                    last_trim = tokio::time::Instant::now();
                }
                Ok(false) => {}
                Err(_) => return,
            }
        }
    })
}

/// This process's resident memory (`VmRSS`), where the system says it.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_free_memory() {
    // SAFETY: malloc_trim takes an integer and only returns free pages to the kernel.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operators_environment_wins() {
        assert!(!operator_tuned(|_| None));
        let operator = |name: &str| (name == "MALLOC_ARENA_MAX").then(|| "8".into());
        assert!(operator_tuned(operator));
    }

    #[test]
    fn resident_memory_is_read_from_proc_status() {
        let status = "Name:\tfenrir\nVmHWM:\t  90000 kB\nVmRSS:\t   51234 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss(status), Some(51234 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn glibc_accepts_the_settings() {
        // Runs in the test process, after threads exist: glibc still takes both values.
        assert!(set_glibc_options());
    }
}
