//! One utterance of the caller on its way to speech-to-text, on a task of its own: audio goes
//! out while the caller speaks, and the transcript comes back once the turn ends.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::providers::ProviderError;
use crate::providers::stt::{SpeechToText, Transcript};

/// Audio for the transcriber; closing the channel without [`Chunk::End`] abandons the utterance
/// (it was a cough, not a turn).
#[derive(Debug)]
pub enum Chunk {
    Audio(Vec<i16>),
    End,
}

/// Transcribes what arrives on `audio` once [`Chunk::End`] arrives, and sends the result.
pub async fn transcribe(
    stt: Arc<dyn SpeechToText>,
    language: String,
    mut audio: mpsc::UnboundedReceiver<Chunk>,
    result: oneshot::Sender<Result<Transcript, ProviderError>>,
) {
    let mut utterance = match stt.start(&language).await {
        Ok(utterance) => utterance,
        Err(error) => {
            // Wait for the turn to end (or be dropped) so the failure answers a real turn.
            while let Some(chunk) = audio.recv().await {
                if matches!(chunk, Chunk::End) {
                    let _ = result.send(Err(error));
                    return;
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
                }
            }
            Chunk::Audio(_) => {}
            Chunk::End => {
                let transcript = match failed {
                    Some(error) => Err(error),
                    None => utterance.finish().await,
                };
                let _ = result.send(transcript);
                return;
            }
        }
    }
}
