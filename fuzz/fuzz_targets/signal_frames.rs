//! Signalling and agent-worker frames from the network, in both directions, and the SDP they may
//! carry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voice_agent::livekit::peer::sdp;
use voice_agent::livekit::signal;

fuzz_target!(|bytes: &[u8]| {
    let _ = signal::decode_request(bytes);
    let _ = signal::decode_response(bytes);
    let _ = signal::decode_worker_message(bytes);
    let _ = signal::decode_server_message(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = sdp::media_sections(text);
    }
});
