//! Hardened HTTP/1.1 serving, shared by the product's three HTTP servers (the token server, the
//! worker's health endpoint and the LiveKit dev server), so that no client, slow or hostile, can
//! hold a server or the process's file descriptors.
//!
//! [`serve`] replaces `axum::serve` and enforces [`Limits`]:
//! - **Connections**: at most `max_connections` at once, and at most
//!   `max_connections_per_client` from one client (an IPv4 address or an IPv6 /64). A connection
//!   beyond either cap is answered `503` with `Retry-After` and closed at once, so it costs one
//!   descriptor for an instant, never a slot.
//! - **Request heads**: a request's line and headers must arrive within `request_head_timeout`,
//!   counted from the connection's start or from the end of the previous response. A slowloris
//!   dripping header bytes is cut off at that deadline, and an idle keep-alive connection is
//!   closed after the same time. Heads are limited to [`MAX_HEAD_BYTES`] (431 beyond).
//! - **Request bodies**: a body announcing more than `max_body_bytes` is answered `413` before a
//!   byte of it is read; a body that grows past the limit, or does not arrive in full within
//!   `body_timeout`, ends the request with `413` or `408` and the connection is closed.
//! - **Slow readers**: a write that makes no progress for `write_stall_timeout` closes the
//!   connection, so a client that never reads its response does not keep its slot. This also
//!   holds after a WebSocket upgrade.
//! - **Shutdown**: when the shutdown future completes, listening stops, idle connections close,
//!   requests in flight may finish within `shutdown_grace`, and what is left is cut.
//!
//! A connection upgraded to a WebSocket leaves the connection count (its server bounds its
//! sessions itself) but keeps the stall protection.
//!
//! Decisions are plain state (the admission counts, the body's budget); the shell ([`serve`])
//! owns the sockets, the timers and one task per connection.

mod admission;
mod body;
mod causes;
mod client;
mod limits;
mod serve;
mod stall;

pub(crate) use causes::causes;
pub use client::client_key;
pub use limits::{Limits, MAX_HEAD_BYTES};
pub use serve::serve;
