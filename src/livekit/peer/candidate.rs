//! ICE candidates: the trickle JSON LiveKit exchanges, and the host addresses we offer.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The W3C `RTCIceCandidateInit` shape carried in `TrickleRequest.candidateInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateInit {
    /// The `candidate:...` SDP attribute value; empty marks the end of candidates.
    pub candidate: String,
    #[serde(rename = "sdpMid", default, skip_serializing_if = "Option::is_none")]
    /// The media section (mid) the candidate belongs to; LiveKit bundles everything on one.
    pub sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex", default, skip_serializing_if = "Option::is_none")]
    /// The index of that media section's `m=` line.
    pub sdp_m_line_index: Option<u32>,
    #[serde(rename = "usernameFragment", default, skip_serializing_if = "Option::is_none")]
    /// The ICE ufrag the candidate was gathered for, when the sender names it (ICE restarts).
    pub username_fragment: Option<String>,
}

/// Why a trickled candidate was dropped; the call goes on with the candidates that did parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CandidateError {
    /// The trickle payload is not candidate-init JSON.
    #[error("the candidate JSON is malformed: {0}")]
    Json(String),
    /// The JSON is fine but the candidate is not one we can use (mDNS, unparsable SDP).
    #[error("the candidate `{candidate}` cannot be used: {why}")]
    Unusable {
        /// The candidate text, cut to 120 characters.
        candidate: String,
        /// What str0m objected to.
        why: String,
    },
}

impl CandidateInit {
    /// Wraps one of our `candidate:...` lines for trickling on media section `mid`.
    pub fn new(candidate: String, mid: &str) -> Self {
        Self { candidate, sdp_mid: Some(mid.to_owned()), sdp_m_line_index: Some(0), username_fragment: None }
    }

    /// Reads the JSON a peer trickled (`TrickleRequest.candidateInit`).
    pub fn parse(json: &str) -> Result<Self, CandidateError> {
        serde_json::from_str(json).map_err(|e| CandidateError::Json(e.to_string()))
    }

    /// The JSON to put in `TrickleRequest.candidateInit`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a struct of strings and numbers always serializes")
    }

    /// The candidate as str0m reads it, or `None` for the empty end-of-candidates marker.
    ///
    /// mDNS (`*.local`) candidates are refused: we cannot resolve them, and the peer's real
    /// address is learnt from its connectivity checks anyway (peer-reflexive).
    pub fn to_str0m(&self) -> Result<Option<str0m::Candidate>, CandidateError> {
        let text = self.candidate.trim().trim_start_matches("a=");
        if text.is_empty() {
            return Ok(None);
        }
        let unusable = |why: String| CandidateError::Unusable { candidate: text.chars().take(120).collect(), why };
        let candidate = str0m::Candidate::from_sdp_string(text).map_err(|e| unusable(e.to_string()))?;
        Ok(Some(candidate))
    }
}

/// The machine's IPv4 addresses worth offering as host candidates: every interface that is up,
/// loopback included (a LiveKit server on the same host), link-local excluded.
pub fn host_ips() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|interfaces| interfaces.into_iter().map(|interface| interface.ip()).collect())
        .unwrap_or_default();
    ips.retain(|ip| matches!(ip, IpAddr::V4(v4) if !v4.is_link_local() && !v4.is_unspecified() && !v4.is_broadcast()));
    ips.sort();
    ips.dedup();
    if ips.is_empty() {
        ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_json_livekit_and_browsers_send() {
        let json = r#"{"candidate":"candidate:1 1 udp 2130706431 192.0.2.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}"#;
        let init = CandidateInit::parse(json).expect("parses");
        let candidate = init.to_str0m().expect("usable").expect("not end-of-candidates");
        assert_eq!(candidate.addr(), "192.0.2.1:50000".parse().expect("address"));
        let init = CandidateInit::parse(r#"{"candidate":""}"#).expect("parses");
        assert_eq!(init.to_str0m(), Ok(None));
    }

    #[test]
    fn refuses_what_cannot_be_used_without_panicking() {
        assert!(CandidateInit::parse("{").is_err());
        assert!(CandidateInit::parse(r#"{"sdpMid":"0"}"#).is_err());
        let mdns = CandidateInit::new("candidate:1 1 udp 2130706431 4d1a2c.local 50000 typ host".into(), "0");
        assert!(mdns.to_str0m().is_err());
        for garbage in [
            "candidate:",
            "candidate:1 1 udp",
            "candidate:x y z w v u typ host",
            "a=candidate:1 1 tcp 1 1.2.3.4 99999 typ host",
        ] {
            assert!(CandidateInit::new(garbage.into(), "0").to_str0m().is_err(), "{garbage}");
        }
    }

    #[test]
    fn writes_the_shape_livekit_reads() {
        let json = CandidateInit::new("candidate:1 1 udp 1 10.0.0.1 5 typ host".into(), "0").to_json();
        assert_eq!(json, r#"{"candidate":"candidate:1 1 udp 1 10.0.0.1 5 typ host","sdpMid":"0","sdpMLineIndex":0}"#);
    }

    #[test]
    fn always_offers_some_address() {
        let ips = host_ips();
        assert!(!ips.is_empty());
        assert!(ips.iter().all(IpAddr::is_ipv4));
    }
}
