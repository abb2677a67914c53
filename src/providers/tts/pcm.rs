//! Raw 16-bit little-endian PCM arriving in pieces, as streaming providers send it.

use super::wav;
use crate::audio::AudioFrame;

/// Turns audio pieces into samples; a piece may end mid-sample, so an odd byte waits for the
/// next. A piece that starts with a RIFF header is read as a WAV file, in case a server answers
/// `wav` when asked for raw PCM.
pub(crate) struct PcmDecoder {
    sample_rate: u32,
    carry: Option<u8>,
}

impl PcmDecoder {
    pub(crate) fn new(sample_rate: u32) -> Self {
        Self { sample_rate, carry: None }
    }

    /// The piece's audio, or `None` when it held less than one sample.
    pub(crate) fn decode(&mut self, bytes: &[u8]) -> Result<Option<AudioFrame>, String> {
        if bytes.starts_with(b"RIFF") {
            return wav::decode(bytes).map(Some).map_err(|e| format!("an audio piece is a bad WAV file: {e}"));
        }
        let mut joined = Vec::with_capacity(bytes.len() + 1);
        joined.extend(self.carry.take());
        joined.extend_from_slice(bytes);
        let pairs = joined.chunks_exact(2);
        self.carry = pairs.remainder().first().copied();
        let samples: Vec<i16> = pairs.map(|pair| i16::from_le_bytes([pair[0], pair[1]])).collect();
        Ok((!samples.is_empty()).then_some(AudioFrame { samples, sample_rate: self.sample_rate }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_pieces_may_split_samples() {
        let mut decoder = PcmDecoder::new(24_000);
        let bytes: Vec<u8> = [1_i16, -2, 300].iter().flat_map(|s| s.to_le_bytes()).collect();
        let first = decoder.decode(&bytes[..3]).expect("pcm").expect("one sample");
        assert_eq!(first.samples, vec![1]);
        assert!(decoder.decode(&bytes[3..4]).expect("pcm").is_some());
        let last = decoder.decode(&bytes[4..]).expect("pcm").expect("a sample");
        assert_eq!(last, AudioFrame { samples: vec![300], sample_rate: 24_000 });
        assert!(decoder.decode(&[7]).expect("pcm").is_none());
    }

    #[test]
    fn wav_pieces_are_read_as_files() {
        let mut decoder = PcmDecoder::new(24_000);
        let frame = decoder.decode(&wav::encode(&[5, 6], 16_000)).expect("wav").expect("audio");
        assert_eq!(frame, AudioFrame { samples: vec![5, 6], sample_rate: 16_000 });
        assert!(decoder.decode(b"RIFF....WAVEjunk").is_err());
    }
}
