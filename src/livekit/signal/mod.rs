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
    /// The token is empty or cannot be sent in an HTTP header.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The server answered the WebSocket upgrade with an HTTP error; a 401 means a bad token.
    #[error("the LiveKit server refused the join with HTTP {status}: {}", if reason.is_empty() { "no reason given" } else { reason.as_str() })]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's explanation (the body, else its validate endpoint's answer); may be empty.
        reason: String,
    },
    /// No connection (DNS, TCP, TLS, or none within 10 s); worth retrying.
    #[error("the LiveKit server cannot be reached: {0}")]
    Unreachable(String),
    /// The server sent something the protocol does not allow here, closed the connection, or
    /// sent nothing after the upgrade.
    #[error("the LiveKit server broke the protocol: {0}")]
    Protocol(String),
    /// The server answered the join with a LeaveRequest; the `DisconnectReason` name.
    #[error("the LiveKit server turned the join away: {0}")]
    Left(String),
    /// WebRTC could not be set up: no UDP socket could be opened.
    #[error("the WebRTC connection could not be set up: {0}")]
    Media(String),
}
