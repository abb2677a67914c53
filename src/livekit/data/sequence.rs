//! Reliable-channel sequence numbers, outgoing and incoming.
//!
//! The SFU drops a reliable packet whose `sequence` is not above the last one it saw from that
//! participant (`handleReceivedDataMessage` in livekit/livekit `pkg/rtc/participant.go`), and
//! receivers drop replays the same way, per sender sid (client-sdk-js `RTCEngine.handleDataMessage`).
//! Replays happen because SDKs resend unacknowledged reliable packets after an ICE restart.

use std::collections::HashMap;

use livekit_protocol::{DataChannelReceiveState, DataPacket};

use super::user::Reliability;

/// Hands out sequence numbers for outgoing reliable packets: 1, 2, 3, ...
///
/// Keep one per signalling session: across a resume the SFU and receivers remember the last
/// sequence they saw from us, so restarting would get everything dropped; after a full
/// reconnect we are a new participant with a new sid and a new `Sequencer` starts over at 1.
///
/// The counter saturates at `u32::MAX` instead of wrapping. Four billion reliable packets is
/// about fifty days at a thousand per second, far beyond one session, and a wrapped counter would
/// be silently dropped by the SFU anyway; saturating keeps the one invariant that matters, that
/// a sequence never goes backwards.
#[derive(Debug)]
pub struct Sequencer {
    next: u32,
}

impl Default for Sequencer {
    fn default() -> Self {
        Self::new()
    }
}

impl Sequencer {
    /// A counter whose first sequence is 1, since 0 means "unsequenced" to every receiver.
    pub fn new() -> Self {
        Self { next: 1 }
    }

    /// The next sequence number. Take it when the packet is about to be written to the channel,
    /// so that wire order and sequence order agree.
    pub fn next_sequence(&mut self) -> u32 {
        let sequence = self.next;
        self.next = self.next.saturating_add(1);
        sequence
    }

    /// Sets `packet.sequence` for the channel it is marked for. Lossy packets get 0 because the
    /// SDKs only sequence reliable sends (client-sdk-js `sendDataPacket`, rust-sdks
    /// `rtc_session.rs`), and JS receivers deduplicate any packet with a non-zero sequence
    /// whatever its channel, so a sequenced lossy packet could make them drop reliable ones.
    pub fn stamp(&mut self, packet: &mut DataPacket) {
        packet.sequence = match Reliability::of(packet) {
            Reliability::Reliable => self.next_sequence(),
            Reliability::Lossy => 0,
        };
    }
}

/// How many senders a [`Deduplicator`] remembers by default: far more than a voice-agent room
/// holds at once, small enough that a churn of joins cannot grow it without bound.
pub const DEFAULT_MAX_TRACKED_SENDERS: usize = 1024;

#[derive(Debug)]
struct LastSeen {
    sequence: u32,
    touched: u64,
}

/// Drops replayed reliable packets: per sender sid, a sequence not above the last accepted one.
///
/// Memory is bounded twice: [`forget`](Self::forget) a sender when it leaves, and past
/// `max_senders` the sender heard from least recently is forgotten to make room. Forgetting only
/// weakens replay protection for that sender, which the SFU's own check still provides.
#[derive(Debug)]
pub struct Deduplicator {
    last: HashMap<String, LastSeen>,
    max_senders: usize,
    clock: u64,
}

impl Default for Deduplicator {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_TRACKED_SENDERS)
    }
}

impl Deduplicator {
    /// A deduplicator remembering at most `max_senders` senders (at least one).
    pub fn new(max_senders: usize) -> Self {
        Self { last: HashMap::new(), max_senders: max_senders.max(1), clock: 0 }
    }

    /// Whether to process `packet`. Unsequenced packets (sequence 0), packets without a sender
    /// sid and lossy packets are always accepted, exactly the cases the SDKs exempt.
    pub fn accept(&mut self, packet: &DataPacket) -> bool {
        if packet.sequence == 0 || packet.participant_sid.is_empty() || Reliability::of(packet) == Reliability::Lossy {
            return true;
        }
        self.clock += 1;
        if let Some(last) = self.last.get_mut(&packet.participant_sid) {
            if packet.sequence <= last.sequence {
                return false;
            }
            *last = LastSeen { sequence: packet.sequence, touched: self.clock };
            return true;
        }
        if self.last.len() >= self.max_senders {
            self.evict_stalest();
        }
        self.last.insert(packet.participant_sid.clone(), LastSeen { sequence: packet.sequence, touched: self.clock });
        true
    }

    /// Stops tracking a sender, typically because it left the room.
    pub fn forget(&mut self, participant_sid: &str) {
        self.last.remove(participant_sid);
    }

    /// What we have received from each sender, for the `SyncState` sent when resuming, so the
    /// SFU knows which reliable packets to replay to us.
    pub fn receive_states(&self) -> Vec<DataChannelReceiveState> {
        self.last
            .iter()
            .map(|(sid, last)| DataChannelReceiveState { publisher_sid: sid.clone(), last_seq: last.sequence })
            .collect()
    }

    fn evict_stalest(&mut self) {
        let stalest = self.last.iter().min_by_key(|(_, last)| last.touched).map(|(sid, _)| sid.clone());
        if let Some(sid) = stalest {
            self.last.remove(&sid);
        }
    }
}

#[cfg(test)]
#[allow(deprecated)]
mod tests {
    use super::*;
    use livekit_protocol::data_packet::Kind;

    fn from(sid: &str, sequence: u32) -> DataPacket {
        DataPacket { participant_sid: sid.into(), sequence, ..Default::default() }
    }

    #[test]
    fn sequences_start_at_one_and_strictly_increase() {
        let mut sequencer = Sequencer::new();
        let taken: Vec<u32> = (0..1000).map(|_| sequencer.next_sequence()).collect();
        assert_eq!(taken[0], 1);
        assert!(taken.windows(2).all(|pair| pair[1] == pair[0] + 1));
    }

    #[test]
    fn the_sequence_saturates_instead_of_wrapping() {
        let mut sequencer = Sequencer { next: u32::MAX - 1 };
        assert_eq!(sequencer.next_sequence(), u32::MAX - 1);
        assert_eq!(sequencer.next_sequence(), u32::MAX);
        assert_eq!(sequencer.next_sequence(), u32::MAX);
    }

    #[test]
    fn stamp_sequences_reliable_packets_only() {
        let mut sequencer = Sequencer::default();
        let mut reliable = DataPacket::default();
        let mut lossy = DataPacket { kind: Kind::Lossy as i32, sequence: 99, ..Default::default() };
        sequencer.stamp(&mut reliable);
        sequencer.stamp(&mut lossy);
        assert_eq!(reliable.sequence, 1);
        assert_eq!(lossy.sequence, 0);
        sequencer.stamp(&mut reliable);
        assert_eq!(reliable.sequence, 2);
    }

    #[test]
    fn replays_and_stale_packets_are_dropped() {
        let mut dedup = Deduplicator::default();
        assert!(dedup.accept(&from("PA_a", 1)));
        assert!(dedup.accept(&from("PA_a", 2)));
        assert!(!dedup.accept(&from("PA_a", 2)), "replay");
        assert!(!dedup.accept(&from("PA_a", 1)), "older");
        assert!(dedup.accept(&from("PA_a", 5)), "a gap is fine");
        assert!(!dedup.accept(&from("PA_a", 4)));
    }

    #[test]
    fn senders_are_tracked_independently() {
        let mut dedup = Deduplicator::default();
        assert!(dedup.accept(&from("PA_a", 10)));
        assert!(dedup.accept(&from("PA_b", 1)));
        assert!(!dedup.accept(&from("PA_a", 10)));
    }

    #[test]
    fn unsequenced_anonymous_and_lossy_packets_always_pass() {
        let mut dedup = Deduplicator::default();
        assert!(dedup.accept(&from("PA_a", 3)));
        assert!(dedup.accept(&from("PA_a", 0)));
        assert!(dedup.accept(&from("PA_a", 0)));
        assert!(dedup.accept(&from("", 1)));
        assert!(dedup.accept(&from("", 1)));
        let lossy = DataPacket { kind: Kind::Lossy as i32, ..from("PA_a", 1) };
        assert!(dedup.accept(&lossy));
        assert!(!dedup.accept(&from("PA_a", 3)), "lossy packets did not move the reliable state");
        assert!(dedup.accept(&from("PA_a", 4)));
    }

    #[test]
    fn forget_resets_a_sender() {
        let mut dedup = Deduplicator::default();
        assert!(dedup.accept(&from("PA_a", 9)));
        dedup.forget("PA_a");
        assert!(dedup.receive_states().is_empty());
        assert!(dedup.accept(&from("PA_a", 1)));
    }

    #[test]
    fn memory_is_bounded_by_evicting_the_stalest_sender() {
        let mut dedup = Deduplicator::new(3);
        for sid in ["PA_a", "PA_b", "PA_c"] {
            assert!(dedup.accept(&from(sid, 5)));
        }
        assert!(dedup.accept(&from("PA_a", 6)), "a is now the freshest");
        assert!(dedup.accept(&from("PA_d", 1)));
        assert_eq!(dedup.last.len(), 3);
        assert!(!dedup.last.contains_key("PA_b"), "b was heard from least recently");
        assert!(!dedup.accept(&from("PA_a", 6)));
        for n in 0..10_000 {
            dedup.accept(&from(&format!("PA_{n}"), 1));
        }
        assert_eq!(dedup.last.len(), 3);
    }

    #[test]
    fn receive_states_report_the_last_sequence_per_sender() {
        let mut dedup = Deduplicator::default();
        dedup.accept(&from("PA_a", 4));
        dedup.accept(&from("PA_a", 8));
        dedup.accept(&from("PA_b", 2));
        let mut states = dedup.receive_states();
        states.sort_by(|x, y| x.publisher_sid.cmp(&y.publisher_sid));
        assert_eq!(
            states,
            vec![
                DataChannelReceiveState { publisher_sid: "PA_a".into(), last_seq: 8 },
                DataChannelReceiveState { publisher_sid: "PA_b".into(), last_seq: 2 },
            ]
        );
    }
}
