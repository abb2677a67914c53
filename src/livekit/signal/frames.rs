//! One protobuf per binary WebSocket frame, in both directions, for participants (`/rtc`) and
//! agent workers (`/agent`) alike.

use livekit_protocol::{
    ServerMessage, SignalRequest, SignalResponse, WorkerMessage, server_message, signal_request, signal_response,
    worker_message,
};
use prost::Message;

/// Signalling messages are small (SDP is the largest, a few KiB); this bounds what a broken or
/// hostile peer can make us decode.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Why a signalling frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Over the 1 MiB frame limit; the size in bytes.
    #[error("the signalling frame is {0} bytes, over the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not protobuf of the expected message type.
    #[error("the signalling frame is not a valid protobuf: {0}")]
    Malformed(String),
    /// No message, or one this build does not know: skip it, as LiveKit clients do.
    #[error("the signalling frame carries no message")]
    Empty,
}

/// Encodes what a client sends, one binary frame's payload.
pub fn encode_request(message: signal_request::Message) -> Vec<u8> {
    SignalRequest { message: Some(message) }.encode_to_vec()
}

/// Encodes what a server sends a client.
pub fn encode_response(message: signal_response::Message) -> Vec<u8> {
    SignalResponse { message: Some(message) }.encode_to_vec()
}

/// Encodes what an agent worker sends the server.
pub fn encode_worker_message(message: worker_message::Message) -> Vec<u8> {
    WorkerMessage { message: Some(message) }.encode_to_vec()
}

/// Encodes what the server sends an agent worker.
pub fn encode_server_message(message: server_message::Message) -> Vec<u8> {
    ServerMessage { message: Some(message) }.encode_to_vec()
}

/// Decodes what a server sends. A message type this build does not know yields `Empty`, which
/// callers ignore, as LiveKit clients do.
pub fn decode_response(bytes: &[u8]) -> Result<signal_response::Message, FrameError> {
    decode::<SignalResponse>(bytes)?.message.ok_or(FrameError::Empty)
}

/// Decodes what a client sends.
pub fn decode_request(bytes: &[u8]) -> Result<signal_request::Message, FrameError> {
    decode::<SignalRequest>(bytes)?.message.ok_or(FrameError::Empty)
}

/// Decodes what an agent worker sends.
pub fn decode_worker_message(bytes: &[u8]) -> Result<worker_message::Message, FrameError> {
    decode::<WorkerMessage>(bytes)?.message.ok_or(FrameError::Empty)
}

/// Decodes what the server sends an agent worker.
pub fn decode_server_message(bytes: &[u8]) -> Result<server_message::Message, FrameError> {
    decode::<ServerMessage>(bytes)?.message.ok_or(FrameError::Empty)
}

fn decode<T: Message + Default>(bytes: &[u8]) -> Result<T, FrameError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(bytes.len()));
    }
    T::decode(bytes).map_err(|e| FrameError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use livekit_protocol::Ping;

    #[test]
    fn round_trips_both_directions() {
        let ping = signal_request::Message::PingReq(Ping { timestamp: 42, rtt: 7 });
        assert_eq!(decode_request(&encode_request(ping.clone())), Ok(ping));
        let refresh = signal_response::Message::RefreshToken("jwt".into());
        assert_eq!(decode_response(&encode_response(refresh.clone())), Ok(refresh));
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        assert_eq!(decode_request(&[]), Err(FrameError::Empty));
        assert!(matches!(decode_request(&[0xff, 0xff, 0xff]), Err(FrameError::Malformed(_))));
        assert!(matches!(decode_response(&vec![0u8; MAX_FRAME_BYTES + 1]), Err(FrameError::TooLarge(_))));
        let mut seed = 0x2545_f491_u32;
        for length in 0..400 {
            let bytes: Vec<u8> = (0..length)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            let _ = decode_request(&bytes);
            let _ = decode_response(&bytes);
            let _ = decode_worker_message(&bytes);
            let _ = decode_server_message(&bytes);
        }
    }
}
