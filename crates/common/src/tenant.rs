use std::fmt;
use std::sync::Arc;

use crate::{Error, Result};

/// Loki's limit on the length of a tenant ID.
const MAX_TENANT_ID_LEN: usize = 150;

/// A validated tenant ID (Loki's `X-Scope-OrgID`), cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tenant(Arc<str>);

impl Tenant {
    /// The tenant every request belongs to when `auth_enabled` is false.
    pub const SINGLE: &'static str = "fake";

    /// Validates a tenant ID with Loki's rules: at most 150 bytes of
    /// `[a-zA-Z0-9!-_.*'()]`, and not `.` or `..`.
    pub fn new(id: &str) -> Result<Self> {
        if id.is_empty() {
            return Err(Error::InvalidTenant("no org id".into()));
        }
        if id.len() > MAX_TENANT_ID_LEN {
            return Err(Error::InvalidTenant(format!(
                "tenant ID is too long: max {MAX_TENANT_ID_LEN} characters"
            )));
        }
        if id == "." || id == ".." {
            return Err(Error::InvalidTenant("tenant ID is '.' or '..'".into()));
        }
        if let Some(bad) = id.chars().find(|c| !is_tenant_char(*c)) {
            return Err(Error::InvalidTenant(format!(
                "tenant ID '{id}' contains unsupported character '{bad}'"
            )));
        }
        Ok(Tenant(Arc::from(id)))
    }

    /// The tenant of a server running with `auth_enabled: false`.
    pub fn single() -> Self {
        Tenant(Arc::from(Self::SINGLE))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_tenant_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '!' | '-' | '_' | '.' | '*' | '\'' | '(' | ')')
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loki_tenant_ids() {
        for id in ["fake", "team-a", "a.b_c", "x(1)*'!"] {
            assert_eq!(Tenant::new(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn rejects_bad_tenant_ids() {
        for id in ["", ".", "..", "a/b", "a b", &"x".repeat(151)] {
            assert!(Tenant::new(id).is_err(), "{id:?}");
        }
    }
}
