//! Turn taking: when the user starts and stops speaking, and when that speech may cut the agent off.
//!
//! The machine is pure: the pipeline hands it each 20 ms [`VadFrame`] with the time it arrived and
//! whether the agent is currently speaking, and gets back the events that frame caused. It never
//! reads a clock, so every behaviour below is tested frame by frame on synthetic timelines.
//!
//! # User side: utterances
//!
//! ```text
//!            speech frame                     60 ms of consecutive speech (ONSET_SPEECH)
//!   IDLE ─────────────────▶ ONSET ──────────────────────────────────────────▶ UTTERANCE
//!     ▲                       │ a non-speech frame: a click, nothing emitted    │ emits SpeechStarted { pre_roll }
//!     └───────────────────────┘                                                 │ each speech frame adds 20 ms of speech
//!     ▲                                                                         │
//!     └──── min_silence since the last speech frame (frames or a gap in time) ──┘
//!           emits UserTurnEnded { speech } when the utterance interrupted the agent, or when the
//!           agent is silent and speech >= min_speech; otherwise Discarded
//! ```
//!
//! Every `SpeechStarted` is followed by exactly one `UserTurnEnded` or `Discarded`. Speech is
//! counted in frames (20 ms each) and silence in time, so a gap without frames (a muted or stalled
//! track) is silence: a gap of `min_silence` ends the utterance at the next frame or
//! [`TurnDetector::on_tick`]. Time going backwards counts as no time passing.
//!
//! `SpeechStarted` carries the pre-roll: the audio of up to `pre_roll` before the onset plus the
//! onset frames themselves, the current frame last. Speech-to-text needs those leading consonants,
//! which the VAD confirms only after they have passed. The pipeline sends the pre-roll, then each
//! frame for which [`TurnDetector::in_utterance`] held *before* `on_frame` took it: so the frame
//! that started the utterance (already in the pre-roll) is not sent twice, and the frame that
//! ended it is sent.
//!
//! # Agent side: barge-in
//!
//! While an utterance overlaps the agent's speech (the pipeline reports `agent_speaking`: a reply
//! is under way, playing, between sentences or paused by this machine), the utterance moves
//! through these states:
//!
//! ```text
//!   CLEAR ── agent speaking ──▶ PAUSED                      emits PauseAgent
//!   CLEAR ── agent speaking, speech >= min_interrupt_speech already ──▶ INTERRUPTED   emits Interrupt
//!   PAUSED ── speech >= min_interrupt_speech ──▶ INTERRUPTED                          emits Interrupt
//!   PAUSED ── false_interruption_timeout since PauseAgent ──▶ RESUMED                 emits ResumeAgent
//!   PAUSED ── the agent stops speaking by itself ──▶ RESUMED                          emits ResumeAgent
//!   PAUSED ── the utterance ends ──▶ (utterance over)                                 emits ResumeAgent, then its ending
//!   RESUMED ── agent speaking, speech since the resume >= min_interrupt_speech ──▶ INTERRUPTED   emits Interrupt
//! ```
//!
//! So speech shorter than `min_interrupt_speech` never interrupts: a cough, a "hmm" or a "haan"
//! while the agent talks gives `PauseAgent`, then `ResumeAgent`, then `Discarded` (it is a
//! backchannel, not a turn: answering it is what users of other frameworks complain about).
//! Every `PauseAgent` is followed by exactly one `ResumeAgent` or `Interrupt`, each utterance
//! pauses the agent at most once (so sporadic noise cannot make the agent stutter), and interrupts
//! it at most once; an utterance that interrupted always ends in `UserTurnEnded`, because the
//! agent's reply is gone and the user is owed a new one.
//!
//! `PauseAgent` is a hint, and the pipeline may pause playback (holding the unsent audio, as
//! LiveKit Agents does when it can resume false interruptions) or keep playing and merely stop
//! sending more text to speech synthesis. Pausing is the better default: the user is not talked
//! over while their intent is unclear, and a false alarm costs a gap of at most
//! `min_silence` after the noise, capped by `false_interruption_timeout`. On `Interrupt` the
//! pipeline must drop the queued audio within a frame and cancel the LLM and TTS streams.
//!
//! The timeout is why a pause cannot last: noise with short gaps keeps an utterance open without
//! ever reaching `min_interrupt_speech`, and after `false_interruption_timeout` the agent resumes.
//! The count for interrupting then starts again, so sustained speech still barges in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::vad::{FRAME_DURATION, FRAME_SAMPLES, VadFrame};

/// Consecutive speech needed to confirm an onset. One 20 ms speech frame from libfvad is often a
/// click or a burst of noise; three in a row rarely are, and 60 ms is early enough that the
/// pre-roll, not the onset delay, decides what speech-to-text hears.
pub const ONSET_SPEECH: Duration = Duration::from_millis(60);

/// The longest pre-roll kept, whatever the configuration asks: speech-to-text gains nothing from
/// more, and the buffer is per call.
pub const MAX_PRE_ROLL: Duration = Duration::from_secs(2);

/// Thresholds of turn taking. Speech is counted in 20 ms frames; silence and timeouts in the time
/// passed to the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnConfig {
    /// Speech an utterance needs to become a user turn; shorter ones are taps, clicks and pops.
    /// Default 150 ms: the shortest answers ("haan", "no", "ok") carry 150 to 300 ms of voiced
    /// frames, and a threshold above that would drop exactly the replies to yes/no questions.
    /// Coughs are as long as words, so telling them apart is left to speech-to-text (an empty
    /// transcript).
    pub min_speech: Duration,
    /// Silence that ends an utterance. Default 500 ms (LiveKit's endpointing minimum); at least one
    /// frame is always required.
    pub min_silence: Duration,
    /// Speech needed, while the agent speaks, to cut it off. Default 500 ms, LiveKit's default:
    /// longer than backchannels and coughs, shorter than any real objection.
    pub min_interrupt_speech: Duration,
    /// Audio before the onset handed to speech-to-text with `SpeechStarted`. Default 300 ms;
    /// capped at [`MAX_PRE_ROLL`].
    pub pre_roll: Duration,
    /// Longest time the agent stays paused by speech that does not reach `min_interrupt_speech`.
    /// Default 1.5 s, a little under LiveKit's 2 s because here it only bounds noise that keeps an
    /// utterance open; a plain cough already resumes `min_silence` after it ends.
    pub false_interruption_timeout: Duration,
    /// Silence after which the turn has likely ended, though `min_silence` has not passed yet:
    /// long enough to be a pause, not a gap between syllables. The conversation asks for the
    /// transcript then, so it can prepare the answer and judge from the words how long to wait.
    /// `None` (the default here) never reports it.
    pub likely_end: Option<Duration>,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            min_speech: Duration::from_millis(150),
            min_silence: Duration::from_millis(500),
            min_interrupt_speech: Duration::from_millis(500),
            pre_roll: Duration::from_millis(300),
            false_interruption_timeout: Duration::from_millis(1_500),
            likely_end: None,
        }
    }
}

/// What a frame or tick changed; see the module documentation for when each is emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEvent {
    /// An utterance began. `pre_roll` is 16 kHz audio ending with the current frame.
    SpeechStarted {
        /// 16 kHz mono samples, so speech-to-text hears the utterance's first syllable.
        pre_roll: Vec<i16>,
    },
    /// The utterance is a user turn; `speech` is its total speech, silences excluded.
    UserTurnEnded {
        /// Speech in the turn, silences excluded.
        speech: Duration,
    },
    /// The utterance was too short, or a backchannel while the agent spoke.
    Discarded,
    /// The user may be barging in; hold the agent's audio.
    PauseAgent,
    /// The user barged in: stop the agent's audio now and cancel its reply.
    Interrupt,
    /// The pause was a false alarm; continue the agent's audio.
    ResumeAgent,
    /// The user has been silent for `likely_end` in an utterance that would be a turn: it has
    /// probably ended. Followed by `Continued` or by the utterance's end.
    LikelyEnd,
    /// Speech resumed after `LikelyEnd`; the utterance goes on.
    Continued,
}

/// The turn-taking state machine of one call.
#[derive(Debug)]
pub struct TurnDetector {
    config: TurnConfig,
    /// The latest time seen; earlier times passed in later are raised to it.
    clock: Option<Instant>,
    agent_speaking: bool,
    /// The most recent audio, up to the pre-roll plus the onset frames.
    recent: VecDeque<i16>,
    recent_capacity: usize,
    onset: Option<Onset>,
    utterance: Option<Utterance>,
}

#[derive(Debug)]
struct Onset {
    speech: Duration,
    last_speech: Instant,
}

#[derive(Debug)]
struct Utterance {
    speech: Duration,
    /// Speech counted towards `min_interrupt_speech`; restarts when a pause times out.
    interrupt_speech: Duration,
    last_speech: Instant,
    barge: Barge,
    /// The silence that ends this utterance: `min_silence` unless [`TurnDetector::set_silence`]
    /// changed it.
    silence: Duration,
    /// `LikelyEnd` was reported for the current silence.
    likely: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Barge {
    Clear,
    Paused { since: Instant },
    Resumed,
    Interrupted,
}

impl TurnDetector {
    /// A detector waiting for speech.
    pub fn new(config: TurnConfig) -> Self {
        let config = TurnConfig {
            min_silence: config.min_silence.max(FRAME_DURATION),
            pre_roll: config.pre_roll.min(MAX_PRE_ROLL),
            ..config
        };
        let frames = frames_in(config.pre_roll) + frames_in(ONSET_SPEECH);
        let recent_capacity = frames * FRAME_SAMPLES;
        Self {
            config,
            clock: None,
            agent_speaking: false,
            recent: VecDeque::with_capacity(recent_capacity),
            recent_capacity,
            onset: None,
            utterance: None,
        }
    }

    /// The configuration in effect, after raising `min_silence` to one frame and capping `pre_roll`.
    pub fn config(&self) -> &TurnConfig {
        &self.config
    }

    /// Whether an utterance is open: between `SpeechStarted` and its `UserTurnEnded` or `Discarded`.
    pub fn in_utterance(&self) -> bool {
        self.utterance.is_some()
    }

    /// Changes the silence that ends the open utterance (at least one frame), for instance once
    /// its words show the caller is mid-sentence. Speech resuming restores `min_silence`.
    pub fn set_silence(&mut self, silence: Duration) {
        if let Some(utterance) = &mut self.utterance {
            utterance.silence = silence.max(FRAME_DURATION);
        }
    }

    /// Takes the next frame, which arrived at `now`. `agent_speaking` says whether a reply of the
    /// agent is under way: from its first queued audio until its last has played, including the
    /// gaps while the next sentence is synthesised and any pause from `PauseAgent`. Reporting
    /// only the moments audio is audible would turn a sentence gap into "the agent finished",
    /// resuming a pause early and letting a cough in that gap count as a user turn.
    pub fn on_frame(&mut self, now: Instant, frame: &VadFrame, agent_speaking: bool) -> Vec<TurnEvent> {
        let now = self.advance(now);
        self.agent_speaking = agent_speaking;
        self.remember(&frame.samples);
        let mut events = Vec::new();
        // A frame's audio ends when it arrives, so a speech frame's silence ended a frame earlier.
        let silent_until = if frame.speech { now.checked_sub(FRAME_DURATION).unwrap_or(now) } else { now };
        self.expire(now, silent_until, &mut events);
        if frame.speech {
            self.count_speech(now, &mut events);
        } else {
            self.onset = None;
        }
        self.settle_overlap(now, &mut events);
        self.notice_likely_end(silent_until, &mut events);
        events
    }

    /// Lets time pass without a frame, so that utterances end and pauses time out even when the
    /// track stalls or is muted. Call it at [`Self::next_deadline`].
    pub fn on_tick(&mut self, now: Instant, agent_speaking: bool) -> Vec<TurnEvent> {
        let now = self.advance(now);
        self.agent_speaking = agent_speaking;
        let mut events = Vec::new();
        self.expire(now, now, &mut events);
        self.settle_overlap(now, &mut events);
        self.notice_likely_end(now, &mut events);
        events
    }

    /// Ends the open utterance now, as `min_silence` would have: the caller muted their
    /// microphone, so no more speech can come.
    pub fn end_now(&mut self, now: Instant, agent_speaking: bool) -> Vec<TurnEvent> {
        self.advance(now);
        self.agent_speaking = agent_speaking;
        self.onset = None;
        let mut events = Vec::new();
        self.end_utterance(&mut events);
        events
    }

    /// When, without further frames, an utterance would end or a pause time out; `None` when
    /// nothing is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        let utterance = self.utterance.as_ref()?;
        let end = utterance.last_speech.checked_add(utterance.silence);
        let likely = match self.config.likely_end {
            Some(after) if !utterance.likely && after < utterance.silence && self.would_be_turn(utterance) => {
                utterance.last_speech.checked_add(after)
            }
            _ => None,
        };
        let end = match (end, likely) {
            (Some(end), Some(likely)) => Some(end.min(likely)),
            (end, likely) => end.or(likely),
        };
        let resume = match utterance.barge {
            Barge::Paused { since } => since.checked_add(self.config.false_interruption_timeout),
            _ => None,
        };
        match (end, resume) {
            (Some(end), Some(resume)) => Some(end.min(resume)),
            (end, resume) => end.or(resume),
        }
    }

    /// Whether the utterance, ending now, would be a user turn.
    fn would_be_turn(&self, utterance: &Utterance) -> bool {
        utterance.barge == Barge::Interrupted || (!self.agent_speaking && utterance.speech >= self.config.min_speech)
    }

    fn advance(&mut self, now: Instant) -> Instant {
        let now = self.clock.map_or(now, |clock| clock.max(now));
        self.clock = Some(now);
        now
    }

    fn remember(&mut self, samples: &[i16]) {
        self.recent.extend(samples);
        let excess = self.recent.len().saturating_sub(self.recent_capacity);
        self.recent.drain(..excess);
    }

    /// Applies the passage of time up to `now`, with silence known to have lasted until `silent_until`.
    fn expire(&mut self, now: Instant, silent_until: Instant, events: &mut Vec<TurnEvent>) {
        let config = self.config;
        if let Some(onset) = &self.onset
            && silent_until.saturating_duration_since(onset.last_speech) >= config.min_silence
        {
            self.onset = None;
        }
        let Some(utterance) = &mut self.utterance else { return };
        if let Barge::Paused { since } = utterance.barge
            && now.saturating_duration_since(since) >= config.false_interruption_timeout
        {
            utterance.barge = Barge::Resumed;
            utterance.interrupt_speech = Duration::ZERO;
            events.push(TurnEvent::ResumeAgent);
        }
        if silent_until.saturating_duration_since(utterance.last_speech) >= utterance.silence {
            self.end_utterance(events);
        }
    }

    /// Reports a likely end once the silence has lasted `likely_end` in an utterance that would
    /// be a turn; run after the agent's state was applied, which may make it one.
    fn notice_likely_end(&mut self, silent_until: Instant, events: &mut Vec<TurnEvent>) {
        let Some(after) = self.config.likely_end else { return };
        let Some(utterance) = &self.utterance else { return };
        let silent = silent_until.saturating_duration_since(utterance.last_speech);
        if utterance.likely || silent < after || !self.would_be_turn(utterance) {
            return;
        }
        if let Some(utterance) = &mut self.utterance {
            utterance.likely = true;
            events.push(TurnEvent::LikelyEnd);
        }
    }

    fn count_speech(&mut self, now: Instant, events: &mut Vec<TurnEvent>) {
        if let Some(utterance) = &mut self.utterance {
            utterance.speech = utterance.speech.saturating_add(FRAME_DURATION);
            utterance.interrupt_speech = utterance.interrupt_speech.saturating_add(FRAME_DURATION);
            utterance.last_speech = now;
            utterance.silence = self.config.min_silence;
            if std::mem::take(&mut utterance.likely) {
                events.push(TurnEvent::Continued);
            }
            return;
        }
        let onset = self.onset.get_or_insert(Onset { speech: Duration::ZERO, last_speech: now });
        onset.speech = onset.speech.saturating_add(FRAME_DURATION);
        onset.last_speech = now;
        if onset.speech < ONSET_SPEECH {
            return;
        }
        let speech = onset.speech;
        self.onset = None;
        self.utterance = Some(Utterance {
            speech,
            interrupt_speech: speech,
            last_speech: now,
            barge: Barge::Clear,
            silence: self.config.min_silence,
            likely: false,
        });
        events.push(TurnEvent::SpeechStarted { pre_roll: self.recent.iter().copied().collect() });
    }

    /// Applies the agent's state to an open utterance: pause, interrupt or resume.
    fn settle_overlap(&mut self, now: Instant, events: &mut Vec<TurnEvent>) {
        let min_interrupt_speech = self.config.min_interrupt_speech;
        let agent_speaking = self.agent_speaking;
        let Some(utterance) = &mut self.utterance else { return };
        let reached = utterance.interrupt_speech >= min_interrupt_speech;
        let (barge, event) = match (utterance.barge, agent_speaking) {
            (Barge::Clear | Barge::Paused { .. } | Barge::Resumed, true) if reached => {
                (Barge::Interrupted, TurnEvent::Interrupt)
            }
            (Barge::Clear, true) => (Barge::Paused { since: now }, TurnEvent::PauseAgent),
            (Barge::Paused { .. }, false) => (Barge::Resumed, TurnEvent::ResumeAgent),
            _ => return,
        };
        utterance.barge = barge;
        events.push(event);
    }

    fn end_utterance(&mut self, events: &mut Vec<TurnEvent>) {
        let Some(utterance) = self.utterance.take() else { return };
        if let Barge::Paused { .. } = utterance.barge {
            events.push(TurnEvent::ResumeAgent);
        }
        let turn = utterance.barge == Barge::Interrupted
            || (!self.agent_speaking && utterance.speech >= self.config.min_speech);
        events.push(if turn { TurnEvent::UserTurnEnded { speech: utterance.speech } } else { TurnEvent::Discarded });
    }
}

/// How many frames cover `duration`, rounded up.
fn frames_in(duration: Duration) -> usize {
    let frames = duration.as_nanos().div_ceil(FRAME_DURATION.as_nanos());
    usize::try_from(frames).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use TurnEvent::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// Drives a detector with 20 ms frames; frame `n` arrives `20 (n + 1)` ms after the start and
    /// its samples all equal `n`, so pre-rolls can be checked frame by frame.
    struct Timeline {
        detector: TurnDetector,
        start: Instant,
        now: Instant,
        frames: usize,
        agent_speaking: bool,
    }

    impl Timeline {
        fn new(config: TurnConfig) -> Self {
            let start = Instant::now();
            Self { detector: TurnDetector::new(config), start, now: start, frames: 0, agent_speaking: false }
        }

        fn default() -> Self {
            Self::new(TurnConfig::default())
        }

        fn frame(&mut self, speech: bool) -> Vec<TurnEvent> {
            self.now += FRAME_DURATION;
            let frame = VadFrame { speech, samples: [self.frames as i16; FRAME_SAMPLES] };
            self.frames += 1;
            self.detector.on_frame(self.now, &frame, self.agent_speaking)
        }

        /// Feeds `count` frames and returns each event with the time (since the start) it happened.
        fn feed(&mut self, count: usize, speech: bool) -> Vec<(Duration, TurnEvent)> {
            let mut log = Vec::new();
            for _ in 0..count {
                let events = self.frame(speech);
                let at = self.elapsed();
                log.extend(events.into_iter().map(|event| (at, event)));
            }
            log
        }

        fn speech(&mut self, millis: u64) -> Vec<(Duration, TurnEvent)> {
            self.feed(frames_in(ms(millis)), true)
        }

        fn silence(&mut self, millis: u64) -> Vec<(Duration, TurnEvent)> {
            self.feed(frames_in(ms(millis)), false)
        }

        fn elapsed(&self) -> Duration {
            self.now - self.start
        }
    }

    /// The events without their pre-roll audio or times, for comparing sequences.
    fn kinds(log: &[(Duration, TurnEvent)]) -> Vec<TurnEvent> {
        log.iter()
            .map(|(_, event)| match event {
                SpeechStarted { .. } => SpeechStarted { pre_roll: Vec::new() },
                other => other.clone(),
            })
            .collect()
    }

    fn started() -> TurnEvent {
        SpeechStarted { pre_roll: Vec::new() }
    }

    #[test]
    fn a_blip_shorter_than_the_onset_does_nothing() {
        let mut line = Timeline::default();
        let mut log = line.speech(40);
        log.extend(line.silence(2_000));
        assert!(log.is_empty(), "{log:?}");
        line.agent_speaking = true;
        let mut log = line.speech(40);
        log.extend(line.silence(2_000));
        assert!(log.is_empty(), "{log:?}");
    }

    #[test]
    fn speech_shorter_than_min_speech_is_discarded() {
        let mut line = Timeline::default();
        let mut log = line.speech(100);
        log.extend(line.silence(1_000));
        assert_eq!(log[0].0, ms(60));
        assert_eq!(kinds(&log), [started(), Discarded]);
        assert_eq!(log[1].0, ms(100 + 500));
    }

    #[test]
    fn one_second_of_speech_ends_one_turn_after_min_silence() {
        let mut line = Timeline::default();
        let mut log = line.speech(1_000);
        log.extend(line.silence(3_000));
        assert_eq!(kinds(&log), [started(), UserTurnEnded { speech: ms(1_000) }]);
        assert_eq!(log[0].0, ONSET_SPEECH);
        assert_eq!(log[1].0, ms(1_000 + 500));
        assert!(!line.detector.in_utterance());
    }

    #[test]
    fn in_utterance_spans_from_onset_to_the_ending() {
        let mut line = Timeline::default();
        line.speech(40);
        assert!(!line.detector.in_utterance());
        line.speech(20);
        assert!(line.detector.in_utterance());
        line.silence(480);
        assert!(line.detector.in_utterance());
        line.silence(20);
        assert!(!line.detector.in_utterance());
    }

    #[test]
    fn pauses_shorter_than_min_silence_do_not_split_an_utterance() {
        let mut line = Timeline::default();
        let mut log = Vec::new();
        for _ in 0..4 {
            log.extend(line.speech(300));
            log.extend(line.silence(480));
        }
        log.extend(line.silence(20));
        assert_eq!(kinds(&log), [started(), UserTurnEnded { speech: ms(1_200) }]);
        assert_eq!(log[1].0, line.elapsed());
    }

    #[test]
    fn a_pause_of_exactly_min_silence_splits() {
        let mut line = Timeline::default();
        let mut log = line.speech(300);
        log.extend(line.silence(500));
        log.extend(line.speech(300));
        log.extend(line.silence(500));
        let turn = UserTurnEnded { speech: ms(300) };
        assert_eq!(kinds(&log), [started(), turn.clone(), started(), turn]);
    }

    #[test]
    fn onset_needs_consecutive_speech() {
        let mut line = Timeline::default();
        let mut log = Vec::new();
        for _ in 0..20 {
            log.extend(line.speech(40));
            log.extend(line.silence(20));
        }
        assert!(log.is_empty(), "{log:?}");
    }

    #[test]
    fn pre_roll_holds_the_audio_before_and_during_the_onset() {
        let mut line = Timeline::default();
        line.silence(1_000);
        let log = line.speech(60);
        let [(_, SpeechStarted { pre_roll })] = log.as_slice() else { panic!("{log:?}") };
        // 300 ms (15 frames) before the onset, then the three onset frames 50, 51 and 52.
        let expected: Vec<i16> = (35..=52).flat_map(|n| [n as i16; FRAME_SAMPLES]).collect();
        assert_eq!(*pre_roll, expected);
    }

    #[test]
    fn forwarding_by_the_documented_rule_sends_each_frame_once() {
        let mut line = Timeline::default();
        let mut sent: Vec<i16> = Vec::new();
        let mut ended = false;
        for speech in [false; 40].into_iter().chain([true; 30]).chain([false; 40]) {
            let forward = line.detector.in_utterance();
            let index = line.frames as i16;
            for event in line.frame(speech) {
                match event {
                    SpeechStarted { pre_roll } => sent.extend(pre_roll),
                    UserTurnEnded { .. } => ended = true,
                    other => panic!("{other:?}"),
                }
            }
            if forward {
                sent.extend([index; FRAME_SAMPLES]);
            }
        }
        assert!(ended);
        // 15 frames of pre-roll before speech began at frame 40, through frame 94, whose silence ended it.
        let expected: Vec<i16> = (25..=94).flat_map(|n| [n as i16; FRAME_SAMPLES]).collect();
        assert_eq!(sent, expected);
    }

    #[test]
    fn pre_roll_is_short_at_the_start_of_a_call_and_capped() {
        let mut line = Timeline::default();
        let log = line.speech(60);
        let [(_, SpeechStarted { pre_roll })] = log.as_slice() else { panic!("{log:?}") };
        assert_eq!(pre_roll.len(), 3 * FRAME_SAMPLES);

        let mut line = Timeline::new(TurnConfig { pre_roll: Duration::from_secs(3_600), ..TurnConfig::default() });
        assert_eq!(line.detector.config().pre_roll, MAX_PRE_ROLL);
        line.silence(5_000);
        let log = line.speech(60);
        let [(_, SpeechStarted { pre_roll })] = log.as_slice() else { panic!("{log:?}") };
        assert_eq!(pre_roll.len(), (100 + 3) * FRAME_SAMPLES);
    }

    #[test]
    fn barge_in_happens_after_exactly_min_interrupt_speech() {
        let mut line = Timeline::default();
        line.agent_speaking = true;
        let log = line.speech(2_000);
        assert_eq!(kinds(&log), [started(), PauseAgent, Interrupt]);
        assert_eq!(log[1].0, ONSET_SPEECH);
        assert_eq!(log[2].0, ms(500));
        line.agent_speaking = false;
        let log = line.silence(500);
        assert_eq!(kinds(&log), [UserTurnEnded { speech: ms(2_000) }]);
    }

    #[test]
    fn the_interrupting_utterance_is_a_turn_even_if_the_agent_still_reports_speaking() {
        let mut line = Timeline::default();
        line.agent_speaking = true;
        let mut log = line.speech(600);
        log.extend(line.silence(500));
        assert_eq!(kinds(&log), [started(), PauseAgent, Interrupt, UserTurnEnded { speech: ms(600) }]);
    }

    #[test]
    fn a_cough_during_agent_speech_pauses_and_resumes_but_never_interrupts() {
        let mut line = Timeline::default();
        line.agent_speaking = true;
        let mut log = line.speech(300);
        log.extend(line.silence(3_000));
        assert_eq!(kinds(&log), [started(), PauseAgent, ResumeAgent, Discarded]);
        assert_eq!(log[1].0, ONSET_SPEECH);
        assert_eq!(log[2].0, ms(300 + 500));
        assert_eq!(log[3].0, ms(300 + 500));
    }

    #[test]
    fn speech_just_under_min_interrupt_speech_does_not_interrupt() {
        let mut line = Timeline::default();
        line.agent_speaking = true;
        let mut log = line.speech(480);
        log.extend(line.silence(500));
        assert!(!kinds(&log).contains(&Interrupt), "{log:?}");
    }

    #[test]
    fn sporadic_noise_resumes_after_the_timeout_and_pauses_only_once() {
        let mut line = Timeline::default();
        line.agent_speaking = true;
        let mut log = Vec::new();
        for _ in 0..5 {
            log.extend(line.speech(100));
            log.extend(line.silence(300));
        }
        assert_eq!(kinds(&log), [started(), PauseAgent, ResumeAgent]);
        assert_eq!(log[2].0, ONSET_SPEECH + ms(1_500));
        // Sustained speech in the same utterance still barges in, counted from the resume: the
        // noise burst at 1600-1700 ms came after it, so 400 ms more are needed.
        let log = line.speech(1_000);
        assert_eq!(kinds(&log), [Interrupt]);
        assert_eq!(log[0].0, ms(2_000 + 400));
    }

    #[test]
    fn the_agent_finishing_while_paused_resumes_and_the_speech_becomes_a_turn() {
        let mut line = Timeline::default();
        line.agent_speaking = true;
        let mut log = line.speech(200);
        line.agent_speaking = false;
        log.extend(line.speech(100));
        log.extend(line.silence(500));
        assert_eq!(kinds(&log), [started(), PauseAgent, ResumeAgent, UserTurnEnded { speech: ms(300) }]);
        assert_eq!(log[2].0, ms(220));
    }

    #[test]
    fn a_reply_starting_over_a_long_utterance_is_interrupted_at_once() {
        let mut line = Timeline::default();
        let mut log = line.speech(800);
        line.agent_speaking = true;
        log.extend(line.speech(20));
        assert_eq!(kinds(&log), [started(), Interrupt]);
        assert_eq!(log[1].0, ms(820));
    }

    #[test]
    fn speech_while_the_agent_is_silent_never_touches_the_agent() {
        let mut line = Timeline::default();
        let mut log = line.speech(3_000);
        log.extend(line.silence(500));
        assert_eq!(kinds(&log), [started(), UserTurnEnded { speech: ms(3_000) }]);
    }

    #[test]
    fn a_gap_without_frames_is_silence() {
        let mut line = Timeline::default();
        line.speech(400);
        line.now += Duration::from_secs(10);
        let log = line.feed(1, false);
        assert_eq!(kinds(&log), [UserTurnEnded { speech: ms(400) }]);
    }

    #[test]
    fn a_speech_frame_after_a_long_gap_ends_the_old_utterance_first() {
        let mut line = Timeline::default();
        line.speech(400);
        line.now += ms(600);
        let log = line.speech(60);
        assert_eq!(kinds(&log), [UserTurnEnded { speech: ms(400) }, started()]);
    }

    #[test]
    fn a_gap_shorter_than_min_silence_keeps_the_utterance() {
        let mut line = Timeline::default();
        line.speech(400);
        line.now += ms(400);
        let mut log = line.speech(100);
        log.extend(line.silence(500));
        assert_eq!(kinds(&log), [UserTurnEnded { speech: ms(500) }]);
    }

    #[test]
    fn ticks_end_utterances_and_pauses_when_frames_stop() {
        let mut line = Timeline::default();
        line.agent_speaking = true;
        line.speech(200);
        let last_speech = line.now;
        assert_eq!(line.detector.next_deadline(), Some(last_speech + ms(500)));
        assert!(line.detector.on_tick(last_speech + ms(499), true).is_empty());
        assert_eq!(line.detector.on_tick(last_speech + ms(500), true), [ResumeAgent, Discarded]);
        assert_eq!(line.detector.next_deadline(), None);
        assert!(line.detector.on_tick(last_speech + ms(10_000), true).is_empty());
    }

    #[test]
    fn the_deadline_is_the_pause_timeout_when_that_comes_first() {
        let config = TurnConfig { false_interruption_timeout: ms(100), ..TurnConfig::default() };
        let mut line = Timeline::new(config);
        line.agent_speaking = true;
        line.speech(60);
        assert_eq!(line.detector.next_deadline(), Some(line.now + ms(100)));
        assert_eq!(line.detector.on_tick(line.now + ms(100), true), [ResumeAgent]);
        assert_eq!(line.detector.next_deadline(), Some(line.now + ms(500)));
    }

    #[test]
    fn time_going_backwards_counts_as_no_time() {
        let mut line = Timeline::default();
        line.speech(400);
        let last_speech = line.now;
        let mut log = Vec::new();
        for _ in 0..100 {
            line.now -= ms(40);
            log.extend(line.feed(1, false));
        }
        assert!(log.is_empty(), "{log:?}");
        assert!(line.detector.in_utterance());
        line.now = last_speech + ms(500);
        assert_eq!(kinds(&line.feed(1, false)), [UserTurnEnded { speech: ms(400) }]);
    }

    #[test]
    fn frames_without_time_passing_never_end_an_utterance() {
        let mut line = Timeline::default();
        line.speech(200);
        let frame = VadFrame { speech: false, samples: [0; FRAME_SAMPLES] };
        for _ in 0..1_000 {
            assert!(line.detector.on_frame(line.now, &frame, false).is_empty());
        }
    }

    #[test]
    fn degenerate_configurations_are_sane() {
        let zero = TurnConfig {
            min_speech: Duration::ZERO,
            min_silence: Duration::ZERO,
            min_interrupt_speech: Duration::ZERO,
            pre_roll: Duration::ZERO,
            false_interruption_timeout: Duration::ZERO,
            likely_end: None,
        };
        let mut line = Timeline::new(zero);
        assert_eq!(line.detector.config().min_silence, FRAME_DURATION);
        let mut log = line.speech(200);
        log.extend(line.silence(20));
        assert_eq!(kinds(&log), [started(), UserTurnEnded { speech: ms(200) }]);
        line.agent_speaking = true;
        assert_eq!(kinds(&line.speech(60)), [started(), Interrupt]);

        let huge = TurnConfig {
            min_speech: Duration::MAX,
            min_silence: Duration::MAX,
            min_interrupt_speech: Duration::MAX,
            pre_roll: Duration::MAX,
            false_interruption_timeout: Duration::MAX,
            likely_end: None,
        };
        let mut line = Timeline::new(huge);
        line.agent_speaking = true;
        assert_eq!(kinds(&line.speech(1_000)), [started(), PauseAgent]);
        assert_eq!(line.detector.next_deadline(), None);
        assert!(line.silence(1_000).is_empty());
    }

    fn with_likely_end() -> Timeline {
        Timeline::new(TurnConfig { likely_end: Some(ms(200)), ..TurnConfig::default() })
    }

    #[test]
    fn a_likely_end_comes_after_a_short_silence_then_the_turn_ends() {
        let mut line = with_likely_end();
        let mut log = line.speech(600);
        log.extend(line.silence(1_000));
        assert_eq!(kinds(&log), [started(), LikelyEnd, UserTurnEnded { speech: ms(600) }]);
        assert_eq!(log[1].0, ms(600 + 200));
        assert_eq!(log[2].0, ms(600 + 500));
    }

    #[test]
    fn speech_after_a_likely_end_continues_the_utterance_and_restores_min_silence() {
        let mut line = with_likely_end();
        let mut log = line.speech(400);
        log.extend(line.silence(300));
        line.detector.set_silence(ms(1_500));
        log.extend(line.silence(600));
        assert_eq!(kinds(&log), [started(), LikelyEnd], "the longer silence keeps the utterance open");
        let mut log = line.speech(200);
        log.extend(line.silence(480));
        assert_eq!(kinds(&log), [Continued, LikelyEnd]);
        let log = line.silence(20);
        assert_eq!(kinds(&log), [UserTurnEnded { speech: ms(600) }]);
    }

    #[test]
    fn a_shorter_silence_set_after_the_likely_end_ends_the_turn_sooner() {
        let mut line = with_likely_end();
        line.speech(400);
        line.silence(200);
        line.detector.set_silence(ms(300));
        assert_eq!(line.detector.next_deadline(), Some(line.now - ms(200) + ms(300)));
        let log = line.silence(100);
        assert_eq!(kinds(&log), [UserTurnEnded { speech: ms(400) }]);
    }

    #[test]
    fn backchannels_under_the_agent_never_look_like_a_likely_end() {
        let mut line = with_likely_end();
        line.agent_speaking = true;
        let mut log = line.speech(300);
        log.extend(line.silence(1_000));
        assert_eq!(kinds(&log), [started(), PauseAgent, ResumeAgent, Discarded]);
    }

    #[test]
    fn the_likely_end_is_a_deadline_when_frames_stop() {
        let mut line = with_likely_end();
        line.speech(400);
        let last = line.now;
        assert_eq!(line.detector.next_deadline(), Some(last + ms(200)));
        assert_eq!(line.detector.on_tick(last + ms(200), false), [LikelyEnd]);
        assert_eq!(line.detector.next_deadline(), Some(last + ms(500)));
    }

    /// Random frames, agent states and clock jumps (including backwards) must keep the documented
    /// pairings of events.
    #[test]
    fn event_invariants_hold_on_random_timelines() {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut random = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let mut line = Timeline::new(TurnConfig { likely_end: Some(ms(200)), ..TurnConfig::default() });
            let (mut open, mut paused, mut interrupted, mut likely) = (false, false, false, false);
            for _ in 0..2_000 {
                match random(100) {
                    0 => line.now += ms(random(3_000)),
                    1 => line.now = line.now.checked_sub(ms(random(1_000))).unwrap_or(line.now),
                    2..=5 => line.agent_speaking = !line.agent_speaking,
                    _ => {}
                }
                let events = if random(50) == 0 {
                    line.detector.on_tick(line.now + ms(random(1_000)), line.agent_speaking)
                } else {
                    let speech = random(3) != 0;
                    line.frame(speech)
                };
                for event in events {
                    seen.insert(std::mem::discriminant(&event));
                    match event {
                        SpeechStarted { pre_roll } => {
                            assert!(!open && !paused && !pre_roll.is_empty());
                            open = true;
                        }
                        PauseAgent => {
                            assert!(open && !paused && !interrupted);
                            paused = true;
                        }
                        ResumeAgent => {
                            assert!(paused);
                            paused = false;
                        }
                        Interrupt => {
                            assert!(open && !interrupted);
                            (paused, interrupted) = (false, true);
                        }
                        UserTurnEnded { .. } | Discarded => {
                            assert!(open && !paused);
                            assert!(!interrupted || matches!(event, UserTurnEnded { .. }));
                            (open, interrupted, likely) = (false, false, false);
                        }
                        LikelyEnd => {
                            assert!(open && !likely);
                            likely = true;
                        }
                        Continued => {
                            assert!(open && likely);
                            likely = false;
                        }
                    }
                }
                assert_eq!(line.detector.in_utterance(), open);
                let clock = line.detector.clock.expect("time was given");
                assert!(
                    line.detector.next_deadline().is_none_or(|deadline| deadline > clock),
                    "a deadline already past"
                );
            }
        }
        assert_eq!(seen.len(), 8, "every kind of event occurred");
    }
}
