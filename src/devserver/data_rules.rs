//! How the server treats a data packet from a participant, as LiveKit's SFU does: who may send,
//! which sequence numbers are fresh, whose identity the packet carries, and who receives it.

use livekit_protocol::{DataPacket, data_packet};

/// The sending participant, as the server knows it.
#[derive(Debug, Clone)]
pub struct Sender<'a> {
    pub sid: &'a str,
    pub identity: &'a str,
    pub is_agent: bool,
    pub can_publish_data: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drop {
    NotAllowed,
    /// A reliable packet whose sequence is not above the last one seen from this sender.
    Replayed {
        sequence: u32,
        last: u32,
    },
    /// Only agents may send legacy transcription packets.
    TranscriptionFromNonAgent,
    Empty,
}

/// Applies the rules; on success the packet is ready to forward to `packet.destination_identities`
/// (everyone else when empty). `last_sequence` is the sender's last reliable sequence.
#[allow(deprecated, reason = "LiveKit still fills `kind` and the user packet's sender fields for older clients")]
pub fn admit(
    sender: &Sender<'_>,
    mut packet: DataPacket,
    reliable: bool,
    last_sequence: &mut u32,
) -> Result<DataPacket, Drop> {
    if !sender.can_publish_data {
        return Err(Drop::NotAllowed);
    }
    let Some(value) = &mut packet.value else { return Err(Drop::Empty) };
    if reliable && packet.sequence > 0 {
        if packet.sequence <= *last_sequence {
            return Err(Drop::Replayed { sequence: packet.sequence, last: *last_sequence });
        }
        *last_sequence = packet.sequence;
    }
    if matches!(value, data_packet::Value::Transcription(_)) && !sender.is_agent {
        return Err(Drop::TranscriptionFromNonAgent);
    }
    // An agent may attribute a text stream to someone else (user transcripts); the header then
    // keeps that identity and is marked as generated.
    let speaks_for_other = match value {
        data_packet::Value::StreamHeader(header)
            if sender.is_agent
                && !packet.participant_identity.is_empty()
                && packet.participant_identity != sender.identity =>
        {
            match &mut header.content_header {
                Some(livekit_protocol::data_stream::header::ContentHeader::TextHeader(text)) => {
                    text.generated = true;
                    true
                }
                _ => false,
            }
        }
        _ => false,
    };
    if !speaks_for_other {
        packet.participant_identity = sender.identity.to_owned();
    }
    packet.participant_sid = sender.sid.to_owned();
    packet.kind = if reliable { data_packet::Kind::Reliable as i32 } else { data_packet::Kind::Lossy as i32 };
    if let data_packet::Value::User(user) = value {
        user.participant_sid = sender.sid.to_owned();
        user.participant_identity = sender.identity.to_owned();
    }
    Ok(packet)
}

#[cfg(test)]
mod tests {
    use livekit_protocol::{UserPacket, data_stream};

    use super::*;

    fn sender(is_agent: bool) -> Sender<'static> {
        Sender { sid: "PA_s", identity: "sam", is_agent, can_publish_data: true }
    }

    fn user(sequence: u32, claimed: &str) -> DataPacket {
        DataPacket {
            sequence,
            participant_identity: claimed.into(),
            value: Some(data_packet::Value::User(UserPacket { payload: b"hi".to_vec(), ..Default::default() })),
            ..Default::default()
        }
    }

    #[test]
    #[allow(deprecated, reason = "the server fills the user packet's legacy sender fields")]
    fn identity_is_the_senders_whatever_it_claims() {
        let mut last = 0;
        let packet = admit(&sender(false), user(1, "mallory"), true, &mut last).expect("admitted");
        assert_eq!((packet.participant_identity.as_str(), packet.participant_sid.as_str()), ("sam", "PA_s"));
        let Some(data_packet::Value::User(user)) = packet.value else { panic!("user packet") };
        assert_eq!(user.participant_identity, "sam");
    }

    #[test]
    fn reliable_sequences_must_increase() {
        let mut last = 0;
        assert!(admit(&sender(false), user(1, ""), true, &mut last).is_ok());
        assert!(admit(&sender(false), user(2, ""), true, &mut last).is_ok());
        assert_eq!(admit(&sender(false), user(2, ""), true, &mut last), Err(Drop::Replayed { sequence: 2, last: 2 }));
        assert!(admit(&sender(false), user(0, ""), true, &mut last).is_ok(), "0 means unsequenced");
        assert!(admit(&sender(false), user(1, ""), false, &mut last).is_ok(), "lossy packets are not checked");
    }

    #[test]
    fn only_agents_speak_for_others_and_send_transcriptions() {
        let header = |identity: &str| DataPacket {
            participant_identity: identity.into(),
            value: Some(data_packet::Value::StreamHeader(data_stream::Header {
                content_header: Some(
                    data_stream::header::ContentHeader::TextHeader(data_stream::TextHeader::default()),
                ),
                ..Default::default()
            })),
            ..Default::default()
        };
        let mut last = 0;
        let packet = admit(&sender(true), header("user-1"), true, &mut last).expect("admitted");
        assert_eq!(packet.participant_identity, "user-1");
        let Some(data_packet::Value::StreamHeader(h)) = &packet.value else { panic!("header") };
        assert!(matches!(&h.content_header, Some(data_stream::header::ContentHeader::TextHeader(t)) if t.generated));
        assert_eq!(
            admit(&sender(false), header("user-1"), true, &mut last).expect("admitted").participant_identity,
            "sam"
        );

        let transcription =
            DataPacket { value: Some(data_packet::Value::Transcription(Default::default())), ..Default::default() };
        assert_eq!(admit(&sender(false), transcription.clone(), true, &mut last), Err(Drop::TranscriptionFromNonAgent));
        assert!(admit(&sender(true), transcription, true, &mut last).is_ok());
        let muted = Sender { can_publish_data: false, ..sender(true) };
        assert_eq!(admit(&muted, user(9, ""), true, &mut last), Err(Drop::NotAllowed));
    }
}
