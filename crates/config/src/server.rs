//! `server`: the HTTP listener and logging.

use std::time::Duration;

use crate::section::section;
use crate::units::duration_serde;

section! {
    /// `server`: where Fenrir listens and how it logs.
    pub struct ServerConfig {
        /// Address to bind. Fenrir binds loopback by default, unlike Loki (all
        /// interfaces); an empty string means all interfaces, as in Loki.
        http_listen_address: String = "127.0.0.1".to_string(),
        /// HTTP port.
        http_listen_port: u16 = 3100,
        /// How long in-flight requests may run after a shutdown signal.
        #[serde(with = "duration_serde")]
        graceful_shutdown_timeout: Duration = Duration::from_secs(30),
        /// Longest time to read a whole request; 0 means no limit.
        #[serde(with = "duration_serde")]
        http_server_read_timeout: Duration = Duration::from_secs(30),
        /// Longest time to read request headers; 0 means no limit.
        #[serde(with = "duration_serde")]
        http_server_read_header_timeout: Duration = Duration::ZERO,
        /// Longest time to write a response; 0 means no limit.
        #[serde(with = "duration_serde")]
        http_server_write_timeout: Duration = Duration::from_secs(30),
        /// How long an idle keep-alive connection stays open.
        #[serde(with = "duration_serde")]
        http_server_idle_timeout: Duration = Duration::from_secs(120),
        /// Prefix before every HTTP route, e.g. `/loki-proxy`; empty for none.
        http_path_prefix: String = String::new(),
        /// `debug`, `info`, `warn` or `error`.
        log_level: String = "info".to_string(),
        /// `logfmt` or `json`.
        log_format: String = "logfmt".to_string(),
    }
    nested []
    ignored [
        http_listen_network, http_listen_conn_limit, grpc_listen_network, grpc_listen_address,
        grpc_listen_port, grpc_listen_conn_limit, http_tls_config, grpc_tls_config,
        tls_cipher_suites, tls_min_version, register_instrumentation,
        report_grpc_codes_in_instrumentation_label_enabled,
        http_log_closed_connections_without_response, grpc_server_max_recv_msg_size,
        grpc_server_max_send_msg_size, grpc_server_max_concurrent_streams,
        grpc_server_max_connection_idle, grpc_server_max_connection_age,
        grpc_server_max_connection_age_grace, grpc_server_keepalive_time,
        grpc_server_keepalive_timeout, grpc_server_min_time_between_pings,
        grpc_server_ping_without_stream_allowed, grpc_server_num_workers,
        grpc_server_stats_tracking_enabled, grpc_server_recv_buffer_pools_enabled,
        log_source_ips_enabled, log_source_ips_header, log_source_ips_regex,
        log_request_headers, log_request_at_info_level_enabled,
        log_request_exclude_headers_list, cluster_validation, http_middleware,
    ]
}
