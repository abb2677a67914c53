//! The caller's audio, made ready for turn taking: decoded, resampled from the room's 48 kHz to
//! 16 kHz, and classified by the voice detector in 20 ms frames, on a task of its own so the
//! conversation only ever sees frames.

use std::time::Instant;

use tokio::sync::mpsc;

use crate::audio::Resampler;
use crate::livekit::room::RemoteAudioTrack;
use crate::pipeline::vad::{self, Vad, VadConfig, VadFrame};

/// Frames of one stretch of received audio, all arrived at `at`.
#[derive(Debug)]
pub(crate) struct Heard {
    pub track_sid: String,
    pub at: Instant,
    pub frames: Vec<VadFrame>,
}

/// Reads `track` until it ends or the conversation stops listening.
pub(crate) async fn listen(mut track: RemoteAudioTrack, vad: VadConfig, heard: mpsc::Sender<Heard>) {
    let mut detector = match Vad::new(vad) {
        Ok(detector) => detector,
        Err(e) => return tracing::error!("cannot start the voice detector: {e}"),
    };
    let mut resampler: Option<(u32, Resampler)> = None;
    while let Some(frame) = track.recv().await {
        let at = Instant::now();
        let samples = if frame.sample_rate == vad::SAMPLE_RATE {
            frame.samples
        } else {
            let resampler = match &mut resampler {
                Some((rate, resampler)) if *rate == frame.sample_rate => resampler,
                slot => match Resampler::new(frame.sample_rate, vad::SAMPLE_RATE) {
                    Ok(made) => &mut slot.insert((frame.sample_rate, made)).1,
                    Err(e) => {
                        return tracing::error!(rate = frame.sample_rate, "cannot resample the caller's audio: {e}");
                    }
                },
            };
            resampler.process(&frame.samples)
        };
        let frames = detector.push(&samples);
        if frames.is_empty() {
            continue;
        }
        let stretch = Heard { track_sid: track.track_sid.clone(), at, frames };
        if heard.send(stretch).await.is_err() {
            return;
        }
    }
    tracing::debug!(track = %track.track_sid, "the caller's track ended");
}
