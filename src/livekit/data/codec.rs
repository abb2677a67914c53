//! Wire form of data-channel messages: every SCTP message on a LiveKit data channel is exactly
//! one protobuf `DataPacket`, with no framing around it.

use livekit_protocol::DataPacket;
use prost::Message;

/// Largest message [`decode`] will parse. Senders stop at [`MAX_OUTGOING_PACKET_BYTES`], but the
/// SFU re-encodes what it forwards after stamping the sender's identity, sid and channel kind
/// onto it, so a forwarded message can be slightly longer than anything a client sent. The
/// allowance covers that while still refusing to parse arbitrarily large buffers from a peer.
pub const MAX_INCOMING_PACKET_BYTES: usize = 64 * 1024 + 4 * 1024;

/// Largest message worth sending: LiveKit's SDKs refuse anything bigger (client-sdk-js and
/// rust-sdks both cap at `DEFAULT_MAX_MESSAGE_SIZE = 64000`) because the SFU's SCTP stack cannot
/// deliver more end to end, so a larger message would be lost rather than rejected.
pub const MAX_OUTGOING_PACKET_BYTES: usize = 64_000;

/// Why a data-channel message could not be turned into, or out of, a `DataPacket`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// The message is over the size limit; nothing was parsed or sent.
    #[error("data packet of {size} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Size of the rejected message in bytes.
        size: usize,
        /// The limit it broke.
        max: usize,
    },
    /// The bytes are not a protobuf `DataPacket`.
    #[error("malformed data packet: {0}")]
    Malformed(#[from] prost::DecodeError),
}

/// Serialises a packet without checking its size, for packets built by this module whose size
/// is bounded by construction (stream chunks are at most 15 000 bytes of content).
pub fn encode(packet: &DataPacket) -> Vec<u8> {
    packet.encode_to_vec()
}

/// Serialises a packet whose size the caller does not control (a user payload, say), refusing
/// one the SFU could not deliver so the caller hears about it instead of the data vanishing.
pub fn encode_for_send(packet: &DataPacket) -> Result<Vec<u8>, DataError> {
    let size = packet.encoded_len();
    if size > MAX_OUTGOING_PACKET_BYTES {
        return Err(DataError::TooLarge { size, max: MAX_OUTGOING_PACKET_BYTES });
    }
    Ok(packet.encode_to_vec())
}

/// Parses one data-channel message. The size check comes first so that a hostile peer cannot
/// make us walk a huge buffer; prost itself returns errors rather than panicking on bad input.
pub fn decode(bytes: &[u8]) -> Result<DataPacket, DataError> {
    if bytes.len() > MAX_INCOMING_PACKET_BYTES {
        return Err(DataError::TooLarge { size: bytes.len(), max: MAX_INCOMING_PACKET_BYTES });
    }
    Ok(DataPacket::decode(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use livekit_protocol::UserPacket;
    use livekit_protocol::data_packet::Value;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn user(payload: Vec<u8>) -> DataPacket {
        DataPacket {
            participant_identity: "agent".into(),
            destination_identities: vec!["alice".into()],
            sequence: 7,
            value: Some(Value::User(UserPacket { payload, topic: Some("chat".into()), ..Default::default() })),
            ..Default::default()
        }
    }

    #[test]
    fn a_packet_survives_encode_then_decode() {
        let packet = user(b"hello".to_vec());
        assert_eq!(decode(&encode(&packet)).unwrap(), packet);
    }

    #[test]
    fn decode_rejects_messages_over_the_limit_and_accepts_the_limit() {
        let at_limit = vec![0u8; MAX_INCOMING_PACKET_BYTES + 1];
        assert_eq!(
            decode(&at_limit),
            Err(DataError::TooLarge { size: MAX_INCOMING_PACKET_BYTES + 1, max: MAX_INCOMING_PACKET_BYTES })
        );

        let mut payload_len = MAX_INCOMING_PACKET_BYTES;
        let (packet, bytes) = loop {
            let packet = user(vec![b'x'; payload_len]);
            let bytes = encode(&packet);
            if bytes.len() == MAX_INCOMING_PACKET_BYTES {
                break (packet, bytes);
            }
            payload_len -= bytes.len() - MAX_INCOMING_PACKET_BYTES;
        };
        assert_eq!(decode(&bytes).unwrap(), packet);
    }

    #[test]
    fn a_forwarded_max_size_packet_still_decodes() {
        let mut packet = user(vec![0u8; MAX_OUTGOING_PACKET_BYTES - 100]);
        packet.participant_identity = "a-long-participant-identity-the-sfu-stamped-on".repeat(4);
        packet.participant_sid = "PA_abcdefghijkl".into();
        assert!(encode(&packet).len() > MAX_OUTGOING_PACKET_BYTES);
        assert_eq!(decode(&encode(&packet)).unwrap(), packet);
    }

    #[test]
    fn encode_for_send_refuses_what_the_sfu_cannot_deliver() {
        let small = user(vec![1; 100]);
        assert_eq!(encode_for_send(&small).unwrap(), encode(&small));

        let big = user(vec![1; MAX_OUTGOING_PACKET_BYTES]);
        match encode_for_send(&big) {
            Err(DataError::TooLarge { size, max }) => {
                assert!(size > MAX_OUTGOING_PACKET_BYTES);
                assert_eq!(max, MAX_OUTGOING_PACKET_BYTES);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn malformed_bytes_are_an_error() {
        // Field 2 (user), length-delimited, claiming 100 bytes that are not there.
        let err = decode(&[0x12, 100, 1, 2]).unwrap_err();
        assert!(matches!(err, DataError::Malformed(_)));
        assert!(err.to_string().starts_with("malformed data packet"));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = StdRng::seed_from_u64(0x5eed);
        for _ in 0..20_000 {
            let len = rng.random_range(0..512);
            let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn mutated_and_truncated_packets_never_panic() {
        let valid = encode(&user(b"some payload worth corrupting".to_vec()));
        let mut rng = StdRng::seed_from_u64(42);
        for cut in 0..valid.len() {
            let _ = decode(&valid[..cut]);
        }
        for _ in 0..20_000 {
            let mut bytes = valid.clone();
            for _ in 0..rng.random_range(1..6) {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
            let _ = decode(&bytes);
        }
    }
}
