//! The background noise level, measured continuously so thresholds can sit relative to it.
//!
//! The floor is a low percentile ([`PERCENTILE`]) of the frame powers of the last
//! [`WINDOW_FRAMES`] (3 s). Speech has gaps between words and sentences, so even while someone
//! talks the quietest fifth of a 3 s window is the room, not the voice; a minimum would instead
//! sit below the noise by its fluctuation (several dB for brown or street noise). When the room
//! gets louder, the floor follows once the louder noise fills most of the window (about 2.4 s);
//! when it gets quieter, within about 0.6 s.
//!
//! Powers are kept as 0.5 dB bins in a histogram beside the ring of the window's frames, so each
//! frame costs one increment, one decrement and a scan of at most [`BINS`] counters.

/// Frames the floor looks back over: 3 s.
const WINDOW_FRAMES: usize = 150;

/// The fraction of the window's frames at or below the floor.
const PERCENTILE: f32 = 0.2;

/// The quietest level told apart, in dBFS; digital silence counts as this.
const LOWEST_DB: f32 = -100.0;

/// Bins per dB.
const RESOLUTION: f32 = 2.0;

/// Bins from [`LOWEST_DB`] to 0 dBFS (full-scale noise fills the top bin).
const BINS: usize = (-LOWEST_DB * RESOLUTION) as usize + 1;

/// The power of a full-scale square wave, in squared i16 units: 0 dBFS.
const FULL_SCALE_POWER: f32 = 32768.0 * 32768.0;

pub(super) struct NoiseFloor {
    /// The bins of the last frames, oldest at `next` once the ring is full.
    ring: [u8; WINDOW_FRAMES],
    next: usize,
    len: usize,
    histogram: [u16; BINS],
}

impl Default for NoiseFloor {
    fn default() -> Self {
        Self { ring: [0; WINDOW_FRAMES], next: 0, len: 0, histogram: [0; BINS] }
    }
}

impl NoiseFloor {
    /// Records one frame's mean power (squared i16 units).
    pub(super) fn observe(&mut self, power: f32) {
        let db = 10.0 * (power.max(f32::MIN_POSITIVE) / FULL_SCALE_POWER).log10();
        let bin = ((db.clamp(LOWEST_DB, 0.0) - LOWEST_DB) * RESOLUTION).round() as usize;
        if self.len == WINDOW_FRAMES {
            self.histogram[usize::from(self.ring[self.next])] -= 1;
        } else {
            self.len += 1;
        }
        self.histogram[bin] += 1;
        self.ring[self.next] = u8::try_from(bin).expect("BINS is at most 256, so every bin fits in a u8");
        self.next = (self.next + 1) % WINDOW_FRAMES;
    }

    /// The mean power `margin_db` above the floor; 0 before any frame was observed.
    pub(super) fn threshold(&self, margin_db: f32) -> f32 {
        if self.len == 0 {
            return 0.0;
        }
        let wanted = ((self.len as f32 * PERCENTILE).ceil() as u32).max(1);
        let mut seen = 0;
        let bin = self
            .histogram
            .iter()
            .position(|&count| {
                seen += u32::from(count);
                seen >= wanted
            })
            .unwrap_or(BINS - 1);
        let db = LOWEST_DB + bin as f32 / RESOLUTION + margin_db;
        FULL_SCALE_POWER * 10f32.powf(db / 10.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_of(power: f32) -> f32 {
        10.0 * (power / FULL_SCALE_POWER).log10()
    }

    fn power_at(db: f32) -> f32 {
        FULL_SCALE_POWER * 10f32.powf(db / 10.0)
    }

    #[test]
    fn the_floor_is_the_background_under_intermittent_speech() {
        let mut floor = NoiseFloor::default();
        // 3 s of 60% speech at -26 dBFS over noise at -50 dBFS.
        for frame in 0..WINDOW_FRAMES {
            floor.observe(power_at(if frame % 5 < 3 { -26.0 } else { -50.0 }));
        }
        let level = db_of(floor.threshold(6.0));
        assert!((level - -44.0).abs() < 0.6, "{level}");
    }

    #[test]
    fn the_floor_rises_with_the_room_and_falls_faster() {
        let mut floor = NoiseFloor::default();
        let mut observe = |db: f32, frames: usize| {
            for _ in 0..frames {
                floor.observe(power_at(db));
            }
            db_of(floor.threshold(0.0))
        };
        assert!((observe(-60.0, WINDOW_FRAMES) - -60.0).abs() < 0.3);
        assert!(observe(-30.0, 100) < -59.0, "two seconds of louder noise do not yet move it");
        assert!((observe(-30.0, 25) - -30.0).abs() < 0.3, "2.5 s do");
        assert!((observe(-60.0, 30) - -60.0).abs() < 0.3, "0.6 s of quiet bring it back");
    }

    #[test]
    fn silence_and_full_scale_stay_in_range() {
        let mut floor = NoiseFloor::default();
        assert_eq!(floor.threshold(3.0), 0.0);
        floor.observe(0.0);
        assert!((db_of(floor.threshold(0.0)) - LOWEST_DB).abs() < 0.1);
        for _ in 0..WINDOW_FRAMES * 2 {
            floor.observe(FULL_SCALE_POWER * 4.0);
        }
        assert!((db_of(floor.threshold(0.0))).abs() < 0.1);
    }
}
