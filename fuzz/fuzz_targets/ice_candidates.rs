//! Trickled ICE candidates: the JSON envelope and the candidate line inside it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voice_agent::livekit::peer::CandidateInit;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    if let Ok(init) = CandidateInit::parse(text) {
        let _ = init.to_str0m();
    }
    let _ = CandidateInit::new(text.to_owned(), "0").to_str0m();
});
