//! One segment of the caller's speech on its way to speech-to-text, on a task of its own: audio
//! goes out while the caller speaks, words recognised meanwhile are reported as they come, and
//! the transcript once the segment is finished.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::pipeline::core::{Heard, Input};
use crate::providers::stt::SpeechToText;

/// Audio for the transcriber; closing the channel without [`Chunk::End`] abandons the segment
/// (it was a cough, not a turn).
#[derive(Debug)]
pub(crate) enum Chunk {
    Audio(Vec<i16>),
    End,
}

/// Transcribes what arrives on `audio` until [`Chunk::End`], and reports to `report`.
pub(crate) async fn transcribe(
    stt: Arc<dyn SpeechToText>,
    language: String,
    segment: u64,
    mut audio: mpsc::UnboundedReceiver<Chunk>,
    report: mpsc::Sender<Input>,
) {
    let finish = |result: Result<Heard, String>| {
        let report = report.clone();
        async move {
            let _ = report.send(Input::Transcript { segment, result }).await;
        }
    };
    let mut utterance = match stt.start(&language).await {
        Ok(utterance) => utterance,
        Err(error) => {
            // Wait for the segment to end (or be dropped) so the failure answers a real turn.
            while let Some(chunk) = audio.recv().await {
                if matches!(chunk, Chunk::End) {
                    return finish(Err(error.to_string())).await;
                }
            }
            return;
        }
    };
    let mut failed = None;
    while let Some(chunk) = audio.recv().await {
        match chunk {
            Chunk::Audio(samples) if failed.is_none() => {
                if let Err(error) = utterance.push(&samples).await {
                    failed = Some(error);
                    continue;
                }
                if let Some(text) = utterance.partial() {
                    let _ = report.send(Input::Partial { segment, text }).await;
                }
            }
            Chunk::Audio(_) => {}
            Chunk::End => {
                let result = match failed {
                    Some(error) => Err(error.to_string()),
                    None => utterance
                        .finish()
                        .await
                        .map(|transcript| Heard { text: transcript.text, latency: transcript.latency })
                        .map_err(|error| error.to_string()),
                };
                return finish(result).await;
            }
        }
    }
}
