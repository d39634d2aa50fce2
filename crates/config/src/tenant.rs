//! Each tenant's effective limits at run time: `limits_config` for everyone, replaced per
//! tenant by the `overrides` of the runtime configuration file, which the server re-reads
//! every `runtime_config.period`.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::config::MAX_CONFIG_FILE_BYTES;
use crate::{parse_overrides, Error, Limits, Result};

/// Every tenant's limits, shared by the push and query paths. Cheap to clone; a reload is
/// seen by every clone at the next lookup, so requests in flight keep the limits they
/// started with.
#[derive(Debug, Clone)]
pub struct TenantLimits {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    defaults: Arc<Limits>,
    overrides: RwLock<Arc<HashMap<String, Arc<Limits>>>>,
}

impl TenantLimits {
    /// Limits with `defaults` (the server's `limits_config`) for every tenant.
    pub fn new(defaults: Limits) -> Self {
        TenantLimits {
            inner: Arc::new(Inner {
                defaults: Arc::new(defaults),
                overrides: RwLock::new(Arc::default()),
            }),
        }
    }

    /// The effective limits of `tenant`.
    pub fn get(&self, tenant: &str) -> Arc<Limits> {
        let overrides = self.current();
        match overrides.get(tenant) {
            Some(limits) => limits.clone(),
            None => self.inner.defaults.clone(),
        }
    }

    /// The limits of tenants without overrides.
    pub fn defaults(&self) -> &Limits {
        &self.inner.defaults
    }

    /// Replaces every override at once.
    pub fn set_overrides(&self, overrides: HashMap<String, Limits>) {
        let overrides = overrides
            .into_iter()
            .map(|(tenant, limits)| (tenant, Arc::new(limits)))
            .collect();
        *self
            .inner
            .overrides
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(overrides);
    }

    /// Parses a runtime configuration file's text and, if it is valid, makes its
    /// overrides the current ones; returns how many tenants it overrides. On error the
    /// previous overrides stay in force, as in Loki.
    pub fn apply_runtime_config(&self, text: &str) -> Result<usize> {
        let overrides = parse_overrides(text, &self.inner.defaults)?;
        let tenants = overrides.len();
        self.set_overrides(overrides);
        Ok(tenants)
    }

    /// Reads the runtime configuration file at `path` (blocking I/O, size-capped) and
    /// applies it with [`TenantLimits::apply_runtime_config`].
    pub fn reload_file(&self, path: &Path) -> Result<usize> {
        let text = read_runtime_file(path)?;
        self.apply_runtime_config(&text).map_err(|err| match err {
            Error::Parse(message) => Error::Parse(format!("{}: {message}", path.display())),
            other => other,
        })
    }

    fn current(&self) -> Arc<HashMap<String, Arc<Limits>>> {
        self.inner
            .overrides
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn read_runtime_file(path: &Path) -> Result<String> {
    let read_error = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            max: MAX_CONFIG_FILE_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|_| {
        Error::Parse(format!(
            "{}: runtime config file is not valid UTF-8",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_without_overrides_get_the_defaults() {
        let limits = TenantLimits::new(Limits {
            max_query_series: 7,
            ..Limits::default()
        });
        assert_eq!(limits.get("anyone").max_query_series, 7);
        let n = limits
            .apply_runtime_config("overrides:\n  acme:\n    max_query_series: 9\n")
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(limits.get("acme").max_query_series, 9);
        assert_eq!(limits.get("anyone").max_query_series, 7);
        assert_eq!(limits.defaults().max_query_series, 7);
    }

    #[test]
    fn a_bad_file_keeps_the_previous_overrides() {
        let limits = TenantLimits::new(Limits::default());
        limits
            .apply_runtime_config("overrides:\n  acme:\n    max_query_series: 9\n")
            .unwrap();
        let clone = limits.clone();
        let err = clone
            .apply_runtime_config("overrides:\n  acme:\n    max_query_seriez: 1\n")
            .unwrap_err();
        assert!(err.to_string().contains("max_query_seriez"), "{err}");
        assert_eq!(limits.get("acme").max_query_series, 9);
        clone.apply_runtime_config("").unwrap();
        assert_eq!(
            limits.get("acme").max_query_series,
            500,
            "clones share one set of overrides"
        );
    }

    #[test]
    fn files_are_read_with_a_size_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.yaml");
        std::fs::write(&path, "overrides:\n  acme:\n    max_line_size: 1KB\n").unwrap();
        let limits = TenantLimits::new(Limits::default());
        assert_eq!(limits.reload_file(&path).unwrap(), 1);
        assert_eq!(limits.get("acme").max_line_size, 1024);
        let missing = limits
            .reload_file(&dir.path().join("nope.yaml"))
            .unwrap_err();
        assert!(matches!(missing, Error::Read { .. }), "{missing}");
        std::fs::write(&path, "overrides: [\n").unwrap();
        let err = limits.reload_file(&path).unwrap_err().to_string();
        assert!(err.contains("runtime.yaml"), "{err}");
        assert_eq!(limits.get("acme").max_line_size, 1024);
    }
}
