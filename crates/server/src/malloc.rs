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
//! glibc reads these settings from the environment when the process starts, and changing
//! them later (`mallopt`) needs unsafe code, which this workspace forbids. So `main` calls
//! [`reexec_with_malloc_settings`] first: when neither variable is set it executes the same
//! binary again (same process id, arguments and environment) with both set. An operator's
//! own `MALLOC_ARENA_MAX` or `MALLOC_MMAP_THRESHOLD_` is left alone.

use std::ffi::OsString;

/// Arenas: the runtime workers and the blocking threads share them, so freed memory is
/// found again instead of stranded in an arena another thread used once.
const ARENA_MAX: &str = "2";
/// Blocks from this size up get their own mapping, returned to the kernel when freed.
const MMAP_THRESHOLD: &str = "1048576";

const VARS: [(&str, &str); 2] = [
    ("MALLOC_ARENA_MAX", ARENA_MAX),
    ("MALLOC_MMAP_THRESHOLD_", MMAP_THRESHOLD),
];

/// The variables to set before running again, or none when the operator set any of them
/// (or this is the second run).
fn missing_settings(get: impl Fn(&str) -> Option<OsString>) -> Vec<(&'static str, &'static str)> {
    if VARS.iter().any(|(name, _)| get(name).is_some()) {
        return Vec::new();
    }
    VARS.to_vec()
}

/// Replaces this process with the same binary and the settings above in its environment.
/// Returns only when nothing needs doing or the exec failed (then glibc's defaults stay).
pub fn reexec_with_malloc_settings() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;

        let vars = missing_settings(|name| std::env::var_os(name));
        if vars.is_empty() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new(exe);
        if let Some(arg0) = args.next() {
            command.arg0(arg0);
        }
        let error = command.args(args).envs(vars).exec();
        // Logging is not set up yet.
        eprintln!("fenrir: running with glibc's default malloc settings: re-exec failed: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_added_only_when_the_operator_set_none() {
        assert_eq!(missing_settings(|_| None), VARS.to_vec());
        let operator = |name: &str| (name == "MALLOC_ARENA_MAX").then(|| OsString::from("8"));
        assert!(missing_settings(operator).is_empty());
        // The second run finds its own settings and goes on.
        let second = |name: &str| {
            VARS.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        };
        assert!(missing_settings(second).is_empty());
    }
}
