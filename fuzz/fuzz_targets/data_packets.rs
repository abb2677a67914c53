//! Data-channel messages: packet decoding and text-stream reassembly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voice_agent::livekit::data::{self, TextStreamAssembler};

fuzz_target!(|bytes: &[u8]| {
    let mut assembler = TextStreamAssembler::default();
    for (index, chunk) in bytes.split(|b| *b == 0xA5).enumerate() {
        if let Ok(packet) = data::decode(chunk) {
            let _ = assembler.push(&packet, i64::try_from(index).unwrap_or_default());
        }
    }
});
