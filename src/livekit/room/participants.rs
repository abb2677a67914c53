//! Remote participants as ParticipantUpdates describe them, turned into the events a user of the
//! room cares about. Pure: fed protobufs, returns events.

use std::collections::HashMap;

use livekit_protocol::{ParticipantInfo, TrackInfo, TrackSource, TrackType, participant_info};

use super::events::RoomEvent;

/// What kind of client a participant is, from `ParticipantInfo.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantKind {
    /// A person's app or browser.
    Standard,
    /// An agent worker (such as ourselves); agents usually ignore each other.
    Agent,
    /// A phone caller bridged by LiveKit SIP.
    Sip,
    /// A kind this version does not know (ingress, egress...), as its protobuf number.
    Other(i32),
}

impl ParticipantKind {
    fn from_proto(kind: i32) -> Self {
        match participant_info::Kind::try_from(kind) {
            Ok(participant_info::Kind::Standard) => Self::Standard,
            Ok(participant_info::Kind::Agent) => Self::Agent,
            Ok(participant_info::Kind::Sip) => Self::Sip,
            _ => Self::Other(kind),
        }
    }
}

/// A track a participant publishes, as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// The server-assigned track sid (`TR_...`).
    pub sid: String,
    /// The name the publisher gave it.
    pub name: String,
    /// Audio rather than video.
    pub audio: bool,
    /// Its source is a microphone (rather than screen share audio and the like).
    pub microphone: bool,
    /// The publisher muted it; no media flows.
    pub muted: bool,
}

impl Track {
    fn from_proto(info: &TrackInfo) -> Self {
        Self {
            sid: info.sid.clone(),
            name: info.name.clone(),
            audio: info.r#type == TrackType::Audio as i32,
            microphone: info.source == TrackSource::Microphone as i32,
            muted: info.muted,
        }
    }
}

/// A remote participant as last described by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// The server-assigned participant sid (`PA_...`), new on every join.
    pub sid: String,
    /// The identity from the participant's token; stable across rejoins.
    pub identity: String,
    /// The display name; may be empty.
    pub name: String,
    /// What kind of client it is.
    pub kind: ParticipantKind,
    /// Free-form metadata from the token or the participant; may be empty.
    pub metadata: String,
    /// Key-value attributes (LiveKit agents publish their state here).
    pub attributes: HashMap<String, String>,
    /// The tracks it publishes.
    pub tracks: Vec<Track>,
}

impl Participant {
    pub(crate) fn from_proto(info: &ParticipantInfo) -> Self {
        Self {
            sid: info.sid.clone(),
            identity: info.identity.clone(),
            name: info.name.clone(),
            kind: ParticipantKind::from_proto(info.kind),
            metadata: info.metadata.clone(),
            attributes: info.attributes.clone(),
            tracks: info.tracks.iter().map(Track::from_proto).collect(),
        }
    }
}

#[derive(Debug, Default)]
pub struct Participants {
    local_sid: String,
    remote: HashMap<String, (Participant, u32)>,
}

impl Participants {
    pub fn get(&self, sid: &str) -> Option<&Participant> {
        self.remote.get(sid).map(|(participant, _)| participant)
    }

    /// Applies one snapshot; older versions than the one held are ignored, as LiveKit requires.
    pub fn apply(&mut self, info: &ParticipantInfo) -> Vec<RoomEvent> {
        if info.sid == self.local_sid || info.sid.is_empty() || info.permission.as_ref().is_some_and(|p| p.hidden) {
            return Vec::new();
        }
        let disconnected = info.state == participant_info::State::Disconnected as i32;
        let Some((known, version)) = self.remote.get(&info.sid) else {
            if disconnected {
                return Vec::new();
            }
            let participant = Participant::from_proto(info);
            let mut changes = vec![RoomEvent::ParticipantConnected(participant.clone())];
            changes.extend(
                participant
                    .tracks
                    .iter()
                    .map(|t| RoomEvent::TrackPublished { participant: participant.clone(), track: t.clone() }),
            );
            self.remote.insert(info.sid.clone(), (participant, info.version));
            return changes;
        };
        if disconnected {
            let (participant, _) = self.remote.remove(&info.sid).expect("present: matched just above");
            return vec![RoomEvent::ParticipantDisconnected { participant, reason: info.disconnect_reason }];
        }
        if info.version != 0 && info.version <= *version {
            return Vec::new();
        }
        let before = known.clone();
        let after = Participant::from_proto(info);
        self.remote.insert(info.sid.clone(), (after.clone(), info.version));
        diff(&before, &after)
    }

    /// Forgets everyone whose sid is not in `present` (they left while we were away); returns them.
    pub fn retain(&mut self, present: &[&str]) -> Vec<Participant> {
        let gone: Vec<String> = self.remote.keys().filter(|sid| !present.contains(&sid.as_str())).cloned().collect();
        gone.iter().filter_map(|sid| self.remote.remove(sid)).map(|(participant, _)| participant).collect()
    }

    pub fn set_local_sid(&mut self, sid: impl Into<String>) {
        self.local_sid = sid.into();
    }
}

fn diff(before: &Participant, after: &Participant) -> Vec<RoomEvent> {
    let mut changes = Vec::new();
    let mut changed: HashMap<String, String> = after
        .attributes
        .iter()
        .filter(|(k, v)| before.attributes.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    changed.extend(
        before.attributes.keys().filter(|k| !after.attributes.contains_key(*k)).map(|k| (k.clone(), String::new())),
    );
    if !changed.is_empty() {
        changes.push(RoomEvent::AttributesChanged { participant: after.clone(), changed });
    }
    if before.name != after.name || before.metadata != after.metadata {
        changes.push(RoomEvent::ParticipantUpdated(after.clone()));
    }
    for track in &after.tracks {
        if !before.tracks.iter().any(|t| t.sid == track.sid) {
            changes.push(RoomEvent::TrackPublished { participant: after.clone(), track: track.clone() });
        }
    }
    for track in &before.tracks {
        if !after.tracks.iter().any(|t| t.sid == track.sid) {
            changes.push(RoomEvent::TrackUnpublished { participant: after.clone(), track: track.clone() });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(sid: &str, version: u32, attributes: &[(&str, &str)], tracks: &[&str]) -> ParticipantInfo {
        ParticipantInfo {
            sid: sid.into(),
            identity: format!("id-{sid}"),
            version,
            state: participant_info::State::Active as i32,
            kind: participant_info::Kind::Agent as i32,
            attributes: attributes.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            tracks: tracks
                .iter()
                .map(|sid| TrackInfo { sid: (*sid).into(), r#type: TrackType::Audio as i32, ..Default::default() })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn joins_updates_and_leaves() {
        let mut participants = Participants::default();
        participants.set_local_sid("PA_me");
        assert!(participants.apply(&info("PA_me", 1, &[], &[])).is_empty(), "we are not a remote participant");
        let joined = participants.apply(&info("PA_a", 1, &[("lk.agent.state", "initializing")], &["TR_1"]));
        assert!(matches!(&joined[0], RoomEvent::ParticipantConnected(p) if p.kind == ParticipantKind::Agent));
        assert!(matches!(&joined[1], RoomEvent::TrackPublished { track, .. } if track.sid == "TR_1" && track.audio));

        let changes = participants.apply(&info("PA_a", 2, &[("lk.agent.state", "listening")], &[]));
        let expected_attrs: HashMap<_, _> = [("lk.agent.state".to_owned(), "listening".to_owned())].into();
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, RoomEvent::AttributesChanged { changed, .. } if *changed == expected_attrs))
        );
        assert!(changes.iter().any(|c| matches!(c, RoomEvent::TrackUnpublished { track, .. } if track.sid == "TR_1")));
        assert!(participants.apply(&info("PA_a", 2, &[("x", "stale")], &[])).is_empty(), "same version ignored");

        let mut gone = info("PA_a", 3, &[], &[]);
        gone.state = participant_info::State::Disconnected as i32;
        gone.disconnect_reason = 1;
        assert!(matches!(&participants.apply(&gone)[..], [RoomEvent::ParticipantDisconnected { reason: 1, .. }]));
        assert!(participants.get("PA_a").is_none());
        assert!(participants.apply(&gone).is_empty(), "leaving twice is nothing");
    }

    #[test]
    fn removed_attributes_are_reported_empty() {
        let mut participants = Participants::default();
        participants.set_local_sid("PA_me");
        participants.apply(&info("PA_a", 1, &[("k", "v")], &[]));
        let changes = participants.apply(&info("PA_a", 2, &[], &[]));
        let expected: HashMap<_, _> = [("k".to_owned(), String::new())].into();
        assert!(matches!(&changes[..], [RoomEvent::AttributesChanged { changed, .. }] if *changed == expected));
    }
}
