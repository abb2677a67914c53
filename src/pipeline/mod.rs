//! The voice pipeline of one call: listening, turn taking, and turning replies into speech.
//!
//! Listening. Room audio (48 kHz Opus, decoded) is resampled to 16 kHz and cut by [`vad::Vad`]
//! into 20 ms frames, each with a speech/non-speech decision. [`turn::TurnDetector`] turns that
//! stream of decisions into utterances: it confirms an onset after 60 ms of speech and hands over
//! the pre-roll (the audio just before and during the onset) so speech-to-text hears the first
//! consonant; the pipeline then forwards every frame until the utterance ends. An utterance
//! ends after `min_silence` without speech and becomes a user turn (the LLM is asked for a reply)
//! or is discarded as a click, cough or backchannel.
//!
//! Speaking. The LLM's streamed text goes through [`sentences::SentenceSplitter`], which hands
//! out each sentence as soon as it is certain to be complete (the first one possibly earlier, at
//! a comma), then through [`speakable::speakable`], which strips markdown and emoji, to
//! text-to-speech; its audio is resampled to 48 kHz, framed and paced into the room.
//!
//! Barge-in. The turn detector also knows whether the agent is speaking. User speech during the
//! agent's speech first pauses it; once the speech lasts `min_interrupt_speech` it interrupts:
//! the pipeline drops the queued audio within a frame and cancels the LLM and TTS streams, and
//! the user's utterance becomes the next turn. Shorter speech (coughs, "hmm", "haan") resumes the
//! agent where it paused and never becomes a turn.
//!
//! Functions. The model may call `capture_lead` (the profile's lead fields, checked and merged
//! into the call's [`tools::LeadSheet`]) and `end_call` (the agent hangs up after its goodbye);
//! results go back to the model, which then finishes its answer.
//!
//! The public modules here are pure: no clocks, tasks or I/O, so each is tested exactly and the code
//! that wires them to the room and the providers stays small.

mod conversation;
mod listen;
pub mod metrics;
mod playout;
mod providers;
pub mod record;
mod reply;
pub mod sentences;
mod session;
pub mod speakable;
mod speaking;
mod state;
mod tools;
mod transcribe;
pub mod turn;
pub mod vad;

pub use session::PipelineSession;
