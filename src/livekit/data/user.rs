//! Application payloads (`UserPacket`): what `publishData` sends and `DataReceived` delivers in
//! the client SDKs.

use livekit_protocol::data_packet::{Kind, Value};
use livekit_protocol::{DataPacket, UserPacket};

/// Which data channel a packet travels on. LiveKit keeps one ordered, retransmitted channel and
/// one unordered, unretransmitted one; the choice also decides whether the packet is sequenced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reliability {
    /// Delivered in order, retransmitted, sequenced and deduplicated.
    Reliable,
    /// May be dropped or reordered; carries no sequence.
    Lossy,
}

impl Reliability {
    /// Reads the channel a received packet came in on. The `kind` field is deprecated, but the
    /// SFU overwrites it with the channel it actually received the packet on (`dp.Kind = kind` in
    /// livekit/livekit `pkg/rtc/participant.go`), so on receipt it is trustworthy; an unknown
    /// value is treated as reliable, the protobuf default.
    #[allow(deprecated)]
    pub fn of(packet: &DataPacket) -> Self {
        if packet.kind == Kind::Lossy as i32 { Self::Lossy } else { Self::Reliable }
    }

    /// The deprecated `kind` field is still set on send because older SFUs and SDKs read it to
    /// pick the channel semantics (client-sdk-js `publishData` sets it too).
    #[allow(deprecated)]
    fn set_kind(self, packet: &mut DataPacket) {
        packet.kind = match self {
            Self::Reliable => Kind::Reliable,
            Self::Lossy => Kind::Lossy,
        } as i32;
    }
}

/// Builds a user packet addressed to `destination_identities` (everyone when empty).
///
/// The sender's identity and sid are left empty because the SFU stamps them from the connection,
/// whatever we write. The destinations go both on the packet and, for SFUs that predate the
/// packet-level field, on the deprecated `UserPacket` field, which is where client-sdk-js still
/// puts them. The sequence stays 0 until [`Sequencer::stamp`](super::Sequencer::stamp).
#[allow(deprecated)]
pub fn user_packet(
    payload: Vec<u8>,
    topic: Option<String>,
    destination_identities: Vec<String>,
    reliability: Reliability,
) -> DataPacket {
    let user =
        UserPacket { payload, topic, destination_identities: destination_identities.clone(), ..Default::default() };
    let mut packet = DataPacket { destination_identities, value: Some(Value::User(user)), ..Default::default() };
    reliability.set_kind(&mut packet);
    packet
}

/// A received user payload with the sender resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingUser {
    /// Identity of the participant that sent it (empty when the sender is hidden).
    pub sender_identity: String,
    /// Sid of the sending participant's session (empty when the sender is hidden).
    pub sender_sid: String,
    /// Topic the sender published under, if any.
    pub topic: Option<String>,
    /// The application bytes.
    pub payload: Vec<u8>,
    /// Whether it came over the reliable channel.
    pub reliable: bool,
}

impl IncomingUser {
    /// Extracts the user payload from a packet, or `None` when the packet carries something
    /// else. Sender fields fall back to the deprecated ones inside `UserPacket`, as
    /// client-sdk-js `applyUserDataCompat` does, because older SFUs only fill those.
    #[allow(deprecated)]
    pub fn from_packet(packet: &DataPacket) -> Option<Self> {
        let Some(Value::User(user)) = &packet.value else {
            return None;
        };
        let prefer = |outer: &str, inner: &str| if outer.is_empty() { inner } else { outer }.to_owned();
        Some(Self {
            sender_identity: prefer(&packet.participant_identity, &user.participant_identity),
            sender_sid: prefer(&packet.participant_sid, &user.participant_sid),
            topic: user.topic.clone(),
            payload: user.payload.clone(),
            reliable: Reliability::of(packet) == Reliability::Reliable,
        })
    }
}

#[cfg(test)]
#[allow(deprecated)]
mod tests {
    use super::*;
    use crate::livekit::data::codec::{decode, encode};
    use livekit_protocol::data_stream::Trailer;

    #[test]
    fn a_reliable_user_packet_has_payload_topic_and_destinations() {
        let packet = user_packet(b"hi".to_vec(), Some("chat".into()), vec!["alice".into()], Reliability::Reliable);
        assert_eq!(packet.kind, Kind::Reliable as i32);
        assert_eq!(packet.sequence, 0);
        assert_eq!(packet.destination_identities, vec!["alice".to_owned()]);
        assert!(packet.participant_identity.is_empty());
        let Some(Value::User(user)) = &packet.value else { panic!("not a user packet") };
        assert_eq!(user.payload, b"hi");
        assert_eq!(user.topic.as_deref(), Some("chat"));
        assert_eq!(user.destination_identities, vec!["alice".to_owned()]);
    }

    #[test]
    fn a_lossy_user_packet_is_marked_lossy() {
        let packet = user_packet(vec![1, 2, 3], None, Vec::new(), Reliability::Lossy);
        assert_eq!(packet.kind, Kind::Lossy as i32);
        assert_eq!(Reliability::of(&packet), Reliability::Lossy);
        let Some(Value::User(user)) = &packet.value else { panic!("not a user packet") };
        assert_eq!(user.topic, None);
    }

    #[test]
    fn incoming_user_reads_the_sender_the_sfu_stamped() {
        let mut packet = user_packet(b"x".to_vec(), Some("t".into()), Vec::new(), Reliability::Lossy);
        packet.participant_identity = "bob".into();
        packet.participant_sid = "PA_bob".into();
        let incoming = IncomingUser::from_packet(&decode(&encode(&packet)).unwrap()).unwrap();
        assert_eq!(
            incoming,
            IncomingUser {
                sender_identity: "bob".into(),
                sender_sid: "PA_bob".into(),
                topic: Some("t".into()),
                payload: b"x".to_vec(),
                reliable: false,
            }
        );
    }

    #[test]
    fn incoming_user_falls_back_to_the_deprecated_sender_fields() {
        let packet = DataPacket {
            value: Some(Value::User(UserPacket {
                participant_identity: "carol".into(),
                participant_sid: "PA_carol".into(),
                payload: b"old".to_vec(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let incoming = IncomingUser::from_packet(&packet).unwrap();
        assert_eq!(incoming.sender_identity, "carol");
        assert_eq!(incoming.sender_sid, "PA_carol");
        assert!(incoming.reliable);
    }

    #[test]
    fn other_packets_are_not_user_packets() {
        let packet = DataPacket { value: Some(Value::StreamTrailer(Trailer::default())), ..Default::default() };
        assert_eq!(IncomingUser::from_packet(&packet), None);
        assert_eq!(IncomingUser::from_packet(&DataPacket::default()), None);
    }

    #[test]
    fn an_unknown_kind_reads_as_reliable() {
        let packet = DataPacket { kind: 7, ..Default::default() };
        assert_eq!(Reliability::of(&packet), Reliability::Reliable);
    }
}
