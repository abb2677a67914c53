//! Reading the parts of an SDP that LiveKit gives meaning to: which track each media section
//! carries.
//!
//! str0m keeps a media section's msid from the first offer, but LiveKit reuses transceivers: a
//! later offer may put another participant's track (new msid, new SSRC) on the same mid. So the
//! track of each mid is read here from every SDP, not taken from str0m.

/// What one `m=` section says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// Position among the `m=` lines, from 0 (the `sdpMLineIndex` of candidates).
    pub index: usize,
    /// The media type on the `m=` line.
    pub kind: SectionKind,
    /// The `a=mid` value; empty when the section has none.
    pub mid: String,
    /// The `a=sendrecv`/`sendonly`/`recvonly`/`inactive` attribute (`sendrecv` when absent).
    pub direction: SdpDirection,
    /// The track the section carries, from `a=msid`, if any.
    pub msid: Option<Msid>,
    /// The SSRCs announced with `a=ssrc`, in order, without repeats.
    pub ssrcs: Vec<u32>,
    /// `port 0` outside a BUNDLE: the section is rejected or stopped.
    pub port_zero: bool,
}

/// The media type of an `m=` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// `m=audio`.
    Audio,
    /// `m=video`.
    Video,
    /// `m=application`: the SCTP data channels.
    Application,
    /// Any other media type.
    Other,
}

/// A section's direction, from the point of view of the SDP's author.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpDirection {
    /// Sends and receives.
    SendRecv,
    /// Only sends.
    SendOnly,
    /// Only receives.
    RecvOnly,
    /// Neither: the track is paused or gone.
    Inactive,
}

impl SdpDirection {
    /// Whether the SDP's author sends media on the section.
    pub fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }
}

/// An `a=msid:<stream> <track>` attribute: which stream and track a section carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msid {
    /// The stream id; LiveKit puts the publisher's participant sid in it.
    pub stream_id: String,
    /// The track id; LiveKit uses the track sid (`TR_...`).
    pub track_id: String,
}

impl Msid {
    /// LiveKit packs the publisher into the stream id as `PA_sid|TR_sid` on subscriber offers.
    pub fn livekit_participant_sid(&self) -> Option<&str> {
        self.stream_id.split_once('|').map(|(participant, _)| participant).filter(|p| !p.is_empty())
    }
}

/// The media sections of an SDP, in order. Never fails: lines it does not understand are skipped.
pub fn media_sections(sdp: &str) -> Vec<MediaSection> {
    let mut sections: Vec<MediaSection> = Vec::new();
    for line in sdp.lines().map(str::trim_end) {
        if let Some(media) = line.strip_prefix("m=") {
            let mut fields = media.split_whitespace();
            let kind = match fields.next() {
                Some("audio") => SectionKind::Audio,
                Some("video") => SectionKind::Video,
                Some("application") => SectionKind::Application,
                _ => SectionKind::Other,
            };
            let port_zero = fields.next() == Some("0");
            sections.push(MediaSection {
                index: sections.len(),
                kind,
                mid: String::new(),
                direction: SdpDirection::SendRecv,
                msid: None,
                ssrcs: Vec::new(),
                port_zero,
            });
            continue;
        }
        let Some(section) = sections.last_mut() else { continue };
        let Some(attribute) = line.strip_prefix("a=") else { continue };
        match attribute {
            "sendrecv" => section.direction = SdpDirection::SendRecv,
            "sendonly" => section.direction = SdpDirection::SendOnly,
            "recvonly" => section.direction = SdpDirection::RecvOnly,
            "inactive" => section.direction = SdpDirection::Inactive,
            _ => {}
        }
        if let Some(mid) = attribute.strip_prefix("mid:") {
            section.mid = mid.trim().to_owned();
        } else if let Some(msid) = attribute.strip_prefix("msid:") {
            section.msid = parse_msid(msid).or(section.msid.take());
        } else if let Some(ssrc) = attribute.strip_prefix("ssrc:") {
            let mut parts = ssrc.splitn(2, ' ');
            let Some(Ok(number)) = parts.next().map(str::parse::<u32>) else { continue };
            if !section.ssrcs.contains(&number) {
                section.ssrcs.push(number);
            }
            if section.msid.is_none()
                && let Some(msid) = parts.next().and_then(|rest| rest.strip_prefix("msid:"))
            {
                section.msid = parse_msid(msid);
            }
        }
    }
    sections
}

fn parse_msid(value: &str) -> Option<Msid> {
    let mut parts = value.split_whitespace();
    let stream_id = parts.next()?.to_owned();
    let track_id = parts.next().unwrap_or_default().to_owned();
    Some(Msid { stream_id, track_id })
}

/// The first media section's mid: where trickled candidates are attached under BUNDLE.
pub fn first_mid(sdp: &str) -> Option<String> {
    media_sections(sdp).into_iter().map(|s| s.mid).find(|mid| !mid.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of a LiveKit (pion) subscriber offer: data channel first, a reused audio
    /// transceiver, and an inactive one.
    const SUBSCRIBER_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n\
a=group:BUNDLE 0 1 2\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\na=sctp-port:5000\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=mid:1\r\na=sendonly\r\na=msid:PA_abc|TR_AMxyz TR_AMxyz\r\n\
a=ssrc:1234 cname:PA_abc\r\na=ssrc:1234 msid:PA_abc|TR_AMxyz TR_AMxyz\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=mid:2\r\na=inactive\r\n";

    #[test]
    fn reads_tracks_of_a_livekit_subscriber_offer() {
        let sections = media_sections(SUBSCRIBER_OFFER);
        assert_eq!(sections.len(), 3);
        assert_eq!((sections[0].kind, sections[0].mid.as_str()), (SectionKind::Application, "0"));
        let audio = &sections[1];
        assert_eq!(
            (audio.kind, audio.direction, audio.ssrcs.as_slice()),
            (SectionKind::Audio, SdpDirection::SendOnly, &[1234][..])
        );
        let msid = audio.msid.as_ref().expect("msid");
        assert_eq!((msid.livekit_participant_sid(), msid.track_id.as_str()), (Some("PA_abc"), "TR_AMxyz"));
        assert_eq!(sections[2].direction, SdpDirection::Inactive);
        assert!(sections[2].msid.is_none());
        assert_eq!(first_mid(SUBSCRIBER_OFFER).as_deref(), Some("0"));
    }

    #[test]
    fn msid_may_come_only_from_ssrc_lines() {
        let sdp = "m=audio 9 RTP/AVP 111\na=mid:a\na=ssrc:7 msid:stream track\n";
        let section = &media_sections(sdp)[0];
        assert_eq!(section.msid, Some(Msid { stream_id: "stream".into(), track_id: "track".into() }));
        assert_eq!(section.msid.as_ref().and_then(Msid::livekit_participant_sid), None);
    }

    #[test]
    fn garbage_never_panics() {
        for text in
            ["", "m=", "a=ssrc:", "a=msid:", "m=audio 0\na=ssrc:x msid:\na=mid:", "\u{0}\u{ffff}m=video 0 a=msid"]
        {
            let _ = media_sections(text);
        }
        assert!(media_sections("m=audio 0 RTP\r\n")[0].port_zero);
    }
}
