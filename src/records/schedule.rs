//! Which record to send next, and when: a plain state machine with time as input.
//!
//! One record at a time, oldest first among those whose turn has come. Each record keeps its own
//! failure count and earliest next try, so a record that n8n's workflow keeps failing on waits
//! alone while the records behind it go. A failure about n8n as a whole ([`Scope::Endpoint`])
//! also holds every other record until the same instant, with a count of its own, so an outage
//! is probed with one request per backoff step rather than one per waiting record, and a
//! `Retry-After` is respected by all of them.

use std::time::{Duration, Instant};

use super::backoff::{Backoff, Scope};
use super::id::RecordId;

#[derive(Debug)]
struct Entry {
    id: RecordId,
    failures: u32,
    not_before: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Next {
    Send(RecordId),
    /// Nothing may go before this instant.
    Wait(Instant),
    /// Nothing is waiting.
    Idle,
}

/// What a failure led to, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Retry {
    pub wait: Duration,
    /// Failed tries of this record so far.
    pub failures: u32,
}

#[derive(Debug)]
pub(super) struct Schedule {
    backoff: Backoff,
    /// In arrival order, which is oldest first.
    waiting: Vec<Entry>,
    /// Every record waits until then, because n8n as a whole could not take records.
    held_until: Option<Instant>,
    /// Endpoint failures in a row, which set the length of the hold.
    outage: u32,
}

impl Schedule {
    pub fn new(backoff: Backoff) -> Self {
        Self { backoff, waiting: Vec::new(), held_until: None, outage: 0 }
    }

    /// Queues a record behind those already waiting, ready at once.
    pub fn add(&mut self, id: RecordId, now: Instant) {
        self.waiting.push(Entry { id, failures: 0, not_before: now });
    }

    pub fn next(&self, now: Instant) -> Next {
        let Some(soonest) = self.waiting.iter().map(|e| e.not_before).min() else { return Next::Idle };
        if let Some(until) = self.held_until.filter(|until| *until > now) {
            return Next::Wait(until.max(soonest));
        }
        match self.waiting.iter().find(|e| e.not_before <= now) {
            Some(entry) => Next::Send(entry.id.clone()),
            None => Next::Wait(soonest),
        }
    }

    /// n8n gave its final answer on the record (taken or refused): it leaves the schedule, and
    /// since n8n answered, an outage is over. Returns how many tries it took.
    pub fn settled(&mut self, id: &RecordId) -> u32 {
        self.outage = 0;
        self.take(id).map_or(1, |entry| entry.failures + 1)
    }

    /// The record left the spool without an answer from n8n (someone removed the file).
    pub fn forget(&mut self, id: &RecordId) {
        self.take(id);
    }

    fn take(&mut self, id: &RecordId) -> Option<Entry> {
        let index = self.waiting.iter().position(|e| &e.id == id)?;
        Some(self.waiting.remove(index))
    }

    /// A try failed; the record (and for [`Scope::Endpoint`], every record) waits `after` when the
    /// server asked for it, held to the cap, or else the backoff. `draw` is random in `[0, 1)`.
    /// `None` when the record is not in the schedule.
    pub fn failed(
        &mut self,
        id: &RecordId,
        after: Option<Duration>,
        scope: Scope,
        now: Instant,
        draw: f64,
    ) -> Option<Retry> {
        let entry = self.waiting.iter_mut().find(|e| &e.id == id)?;
        entry.failures += 1;
        let after = after.map(|after| after.min(self.backoff.cap));
        let wait = match scope {
            Scope::Endpoint => {
                self.outage += 1;
                // The record's own count too, so its waits keep growing whatever kind of failure
                // it meets next.
                let failures = self.outage.max(entry.failures);
                let wait = after.unwrap_or_else(|| self.backoff.delay(failures, draw));
                self.held_until = Some(now + wait);
                wait
            }
            Scope::Record => {
                self.outage = 0;
                after.unwrap_or_else(|| self.backoff.delay(entry.failures, draw))
            }
        };
        entry.not_before = now + wait;
        Some(Retry { wait, failures: entry.failures })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn id(text: &str) -> RecordId {
        RecordId::parse(text).expect("a valid id")
    }

    fn schedule(ids: &[&str], now: Instant) -> Schedule {
        let mut schedule = Schedule::new(Backoff { first: 2 * SECOND, cap: 60 * SECOND });
        for text in ids {
            schedule.add(id(text), now);
        }
        schedule
    }

    #[test]
    fn records_go_oldest_first_and_nothing_waits_when_empty() {
        let now = Instant::now();
        let mut schedule = schedule(&["a", "b"], now);
        assert_eq!(schedule.next(now), Next::Send(id("a")));
        assert_eq!(schedule.settled(&id("a")), 1);
        assert_eq!(schedule.next(now), Next::Send(id("b")));
        schedule.forget(&id("b"));
        assert_eq!(schedule.next(now), Next::Idle);
    }

    #[test]
    fn a_record_that_keeps_failing_does_not_hold_back_the_ones_behind_it() {
        let now = Instant::now();
        let mut schedule = schedule(&["bad", "good"], now);
        let retry = schedule.failed(&id("bad"), None, Scope::Record, now, 0.0).expect("waiting");
        assert_eq!(retry, Retry { wait: SECOND, failures: 1 });
        assert_eq!(schedule.next(now), Next::Send(id("good")));
        schedule.settled(&id("good"));
        assert_eq!(schedule.next(now), Next::Wait(now + SECOND));
        assert_eq!(schedule.next(now + SECOND), Next::Send(id("bad")));
        let retry = schedule.failed(&id("bad"), None, Scope::Record, now + SECOND, 0.0).expect("waiting");
        assert_eq!(retry, Retry { wait: 2 * SECOND, failures: 2 }, "its own backoff grows");
    }

    #[test]
    fn an_outage_holds_every_record_with_growing_waits_until_n8n_answers() {
        let now = Instant::now();
        let mut schedule = schedule(&["a", "b"], now);
        let first = schedule.failed(&id("a"), None, Scope::Endpoint, now, 0.0).expect("waiting");
        assert_eq!(first.wait, SECOND);
        assert_eq!(schedule.next(now), Next::Wait(now + SECOND), "b waits too");
        let later = now + SECOND;
        assert_eq!(schedule.next(later), Next::Send(id("a")), "the oldest probes first");
        let second = schedule.failed(&id("a"), None, Scope::Endpoint, later, 0.0).expect("waiting");
        assert_eq!(second.wait, 2 * SECOND, "consecutive outage failures back off further");
        let later = later + 2 * SECOND;
        assert_eq!(schedule.next(later), Next::Send(id("a")));
        assert_eq!(schedule.settled(&id("a")), 3);
        assert_eq!(schedule.next(later), Next::Send(id("b")));
        let after_answer = schedule.failed(&id("b"), None, Scope::Endpoint, later, 0.0).expect("waiting");
        assert_eq!(after_answer.wait, SECOND, "an answer ended the outage");
    }

    #[test]
    fn a_records_waits_keep_growing_across_kinds_of_failure() {
        let now = Instant::now();
        let mut schedule = schedule(&["a"], now);
        let waits: Vec<Duration> = [Scope::Record, Scope::Endpoint, Scope::Record, Scope::Endpoint]
            .into_iter()
            .map(|scope| schedule.failed(&id("a"), None, scope, now, 0.0).expect("waiting").wait)
            .collect();
        assert_eq!(waits, [SECOND, 2 * SECOND, 4 * SECOND, 8 * SECOND]);
    }

    #[test]
    fn retry_after_is_taken_as_given_up_to_the_cap() {
        let now = Instant::now();
        let mut schedule = schedule(&["a", "b"], now);
        let retry = schedule.failed(&id("a"), Some(7 * SECOND), Scope::Endpoint, now, 0.0).expect("waiting");
        assert_eq!(retry.wait, 7 * SECOND);
        assert_eq!(schedule.next(now + 6 * SECOND), Next::Wait(now + 7 * SECOND));
        let retry = schedule.failed(&id("a"), Some(3_600 * SECOND), Scope::Endpoint, now, 0.0).expect("waiting");
        assert_eq!(retry.wait, 60 * SECOND);
        assert_eq!(schedule.failed(&id("gone"), None, Scope::Record, now, 0.0), None);
    }
}
