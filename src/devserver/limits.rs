//! What one client may make the dev server hold: connections, rooms, participants, tracks,
//! candidates, metadata and unsent signalling. Every queue a client can fill has a bound here,
//! so one hostile or stalled connection costs a bounded amount of memory and is then closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Limits an operator may tune; the defaults fit local development and the benchmarks (hundreds
/// of calls on one machine).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Signalling connections (participants and agent workers) at once; more are refused with
    /// HTTP 503, as a LiveKit node over its limits refuses them.
    pub max_connections: usize,
    /// Rooms open at once; a join that would open one more is refused.
    pub max_rooms: usize,
    /// Participants in one room (a token's `roomConfig.maxParticipants` may lower it).
    pub max_participants_per_room: u32,
    /// How long one signalling message may take to reach a client; a client that does not read
    /// its connection for this long is closed.
    pub send_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1000,
            max_rooms: 1000,
            max_participants_per_room: 100,
            send_timeout: Duration::from_secs(10),
        }
    }
}

/// The largest HTTP request body: a server API request carrying LiveKit's largest metadata and
/// attributes (below), JSON-escaped.
pub(super) const MAX_API_BODY_BYTES: u64 = 1024 * 1024;
/// Signalling bytes queued for one client and not yet written; past it the client is not
/// reading and is closed. Larger than any one message we send (metadata is capped below).
pub(super) const MAX_UNSENT_BYTES: usize = 4 * 1024 * 1024;
/// Signalling messages queued for one client, whatever their size.
pub(super) const MAX_UNSENT_MESSAGES: usize = 1024;
/// Room events (updates, subscriptions) waiting for one participant's session.
pub(super) const SESSION_QUEUE: usize = 1024;
/// Requests waiting for a room's task; sessions wait when it is full.
pub(super) const ROOM_QUEUE: usize = 1024;
/// Messages waiting for the dispatcher, and for one agent worker's connection.
pub(super) const DISPATCH_QUEUE: usize = 1024;
pub(super) const WORKER_QUEUE: usize = 256;
/// Audio tracks one participant may have published or pending at once.
pub(super) const MAX_TRACKS_PER_PARTICIPANT: usize = 16;
/// Media sections in one offer; browsers and SDKs use a handful.
pub(super) const MAX_MEDIA_SECTIONS: usize = 64;
/// ICE candidates a client may trickle for one peer per ICE generation (ufrag). A browser on a
/// machine with many interfaces sends a few dozen.
pub(super) const MAX_REMOTE_CANDIDATES: usize = 100;
/// A trickled candidate's JSON; real ones are a few hundred bytes.
pub(super) const MAX_CANDIDATE_BYTES: usize = 1024;
/// Subscriber changes waiting while the client has not answered our last offer.
pub(super) const MAX_UNANSWERED_CHANGES: usize = 256;
/// Publisher offers waiting for our answer; clients wait for one before the next.
pub(super) const MAX_UNANSWERED_OFFERS: usize = 8;
/// Agent dispatches one room may hold (its own and those of `CreateDispatch`).
pub(super) const MAX_DISPATCHES_PER_ROOM: usize = 64;
/// LiveKit's own limits on what a participant may set about itself, and on room names.
pub(super) const MAX_METADATA_BYTES: usize = 512 * 1024;
pub(super) const MAX_ATTRIBUTES_BYTES: usize = 64 * 1024;
pub(super) const MAX_NAME_BYTES: usize = 256;
pub(super) const MAX_ROOM_NAME_BYTES: usize = 256;

/// Counts the candidates a client trickles for one peer; a new ICE generation (a remote
/// description with another ufrag) starts the count again.
#[derive(Debug, Default)]
pub(super) struct CandidateCount {
    ufrag: Option<String>,
    count: usize,
}

impl CandidateCount {
    /// One more candidate; false once the client has sent more than the limit.
    pub fn admit(&mut self) -> bool {
        self.count += 1;
        self.count <= MAX_REMOTE_CANDIDATES
    }

    /// A remote description was applied.
    pub fn described(&mut self, sdp: &str) {
        let ufrag = sdp.lines().find_map(|line| line.trim_end().strip_prefix("a=ice-ufrag:")).map(str::to_owned);
        if ufrag.is_some() && ufrag != self.ufrag {
            self.ufrag = ufrag;
            self.count = 0;
        }
    }
}

/// Why a metadata update is refused, if it is.
pub(super) fn metadata_refusal(update: &livekit_protocol::UpdateParticipantMetadata) -> Option<String> {
    size_refusal(&update.name, &update.metadata, &update.attributes)
}

/// Why a name, metadata and attributes (of a participant or an agent dispatch) are refused, if
/// they are.
pub(super) fn size_refusal(name: &str, metadata: &str, attributes: &HashMap<String, String>) -> Option<String> {
    let attributes: usize = attributes.iter().map(|(k, v)| k.len() + v.len()).sum();
    if metadata.len() > MAX_METADATA_BYTES {
        Some(format!("metadata is {} bytes, over the {MAX_METADATA_BYTES}-byte limit", metadata.len()))
    } else if attributes > MAX_ATTRIBUTES_BYTES {
        Some(format!("attributes are {attributes} bytes, over the {MAX_ATTRIBUTES_BYTES}-byte limit"))
    } else if name.len() > MAX_NAME_BYTES {
        Some(format!("the name is {} bytes, over the {MAX_NAME_BYTES}-byte limit", name.len()))
    } else {
        None
    }
}

/// The start-up warning for a dev server anyone on the network can join: it listens beyond
/// loopback and checks tokens with the secret every LiveKit user knows (the key is no secret:
/// every token names it).
pub(super) fn exposure_warning(listening: SocketAddr, api_secret: &str) -> Option<String> {
    (api_secret == super::DEV_API_SECRET && !listening.ip().is_loopback()).then(|| {
        format!(
            "THE LIVEKIT DEV SERVER ON {listening} IS OPEN TO THE NETWORK WITH THE WELL-KNOWN KEYS \
             {key}/{secret}: anyone who can reach it can mint tokens, join every room and run \
             agents on your providers' keys. Listen on 127.0.0.1 (--bind / --livekit-bind) or set \
             LIVEKIT_API_KEY and LIVEKIT_API_SECRET to your own.",
            key = super::DEV_API_KEY,
            secret = super::DEV_API_SECRET,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_counted_per_ice_generation() {
        let mut count = CandidateCount::default();
        assert!((0..MAX_REMOTE_CANDIDATES).all(|_| count.admit()));
        assert!(!count.admit(), "one over the limit");
        count.described("v=0\r\na=ice-ufrag:abcd\r\n");
        assert!(count.admit(), "an ICE restart starts again");
        count.described("v=0\r\na=ice-ufrag:abcd\r\n");
        assert!((1..MAX_REMOTE_CANDIDATES).all(|_| count.admit()));
        assert!(!count.admit(), "the same ufrag again is no new generation");
    }

    #[test]
    fn oversized_metadata_is_refused_with_what_was_too_big() {
        let mut update =
            livekit_protocol::UpdateParticipantMetadata { metadata: "x".repeat(100), ..Default::default() };
        assert_eq!(metadata_refusal(&update), None);
        update.metadata = "x".repeat(MAX_METADATA_BYTES + 1);
        assert!(metadata_refusal(&update).is_some_and(|why| why.starts_with("metadata is 524289 bytes")));
        update.metadata.clear();
        update.attributes.insert("k".into(), "v".repeat(MAX_ATTRIBUTES_BYTES));
        assert!(metadata_refusal(&update).is_some_and(|why| why.starts_with("attributes")));
        update.attributes.clear();
        update.name = "n".repeat(MAX_NAME_BYTES + 1);
        assert!(metadata_refusal(&update).is_some_and(|why| why.starts_with("the name")));
    }

    #[test]
    fn warns_only_for_the_dev_keys_beyond_loopback() {
        let open: SocketAddr = "0.0.0.0:7880".parse().expect("address");
        let lan: SocketAddr = "192.168.1.5:7880".parse().expect("address");
        let local: SocketAddr = "127.0.0.1:7880".parse().expect("address");
        let local6: SocketAddr = "[::1]:7880".parse().expect("address");
        assert!(exposure_warning(open, "secret").is_some_and(|w| w.contains("0.0.0.0:7880")));
        assert!(exposure_warning(lan, "secret").is_some());
        assert_eq!(exposure_warning(local, "secret"), None);
        assert_eq!(exposure_warning(local6, "secret"), None);
        assert_eq!(exposure_warning(open, "a-secret-of-my-own"), None);
    }
}
