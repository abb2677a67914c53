//! The real-time schedule for sending 20 ms frames into a room.
//!
//! Receivers play audio by RTP timestamp and size their jitter buffers from arrival times, so the
//! sender must keep the two consistent with the wall clock. Deadlines are computed from the start
//! instant, never by adding up sleeps, so timer slop cannot accumulate into drift. When the
//! sending task is starved for longer than a frame, the missed slots are skipped rather than sent
//! in a catch-up burst: a burst would overflow jitter buffers and be dropped or played squashed,
//! whereas a timestamp gap is heard as a short pause. The audio itself is not lost; it stays
//! queued and goes out in the following slots, a little later than planned.
//!
//! Time is an argument, not read from a clock, so the schedule can be tested exactly. The sending
//! task should sleep until [`Pacer::next_deadline`] and poll every slot, even with nothing to
//! send, so that [`Pacer::skipped`] counts only starvation and not idle time.

use std::time::{Duration, Instant};

use super::{FRAME_DURATION, ROOM_FRAME_SAMPLES};

const FRAME_NANOS: u64 = FRAME_DURATION.as_nanos() as u64;

/// RTP timestamp units per frame: the 48 kHz clock advances one tick per sample.
const FRAME_TICKS: u64 = ROOM_FRAME_SAMPLES as u64;

/// One 20 ms sending opportunity, the `index`th since the pacer started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Counts slots from 0; a jump means slots were skipped (the sender fell behind).
    pub index: u64,
    /// The RTP timestamp for the frame sent in this slot (48 kHz units, wrapping).
    pub rtp_timestamp: u32,
    /// When the slot was due, relative to the pacer's start.
    pub offset: Duration,
}

/// Decides, given the current time, whether a frame is due.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    rtp_base: u32,
    next_index: u64,
    skipped: u64,
    /// How far [`Pacer::pull_in`] has moved the schedule ahead of the wall clock.
    lead: Duration,
}

impl Pacer {
    /// A schedule whose slot 0 is due at `start` with RTP timestamp `rtp_base`. RTP asks for a
    /// random initial timestamp; pass 0 where that does not matter.
    pub fn new(start: Instant, rtp_base: u32) -> Self {
        Self { start, rtp_base, next_index: 0, skipped: 0, lead: Duration::ZERO }
    }

    /// Makes the next slot due at `now` instead of up to a frame later, its timestamp unchanged:
    /// the first words of an answer leave at once instead of waiting for the grid. The schedule
    /// then runs ahead of the wall clock by that much, which [`Pacer::give_back`] undoes.
    pub fn pull_in(&mut self, now: Instant) {
        let early = self.next_deadline().saturating_duration_since(now);
        if let Some(start) = self.start.checked_sub(early) {
            self.start = start;
            self.lead += early;
        }
    }

    /// Moves the schedule back to the wall clock by delaying the next slot by what was pulled in;
    /// call it while silence is sent, where an uneven gap goes unheard. Without it, every pull
    /// would make the sender's clock gain on the receiver's.
    pub fn give_back(&mut self) {
        self.start += std::mem::take(&mut self.lead);
    }

    /// How far the schedule runs ahead of the wall clock.
    pub fn lead(&self) -> Duration {
        self.lead
    }

    /// When the next slot is due: `start + index * 20 ms`.
    pub fn next_deadline(&self) -> Instant {
        self.start + slot_offset(self.next_index)
    }

    /// The slot to send in now, if one is due.
    ///
    /// Returns `None` before the next deadline. Less than a frame late, returns the due slot. Later
    /// than that, returns the slot whose 20 ms window contains `now`, and adds the slots passed
    /// over to [`Pacer::skipped`]: a stall of 200 ms after slot `k` yields slot `k + 11`, with 10
    /// skipped and the timestamp 11 frames ahead.
    pub fn poll(&mut self, now: Instant) -> Option<Slot> {
        let elapsed = now.checked_duration_since(self.start)?;
        let current = u64::try_from(elapsed.as_nanos() / u128::from(FRAME_NANOS)).unwrap_or(u64::MAX);
        if current < self.next_index {
            return None;
        }
        self.skipped += current - self.next_index;
        self.next_index = current.saturating_add(1);
        Some(Slot {
            index: current,
            // Truncating to 32 bits is the RTP timestamp's wrap-around.
            rtp_timestamp: self.rtp_base.wrapping_add(current.wrapping_mul(FRAME_TICKS) as u32),
            offset: slot_offset(current),
        })
    }

    /// How many slots have been passed over because polls came more than a frame late.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

fn slot_offset(index: u64) -> Duration {
    Duration::from_nanos(index.saturating_mul(FRAME_NANOS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn on_time_polls_step_one_frame() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, 1_000);
        for n in 0..1_000_u64 {
            assert_eq!(pacer.next_deadline(), start + ms(20 * n));
            let slot = pacer.poll(pacer.next_deadline()).expect("slot due at its deadline");
            assert_eq!(slot.index, n);
            assert_eq!(slot.rtp_timestamp, 1_000 + 960 * n as u32);
            assert_eq!(slot.offset, ms(20 * n));
        }
        assert_eq!(pacer.skipped(), 0);
    }

    #[test]
    fn pulling_in_sends_now_with_the_same_timestamps_and_giving_back_restores_the_clock() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, 0);
        for _ in 0..5 {
            pacer.poll(pacer.next_deadline());
        }
        let now = start + ms(87);
        assert_eq!(pacer.next_deadline(), start + ms(100));
        pacer.pull_in(now);
        assert_eq!((pacer.next_deadline(), pacer.lead()), (now, ms(13)));
        let slot = pacer.poll(now).expect("due at once");
        assert_eq!((slot.index, slot.rtp_timestamp), (5, 5 * 960));
        assert_eq!(pacer.next_deadline(), start + ms(107), "the following frames keep 20 ms spacing");
        pacer.pull_in(start + ms(107));
        assert_eq!(pacer.lead(), ms(13), "nothing to pull when a slot is due");
        pacer.poll(pacer.next_deadline());
        pacer.give_back();
        assert_eq!((pacer.next_deadline(), pacer.lead()), (start + ms(140), Duration::ZERO));
        assert_eq!(pacer.poll(start + ms(140)).map(|slot| slot.index), Some(7));
        assert_eq!(pacer.skipped(), 0);
    }

    #[test]
    fn early_polls_get_nothing() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, 0);
        assert!(pacer.poll(start).is_some());
        assert!(pacer.poll(start).is_none());
        assert!(pacer.poll(start + ms(19)).is_none());
        assert!(pacer.poll(start + ms(20)).is_some());
        assert!(pacer.poll(start + ms(39)).is_none());
    }

    #[test]
    fn poll_before_start_gets_nothing() {
        let start = Instant::now() + ms(100);
        let mut pacer = Pacer::new(start, 0);
        assert!(pacer.poll(start - ms(1)).is_none());
        assert_eq!(pacer.poll(start).map(|slot| slot.index), Some(0));
    }

    #[test]
    fn stall_skips_instead_of_bursting() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, 0);
        let mut last = None;
        for _ in 0..10 {
            last = pacer.poll(pacer.next_deadline());
        }
        let before = last.expect("on-time slot");
        assert_eq!(before.index, 9);
        let stalled_until = pacer.next_deadline() + ms(200);
        let after = pacer.poll(stalled_until).expect("late slot");
        assert_eq!(after.index, 20);
        assert_eq!(after.rtp_timestamp.wrapping_sub(before.rtp_timestamp), 10 * 960 + 960);
        assert_eq!(pacer.skipped(), 10);
        assert!(pacer.poll(stalled_until).is_none(), "no catch-up burst");
        assert_eq!(pacer.next_deadline(), start + ms(420));
    }

    #[test]
    fn exactly_one_frame_late_skips_one() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, 0);
        assert_eq!(pacer.poll(start + ms(20)).map(|slot| slot.index), Some(1));
        assert_eq!(pacer.skipped(), 1);
    }

    #[test]
    fn late_polls_do_not_drift() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, 0);
        for n in 0..10_000_u64 {
            let lateness = Duration::from_micros(n * 7_919 % 19_000);
            let slot = pacer.poll(pacer.next_deadline() + lateness).expect("slot within a frame of its deadline");
            assert_eq!(slot.index, n);
        }
        assert_eq!(pacer.skipped(), 0);
        assert_eq!(pacer.next_deadline(), start + ms(20 * 10_000));
    }

    #[test]
    fn timestamps_wrap() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, u32::MAX - 100);
        pacer.poll(start);
        let slot = pacer.poll(start + ms(20)).expect("due");
        assert_eq!(slot.rtp_timestamp, 859);
    }
}
