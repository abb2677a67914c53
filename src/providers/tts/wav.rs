//! 16-bit PCM WAV files, the container Sarvam speaks both ways: it answers synthesis with WAV
//! files and takes uploads for transcription as WAV.
//!
//! The reader is strict about what it accepts (PCM, 16-bit, one or two channels) because
//! anything else decoded as PCM would be played to the caller as loud noise; it returns an
//! error, never panics, on any input.

use crate::audio::AudioFrame;

const PCM: u16 = 1;
const EXTENSIBLE: u16 = 0xFFFE;
/// What streaming writers put in a size field whose final value they did not know.
const UNKNOWN_SIZE: u32 = u32::MAX;

/// A 44-byte RIFF header followed by the samples, mono 16-bit little-endian.
pub(crate) fn encode(samples: &[i16], sample_rate: u32) -> Vec<u8> {
    let data_len = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX - 36);
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16_u32.to_le_bytes());
    out.extend_from_slice(&PCM.to_le_bytes());
    out.extend_from_slice(&1_u16.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&sample_rate.saturating_mul(2).to_le_bytes());
    out.extend_from_slice(&2_u16.to_le_bytes());
    out.extend_from_slice(&16_u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

/// The audio of a WAV file, stereo mixed down to mono.
pub(crate) fn decode(bytes: &[u8]) -> Result<AudioFrame, String> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".into());
    }
    let mut format = None;
    let mut rest = &bytes[12..];
    while rest.len() >= 8 {
        let (id, size) = (&rest[..4], u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]));
        let body = &rest[8..];
        if id == b"data" {
            let (channels, sample_rate) = format.ok_or("the data chunk comes before the fmt chunk")?;
            let data = match usize::try_from(size) {
                _ if size == UNKNOWN_SIZE || size == 0 => body,
                Ok(size) if size <= body.len() => &body[..size],
                _ => return Err(format!("the data chunk declares {size} bytes but {} remain", body.len())),
            };
            return samples(data, channels).map(|samples| AudioFrame { samples, sample_rate });
        }
        let size = usize::try_from(size).map_err(|_| "a chunk size does not fit in memory")?;
        if size > body.len() {
            return Err(format!("the {} chunk is truncated", String::from_utf8_lossy(id)));
        }
        if id == b"fmt " {
            format = Some(parse_format(&body[..size])?);
        }
        rest = &body[(size + size % 2).min(body.len())..];
    }
    Err("no data chunk".into())
}

/// Channels and sample rate from a `fmt ` chunk that describes 16-bit PCM.
fn parse_format(chunk: &[u8]) -> Result<(u16, u32), String> {
    if chunk.len() < 16 {
        return Err("the fmt chunk is too short".into());
    }
    let u16_at = |i: usize| u16::from_le_bytes([chunk[i], chunk[i + 1]]);
    let (tag, channels, bits) = (u16_at(0), u16_at(2), u16_at(14));
    let sample_rate = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
    // WAVE_FORMAT_EXTENSIBLE names the real format in the first two bytes of its sub-format GUID.
    let format = if tag == EXTENSIBLE && chunk.len() >= 26 { u16_at(24) } else { tag };
    if format != PCM {
        return Err(format!("format {format:#06x} is not PCM"));
    }
    if bits != 16 {
        return Err(format!("{bits}-bit samples are not supported, only 16-bit"));
    }
    if !(1..=2).contains(&channels) {
        return Err(format!("{channels} channels are not supported, only mono or stereo"));
    }
    if sample_rate == 0 {
        return Err("the sample rate is 0".into());
    }
    Ok((channels, sample_rate))
}

fn samples(data: &[u8], channels: u16) -> Result<Vec<i16>, String> {
    let frame = usize::from(channels) * 2;
    if !data.len().is_multiple_of(frame) {
        return Err(format!("{} data bytes are not a whole number of {channels}-channel samples", data.len()));
    }
    Ok(data
        .chunks_exact(frame)
        .map(|f| match f {
            [a, b, c, d] => {
                let sum = i32::from(i16::from_le_bytes([*a, *b])) + i32::from(i16::from_le_bytes([*c, *d]));
                i16::try_from(sum / 2).unwrap_or_default()
            }
            [a, b] => i16::from_le_bytes([*a, *b]),
            _ => 0,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(tag: u16, channels: u16, rate: u32, bits: u16, data_len: u32) -> Vec<u8> {
        let block = channels * bits / 8;
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&data_len.wrapping_add(36).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16_u32.to_le_bytes());
        for field in [tag, channels] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        for field in [block, bits] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        out
    }

    #[test]
    fn encoded_audio_decodes_to_itself() {
        let samples: Vec<i16> = (0..1_000).map(|i| ((i * 37) % 65_536 - 32_768) as i16).collect();
        let bytes = encode(&samples, 16_000);
        assert_eq!(bytes.len(), 44 + 2_000);
        let frame = decode(&bytes).expect("valid");
        assert_eq!(frame, AudioFrame { samples, sample_rate: 16_000 });
    }

    #[test]
    fn stereo_is_mixed_down() {
        let mut bytes = header(PCM, 2, 24_000, 16, 8);
        for sample in [1_000_i16, 3_000, -32_768, -32_768] {
            bytes.extend_from_slice(&sample.to_le_bytes());
        }
        assert_eq!(decode(&bytes).expect("valid").samples, vec![2_000, -32_768]);
    }

    #[test]
    fn extra_chunks_and_extensible_formats_are_read() {
        let mut bytes = b"RIFF\0\0\0\0WAVE".to_vec();
        bytes.extend_from_slice(b"LIST\x03\0\0\0abc\0");
        bytes.extend_from_slice(b"fmt \x28\0\0\0");
        bytes.extend_from_slice(&EXTENSIBLE.to_le_bytes());
        bytes.extend_from_slice(&1_u16.to_le_bytes());
        bytes.extend_from_slice(&22_050_u32.to_le_bytes());
        bytes.extend_from_slice(&44_100_u32.to_le_bytes());
        bytes.extend_from_slice(&[2, 0, 16, 0, 22, 0, 16, 0, 4, 0, 0, 0]);
        bytes.extend_from_slice(&PCM.to_le_bytes());
        bytes.extend_from_slice(&[0; 14]);
        bytes.extend_from_slice(b"data\x04\0\0\0\x01\0\x02\0");
        assert_eq!(decode(&bytes).expect("valid"), AudioFrame { samples: vec![1, 2], sample_rate: 22_050 });
    }

    #[test]
    fn streamed_headers_with_unknown_sizes_take_the_rest() {
        let mut bytes = header(PCM, 1, 8_000, 16, UNKNOWN_SIZE);
        bytes.extend_from_slice(&[5, 0, 6, 0]);
        assert_eq!(decode(&bytes).expect("valid").samples, vec![5, 6]);
    }

    #[test]
    fn garbage_and_unsupported_files_are_refused() {
        assert!(decode(b"").is_err());
        assert!(decode(b"ID3\x04mp3 data here").is_err());
        assert!(decode(b"RIFF\0\0\0\0WAVE").is_err(), "no chunks");
        assert!(decode(&header(3, 1, 16_000, 32, 0)).is_err(), "float");
        assert!(decode(&header(PCM, 1, 16_000, 8, 0)).is_err(), "8-bit");
        assert!(decode(&header(PCM, 6, 16_000, 16, 0)).is_err(), "5.1");
        assert!(decode(&header(PCM, 1, 0, 16, 0)).is_err(), "0 Hz");
        let mut odd = header(PCM, 1, 16_000, 16, 3);
        odd.extend_from_slice(&[1, 2, 3]);
        assert!(decode(&odd).is_err(), "half a sample");
        let mut data_first = b"RIFF\0\0\0\0WAVEdata\x02\0\0\0\x01\x00".to_vec();
        data_first.extend_from_slice(&header(PCM, 1, 16_000, 16, 0)[12..]);
        assert!(decode(&data_first).is_err());
    }

    #[test]
    fn truncated_files_are_refused_at_every_length() {
        let bytes = encode(&[1, 2, 3, 4], 16_000);
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "length {len} accepted");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let valid = encode(&[7; 32], 16_000);
        for round in 0..2_000 {
            let mut bytes = valid.clone();
            for _ in 0..(round % 8 + 1) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state % bytes.len() as u64) as usize;
                bytes[at] = (state >> 32) as u8;
            }
            bytes.truncate((state >> 40) as usize % (bytes.len() + 1));
            let _ = decode(&bytes);
        }
    }
}
