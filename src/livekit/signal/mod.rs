//! The signal connection: one WebSocket carrying one protobuf per binary frame.

pub(crate) mod connection;
pub(crate) mod frames;
pub(crate) mod keepalive;
pub(crate) mod url;

pub use connection::{WsStream, next_message, open};
pub use frames::{
    FrameError, decode_request, decode_response, decode_server_message, decode_worker_message, encode_request,
    encode_worker_message,
};
pub(crate) use frames::{encode_response, encode_server_message};
pub(crate) use keepalive::{Keepalive, KeepaliveAction};
pub use url::{JoinParams, PROTOCOL_VERSION, endpoint, rtc_url, validate_url};

/// Why joining a room failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not a ws, wss, http or https URL with a host (credentials redacted).
    #[error("invalid LiveKit URL {0}")]
    InvalidUrl(String),
    /// The token cannot be put in a header.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The server answered the WebSocket upgrade with an HTTP error; a 401 means a bad token.
    #[error("the LiveKit server refused the join with HTTP {status}: {}", if reason.is_empty() { "no reason given" } else { reason.as_str() })]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's explanation from the plain-HTTP validate endpoint; may be empty.
        reason: String,
    },
    /// No connection (DNS, TCP, TLS) or no first message in time; worth retrying.
    #[error("the LiveKit server cannot be reached: {0}")]
    Unreachable(String),
    /// The server sent something other than what the protocol allows at this point.
    #[error("the LiveKit server broke the protocol: {0}")]
    Protocol(String),
    /// The server sent a LeaveRequest instead of joining us (room full, deleted...).
    #[error("the LiveKit server turned the join away: {0}")]
    Left(String),
    /// Signalling worked but ICE/DTLS did not connect.
    #[error("the WebRTC connection could not be set up: {0}")]
    Media(String),
}
