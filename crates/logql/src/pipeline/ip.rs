//! `ip("…")` matching for line and label filters: a single address, a range `a-b`, or a
//! CIDR; a text matches when any IP-looking token in it falls in the set.

use std::net::IpAddr;

/// A compiled `ip("…")` pattern.
#[derive(Debug, Clone)]
pub(crate) enum IpMatcher {
    Single(IpAddr),
    Range(IpAddr, IpAddr),
    Cidr { network: IpAddr, prefix: u8 },
}

/// Loki's error for a pattern that is none of the three forms.
pub(crate) fn invalid_pattern(pattern: &str) -> String {
    format!("ip: invalid pattern: {pattern}")
}

impl IpMatcher {
    pub(crate) fn new(pattern: &str) -> Result<IpMatcher, String> {
        let p = pattern.trim();
        if let Some((addr, prefix)) = p.split_once('/') {
            let network: IpAddr = addr.parse().map_err(|_| invalid_pattern(pattern))?;
            let prefix: u8 = prefix.parse().map_err(|_| invalid_pattern(pattern))?;
            let max = if network.is_ipv4() { 32 } else { 128 };
            if prefix > max {
                return Err(invalid_pattern(pattern));
            }
            return Ok(IpMatcher::Cidr { network, prefix });
        }
        if let Some((a, b)) = p.split_once('-') {
            let start: IpAddr = a.trim().parse().map_err(|_| invalid_pattern(pattern))?;
            let end: IpAddr = b.trim().parse().map_err(|_| invalid_pattern(pattern))?;
            if start.is_ipv4() != end.is_ipv4() || to_u128(start) > to_u128(end) {
                return Err(invalid_pattern(pattern));
            }
            return Ok(IpMatcher::Range(start, end));
        }
        p.parse()
            .map(IpMatcher::Single)
            .map_err(|_| invalid_pattern(pattern))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match *self {
            IpMatcher::Single(a) => a == ip,
            IpMatcher::Range(a, b) => {
                a.is_ipv4() == ip.is_ipv4() && (to_u128(a)..=to_u128(b)).contains(&to_u128(ip))
            }
            IpMatcher::Cidr { network, prefix } => {
                if network.is_ipv4() != ip.is_ipv4() {
                    return false;
                }
                let bits: u32 = if network.is_ipv4() { 32 } else { 128 };
                let shift = bits - u32::from(prefix);
                let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
                (to_u128(network) & mask) == (to_u128(ip) & mask)
            }
        }
    }

    /// Whether any IP address found in `text` is in the set.
    pub(crate) fn matches_any_in(&self, text: &str) -> bool {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if !(b.is_ascii_hexdigit() || b == b':') {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_hexdigit() || bytes[i] == b'.' || bytes[i] == b':')
            {
                i += 1;
            }
            if self.token_matches(&text[start..i]) {
                return true;
            }
        }
        false
    }

    /// Tries a run of `[0-9a-fA-F.:]` as an address, then as `v4:port`, then each IPv4
    /// dotted run inside it (so `abc10.0.0.1` still finds `10.0.0.1`).
    fn token_matches(&self, token: &str) -> bool {
        let token = token.trim_end_matches('.');
        if let Ok(ip) = token.parse::<IpAddr>() {
            return self.contains(ip);
        }
        if token.contains(':') {
            if let Some((head, _)) = token.rsplit_once(':') {
                if let Ok(ip) = head.parse::<IpAddr>() {
                    if self.contains(ip) {
                        return true;
                    }
                }
            }
        }
        token
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|part| part.contains('.'))
            .filter_map(|part| part.trim_matches('.').parse::<IpAddr>().ok())
            .any(|ip| self.contains(ip))
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_range_and_single() {
        let cidr = IpMatcher::new("10.0.0.0/8").unwrap();
        assert!(cidr.matches_any_in("client 10.1.2.3 connected"));
        assert!(cidr.matches_any_in("client 10.0.0.7:80"));
        assert!(!cidr.matches_any_in("client 192.168.1.1"));
        assert!(!cidr.matches_any_in("no address here"));
        let range = IpMatcher::new("192.168.0.1-192.168.0.10").unwrap();
        assert!(range.matches_any_in("ip=192.168.0.5"));
        assert!(!range.matches_any_in("ip=192.168.0.11"));
        let single = IpMatcher::new("::1").unwrap();
        assert!(single.matches_any_in("from ::1 port"));
        let v6 = IpMatcher::new("2001:db8::/32").unwrap();
        assert!(v6.matches_any_in("addr=2001:db8::ff00:42:8329"));
        assert!(!v6.matches_any_in("addr=10.0.0.1"));
        assert!(cidr.matches_any_in("abc10.0.0.1"));
    }

    #[test]
    fn bad_patterns() {
        for p in [
            "",
            "10.0.0.0/40",
            "1.2.3.4-::1",
            "10.0.0.9-10.0.0.1",
            "nope",
        ] {
            let err = IpMatcher::new(p).unwrap_err();
            assert!(err.starts_with("ip: invalid pattern"), "{p}: {err}");
        }
    }
}
