//! Publisher answers shaped as LiveKit's server (pion) writes them, from the answers str0m writes.
//!
//! Two things differ, and real clients notice both:
//! - A section str0m cannot use (video: the dev server enables Opus only) comes out rejected as
//!   `m=video 0 UDP/TLS/RTP/SAVPF ` with no format, which is not valid SDP (RFC 4566 wants at
//!   least one; RFC 3264 §6 keeps the offer's). libwebrtc refuses the whole answer and LiveKit's
//!   Rust SDK (Python 1.1+, Node) panics, because its publisher offer carries pre-created video
//!   transceivers. A rejected section keeps the offer's first format here, as pion keeps one.
//! - str0m gives every section it may send on an SSRC and an msid, so the client's pre-created
//!   `recvonly` transceivers are answered `sendonly` with tracks that never come. LiveKit never
//!   sends on a publisher connection: pion answers those sections `sendonly` with no SSRC and no
//!   msid, and so do we.

/// `answer` (str0m's, to `offer`) as LiveKit would have written it.
pub(super) fn shape_publisher_answer(offer: &str, answer: &str) -> String {
    let offered = offer_formats(offer);
    let mut out: Vec<String> = Vec::new();
    let mut section: Option<usize> = None;
    let mut rejected = false;
    for line in answer.split("\r\n") {
        if let Some(media) = line.strip_prefix("m=") {
            let index = section.map_or(0, |i| i + 1);
            section = Some(index);
            let mut fields = media.split_whitespace();
            let (kind, port, proto) = (fields.next(), fields.next(), fields.next());
            let has_format = fields.next().is_some();
            rejected = port == Some("0");
            if let (Some(kind), Some(proto), false) = (kind, proto, has_format) {
                let format = offered.get(index).and_then(Option::as_deref).unwrap_or("0");
                out.push(format!("m={kind} {} {proto} {format}", port.unwrap_or("0")));
                continue;
            }
        } else if let Some(attribute) = line.strip_prefix("a=") {
            if attribute.starts_with("msid-semantic:") {
                out.push("a=msid-semantic: WMS".into());
                continue;
            }
            if section.is_some() && sender_attribute(attribute) {
                continue;
            }
            if rejected && matches!(attribute, "sendonly" | "recvonly" | "sendrecv") {
                out.push("a=inactive".into());
                continue;
            }
        }
        out.push(line.to_owned());
    }
    out.join("\r\n")
}

/// Lines that describe what we would send: SSRCs and the track they carry.
fn sender_attribute(attribute: &str) -> bool {
    attribute.starts_with("ssrc:") || attribute.starts_with("ssrc-group:") || attribute.starts_with("msid:")
}

/// The first format of each media section of the offer, in order.
fn offer_formats(offer: &str) -> Vec<Option<String>> {
    offer
        .lines()
        .filter_map(|line| line.trim_end().strip_prefix("m="))
        .map(|media| media.split_whitespace().nth(3).map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The publisher offer of LiveKit's Rust SDK (Python 1.2.1) before it publishes anything:
    /// three pre-created recvonly audio and video transceivers and the data channel (trimmed).
    const OFFER: &str = "v=0\r\no=- 1 3 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 7 10 13\r\n\
a=msid-semantic: WMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9\r\nc=IN IP4 0.0.0.0\r\na=mid:7\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 103\r\nc=IN IP4 0.0.0.0\r\na=mid:10\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:13\r\na=sctp-port:5000\r\n";

    /// What str0m 0.24 answers to it (trimmed).
    const STR0M_ANSWER: &str = "v=0\r\no=str0m-0.24.0 4 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 7 13\r\n\
a=msid-semantic: WMS qlS7 56Bj\r\na=ice-lite\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:7\r\na=sendonly\r\na=msid:qlS7 yyfz\r\n\
a=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=ssrc:2576357754 cname:eQxD\r\na=ssrc:2576357754 msid:qlS7 yyfz\r\n\
m=video 0 UDP/TLS/RTP/SAVPF \r\nc=IN IP4 0.0.0.0\r\na=mid:10\r\na=sendonly\r\na=msid:56Bj F7Ml\r\na=rtcp-mux\r\n\
a=ssrc:1699757808 cname:Eihs\r\na=ssrc:1699757808 msid:56Bj F7Ml\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:13\r\na=sctp-port:5000\r\n";

    #[test]
    fn a_rejected_section_keeps_the_offers_first_format_and_sends_nothing() {
        let shaped = shape_publisher_answer(OFFER, STR0M_ANSWER);
        let video: Vec<&str> = shaped
            .split("\r\n")
            .skip_while(|l| !l.starts_with("m=video"))
            .take_while(|l| !l.starts_with("m=app"))
            .collect();
        assert_eq!(video[0], "m=video 0 UDP/TLS/RTP/SAVPF 96");
        assert!(video.contains(&"a=mid:10") && video.contains(&"a=inactive"), "{video:?}");
        assert!(!video.iter().any(|l| l.starts_with("a=ssrc") || l.starts_with("a=msid")), "{video:?}");
    }

    #[test]
    fn recvonly_sections_are_answered_sendonly_without_a_track_as_pion_does() {
        let shaped = shape_publisher_answer(OFFER, STR0M_ANSWER);
        let audio: Vec<&str> = shaped
            .split("\r\n")
            .skip_while(|l| !l.starts_with("m=audio"))
            .take_while(|l| !l.starts_with("m=video"))
            .collect();
        assert_eq!(audio[0], "m=audio 9 UDP/TLS/RTP/SAVPF 111");
        assert!(audio.contains(&"a=sendonly"), "{audio:?}");
        assert!(!audio.iter().any(|l| l.starts_with("a=ssrc") || l.starts_with("a=msid")), "{audio:?}");
        assert!(shaped.contains("\r\na=msid-semantic: WMS\r\n"), "no stream is announced");
        assert!(shaped.contains("a=group:BUNDLE 7 13\r\n") && shaped.contains("a=sctp-port:5000"), "the rest is kept");
    }

    #[test]
    fn every_media_line_of_the_shaped_answer_has_a_format() {
        let shaped = shape_publisher_answer(OFFER, STR0M_ANSWER);
        for line in shaped.split("\r\n").filter(|l| l.starts_with("m=")) {
            assert!(line.split_whitespace().count() >= 4, "{line:?}");
        }
        assert_eq!(shape_publisher_answer("", "m=video 0 UDP/TLS/RTP/SAVPF \r\n"), "m=video 0 UDP/TLS/RTP/SAVPF 0\r\n");
    }
}
