//! Cutting a stream of 48 kHz mono PCM into the fixed 20 ms frames the Opus encoder takes.
//!
//! Text-to-speech delivers audio in pieces of arbitrary size, faster than real time; this queue
//! absorbs them until the pacer asks for the next frame. Keeping the unsent speech here, rather
//! than as encoded packets further down the pipeline, is what lets a barge-in silence the agent
//! within one frame.

use std::collections::VecDeque;

use super::ROOM_FRAME_SAMPLES;

/// A queue of 48 kHz mono samples handed out one 20 ms frame at a time.
#[derive(Debug, Default)]
pub struct Framer {
    queue: VecDeque<i16>,
}

impl Framer {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends 48 kHz mono samples; any length, frames are cut on the way out.
    pub fn push(&mut self, samples: &[i16]) {
        self.queue.extend(samples);
    }

    /// The oldest complete frame, or `None` while less than a frame is queued.
    pub fn next_frame(&mut self) -> Option<[i16; ROOM_FRAME_SAMPLES]> {
        if self.queue.len() < ROOM_FRAME_SAMPLES {
            return None;
        }
        let mut frame = [0; ROOM_FRAME_SAMPLES];
        for (slot, sample) in frame.iter_mut().zip(self.queue.drain(..ROOM_FRAME_SAMPLES)) {
            *slot = sample;
        }
        Some(frame)
    }

    /// Samples waiting, including an incomplete last frame.
    pub fn queued_samples(&self) -> usize {
        self.queue.len()
    }

    /// Drops everything queued. Samples need no destructor, so this costs no time per sample.
    pub fn clear(&mut self) {
        self.queue.clear();
    }

    /// Marks the end of an utterance: pads a trailing partial frame with silence so that the
    /// final syllable is sent rather than stranded until the next utterance.
    pub fn finish(&mut self) {
        let partial = self.queue.len() % ROOM_FRAME_SAMPLES;
        if partial != 0 {
            self.queue.resize(self.queue.len() + ROOM_FRAME_SAMPLES - partial, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(len: usize) -> Vec<i16> {
        (0..len).map(|n| (n % 30_000) as i16).collect()
    }

    #[test]
    fn frames_preserve_order_across_odd_pushes() {
        let input = ramp(5 * ROOM_FRAME_SAMPLES);
        let mut framer = Framer::new();
        let mut frames = Vec::new();
        for piece in input.chunks(333) {
            framer.push(piece);
            frames.extend(std::iter::from_fn(|| framer.next_frame()));
        }
        assert_eq!(frames.len(), 5);
        assert_eq!(frames.concat(), input);
        assert_eq!(framer.queued_samples(), 0);
    }

    #[test]
    fn partial_frame_waits() {
        let mut framer = Framer::new();
        framer.push(&ramp(ROOM_FRAME_SAMPLES - 1));
        assert!(framer.next_frame().is_none());
        assert_eq!(framer.queued_samples(), ROOM_FRAME_SAMPLES - 1);
        framer.push(&[7]);
        assert_eq!(framer.next_frame().map(|frame| frame[ROOM_FRAME_SAMPLES - 1]), Some(7));
    }

    #[test]
    fn finish_pads_the_tail_with_silence() {
        let mut framer = Framer::new();
        framer.push(&ramp(ROOM_FRAME_SAMPLES + 10));
        framer.finish();
        assert_eq!(framer.queued_samples(), 2 * ROOM_FRAME_SAMPLES);
        framer.next_frame();
        let last = framer.next_frame().expect("padded frame");
        assert_eq!(&last[..10], &ramp(ROOM_FRAME_SAMPLES + 10)[ROOM_FRAME_SAMPLES..]);
        assert!(last[10..].iter().all(|&sample| sample == 0));
        assert!(framer.next_frame().is_none());
    }

    #[test]
    fn finish_leaves_whole_frames_alone() {
        let mut framer = Framer::new();
        framer.finish();
        assert_eq!(framer.queued_samples(), 0);
        framer.push(&ramp(ROOM_FRAME_SAMPLES));
        framer.finish();
        assert_eq!(framer.queued_samples(), ROOM_FRAME_SAMPLES);
    }

    #[test]
    fn clear_drops_everything() {
        let mut framer = Framer::new();
        framer.push(&ramp(10 * ROOM_FRAME_SAMPLES + 5));
        framer.clear();
        assert_eq!(framer.queued_samples(), 0);
        assert!(framer.next_frame().is_none());
        framer.push(&ramp(ROOM_FRAME_SAMPLES));
        assert_eq!(framer.next_frame().map(|frame| frame[1]), Some(1));
    }
}
