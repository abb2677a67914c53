//! The signal connection: one WebSocket carrying one protobuf per binary frame.

pub mod connection;
pub mod frames;
pub mod keepalive;
pub mod url;

pub use connection::{WsStream, next_message, open};
pub use frames::{
    FrameError, decode_request, decode_response, decode_server_message, decode_worker_message, encode_request,
    encode_response, encode_server_message, encode_worker_message,
};
pub use keepalive::{Keepalive, KeepaliveAction};
pub use url::{JoinParams, PROTOCOL_VERSION, endpoint, rtc_url, validate_url};

/// Why joining a room failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid LiveKit URL {0}")]
    InvalidUrl(String),
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("the LiveKit server refused the join with HTTP {status}: {}", if reason.is_empty() { "no reason given" } else { reason.as_str() })]
    Refused { status: u16, reason: String },
    #[error("the LiveKit server cannot be reached: {0}")]
    Unreachable(String),
    #[error("the LiveKit server broke the protocol: {0}")]
    Protocol(String),
    #[error("the LiveKit server turned the join away: {0}")]
    Left(String),
    #[error("the WebRTC connection could not be set up: {0}")]
    Media(String),
}
