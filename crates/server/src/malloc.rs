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
// The one unsafe call of the project (the crate denies unsafe code everywhere else):
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
            eprintln!("fenrir: glibc refused malloc option {option} = {value}; keeping its default");
            all_taken = false;
        }
    }
    all_taken
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_glibc_options() -> bool {
    true
}

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
    fn glibc_accepts_the_settings() {
        // Runs in the test process, after threads exist: glibc still takes both values.
        assert!(set_glibc_options());
    }
}
