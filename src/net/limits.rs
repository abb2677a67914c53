//! What a server tolerates from its clients.

use std::time::Duration;

/// Request line and headers together; browsers send a few KiB. Hyper refuses longer heads with 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Limits for one server. The defaults suit a small API on the open internet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once, across all clients. Keep the sum over a process's servers
    /// well under its descriptor limit (`ulimit -n`).
    pub max_connections: usize,
    /// Connections one client (an IPv4 address or an IPv6 /64) may hold at once; `None` when
    /// every connection comes from the same proxy, where a per-client cap would cap everyone.
    pub max_connections_per_client: Option<usize>,
    /// Time for a request's head to arrive, from the connection's start or the end of the
    /// previous response; so it is also how long an idle keep-alive connection stays open.
    pub request_head_timeout: Duration,
    /// Time for a whole request body to arrive, from the end of its head.
    pub body_timeout: Duration,
    /// Largest request body accepted, announced or streamed.
    pub max_body_bytes: u64,
    /// Time a write may make no progress (the client reads nothing) before the connection is cut.
    pub write_stall_timeout: Duration,
    /// On shutdown, time requests in flight get to finish.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_connections_per_client: None,
            request_head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_body_bytes: 64 * 1024,
            write_stall_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}
