//! The ingester's per-tenant limits (spec §2.6) and Loki's texts for what they refuse.

use fenrir_common::{LabelSet, Tenant, Timestamp};

/// Most refused entries a per-stream message lists (Loki's `max_returned_stream_errors`).
pub(crate) const MAX_RETURNED_STREAM_ERRORS: usize = 10;

/// One tenant's write limits, resolved by the caller from its runtime overrides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PushLimits {
    /// `ingestion_rate_mb` in bytes per second.
    pub ingestion_rate: f64,
    /// `ingestion_burst_size_mb` in bytes.
    pub ingestion_burst: f64,
    /// `per_stream_rate_limit` in bytes per second.
    pub per_stream_rate: f64,
    /// `per_stream_rate_limit_burst` in bytes.
    pub per_stream_burst: f64,
    /// Most active streams (`max_global_streams_per_user`, which is the local limit on one
    /// node, or `max_streams_per_user` when lower); 0 is unlimited.
    pub max_streams: usize,
}

impl PushLimits {
    /// No limit at all.
    pub fn unlimited() -> Self {
        PushLimits {
            ingestion_rate: f64::INFINITY,
            ingestion_burst: f64::INFINITY,
            per_stream_rate: f64::INFINITY,
            per_stream_burst: f64::INFINITY,
            max_streams: 0,
        }
    }
}

impl Default for PushLimits {
    /// Loki's defaults: 4 MiB/s with 6 MiB burst per tenant, 3 MiB/s with 15 MiB burst per
    /// stream, 5000 streams.
    fn default() -> Self {
        PushLimits {
            ingestion_rate: 4.0 * 1_048_576.0,
            ingestion_burst: 6.0 * 1_048_576.0,
            per_stream_rate: f64::from(3u32 << 20),
            per_stream_burst: f64::from(15u32 << 20),
            max_streams: 5000,
        }
    }
}

/// Why entries were not stored; the names are Loki's `reason` label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DiscardReason {
    /// The tenant's ingestion rate limit refused the whole request.
    RateLimited,
    /// The stream's rate limit refused the entry.
    PerStreamRateLimit,
    /// The stream would have exceeded the tenant's active stream limit.
    StreamLimit,
    /// The entry is older than the stream's out-of-order window.
    TooFarBehind,
}

impl DiscardReason {
    /// Loki's `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DiscardReason::RateLimited => "rate_limited",
            DiscardReason::PerStreamRateLimit => "per_stream_rate_limit",
            DiscardReason::StreamLimit => "stream_limit",
            DiscardReason::TooFarBehind => "too_far_behind",
        }
    }
}

/// Entries the ingester refused; the rest of the push, if any, was stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// Loki's message text.
    pub message: String,
    /// A rate or stream limit refused something (429); otherwise only the out-of-order
    /// window did (400).
    pub limited: bool,
    /// Entries and bytes refused, per reason.
    pub discarded: Vec<Discarded>,
}

/// A count of refused entries for one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discarded {
    /// Why.
    pub reason: DiscardReason,
    /// Entries refused.
    pub entries: u64,
    /// Their line and structured-metadata bytes.
    pub bytes: u64,
}

/// The tenant rate limit's text (whole request refused).
pub(crate) fn rate_limited_message(tenant: &Tenant, rate: f64, lines: u64, bytes: u64) -> String {
    format!(
        "ingestion rate limit exceeded for user {tenant} (limit: {} bytes/sec) while attempting to ingest '{lines}' lines totaling '{bytes}' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased",
        go_int(rate)
    )
}

/// The active stream limit's text (new stream refused).
pub(crate) fn stream_limit_message(tenant: &Tenant, labels: &LabelSet) -> String {
    format!(
        "maximum active stream limit exceeded when trying to create stream {labels}, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: '{tenant}'"
    )
}

/// The per-stream rate limit's reason for one entry.
pub(crate) fn per_stream_rate_reason(labels: &LabelSet, rate: f64, entry_bytes: usize) -> String {
    format!(
        "Per stream rate limit exceeded (limit: {}/sec) while attempting to ingest for stream '{labels}' totaling {}, consider splitting a stream via additional labels or contact your Loki administrator to see if the limit can be increased",
        byte_size(go_int(rate)),
        byte_size(entry_bytes as i64)
    )
}

/// The out-of-order window's reason for one entry.
pub(crate) fn too_far_behind_reason(ts: Timestamp, cutoff: Timestamp) -> String {
    format!(
        "entry too far behind, entry timestamp is: {}, oldest acceptable timestamp is: {}",
        fenrir_common::time::format_rfc3339(ts),
        fenrir_common::time::format_rfc3339(cutoff),
    )
}

/// Loki's per-stream text: up to ten refused entries with their reasons, then a summary.
pub(crate) fn refused_entries_message(
    tenant: &Tenant,
    labels: &LabelSet,
    refused: &[(Timestamp, String)],
    total: usize,
) -> String {
    let mut msg = String::new();
    for (ts, reason) in refused.iter().take(MAX_RETURNED_STREAM_ERRORS) {
        msg.push_str(&format!(
            "entry with timestamp {} ignored, reason: '{reason}',\n",
            fenrir_common::time::format_go_time(*ts),
        ));
    }
    msg.push_str(&format!(
        "user '{tenant}', total ignored: {} out of {total} for stream: {labels}",
        refused.len()
    ));
    msg
}

/// Go's `int(f)` of a float limit, saturating instead of overflowing.
fn go_int(value: f64) -> i64 {
    if value.is_nan() {
        0
    } else {
        value as i64
    }
}

/// `flagext.ByteSize` as Loki prints it (alecthomas/units base-2): every non-zero
/// 1024-based part from largest to smallest, e.g. `3MiB`, `1KiB512B`, `0B`.
pub(crate) fn byte_size(n: i64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n == 0 {
        return "0B".to_string();
    }
    let mut parts = Vec::new();
    let mut rest = n;
    for unit in UNITS {
        if rest % 1024 != 0 {
            parts.push(format!("{}{unit}", rest % 1024));
        }
        rest /= 1024;
        if rest == 0 {
            break;
        }
    }
    parts.reverse();
    parts.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_print_as_loki_prints_them() {
        assert_eq!(byte_size(0), "0B");
        assert_eq!(byte_size(100), "100B");
        assert_eq!(byte_size(1024), "1KiB");
        assert_eq!(byte_size(1536), "1KiB512B");
        assert_eq!(byte_size(3 << 20), "3MiB");
        assert_eq!(byte_size((15 << 20) + 1), "15MiB1B");
    }

    #[test]
    fn messages_are_lokis() {
        let tenant = Tenant::new("acme").unwrap();
        let labels = LabelSet::from_pairs([("app", "api")]);
        assert_eq!(
            rate_limited_message(&tenant, 4.0 * 1_048_576.0, 3, 120),
            "ingestion rate limit exceeded for user acme (limit: 4194304 bytes/sec) while attempting to ingest '3' lines totaling '120' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased"
        );
        assert_eq!(
            stream_limit_message(&tenant, &labels),
            "maximum active stream limit exceeded when trying to create stream {app=\"api\"}, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: 'acme'"
        );
        assert_eq!(
            per_stream_rate_reason(&labels, f64::from(3u32 << 20), 10),
            "Per stream rate limit exceeded (limit: 3MiB/sec) while attempting to ingest for stream '{app=\"api\"}' totaling 10B, consider splitting a stream via additional labels or contact your Loki administrator to see if the limit can be increased"
        );
        let refused: Vec<_> = (0..12)
            .map(|i| (i * 1_000_000_000, "why".to_string()))
            .collect();
        let msg = refused_entries_message(&tenant, &labels, &refused, 20);
        assert_eq!(msg.lines().count(), 11, "{msg}");
        assert!(msg.starts_with(
            "entry with timestamp 1970-01-01 00:00:00 +0000 UTC ignored, reason: 'why',\n"
        ));
        assert!(msg.ends_with("user 'acme', total ignored: 12 out of 20 for stream: {app=\"api\"}"));
    }
}
