//! The caller's side: utterances cut into segments, their words, and the turn they make.

use std::time::Instant;

use super::*;

impl ConversationCore {
    pub(super) fn on_frames(&mut self, track: &str, frames: &[VadFrame], now: Instant) {
        if self.listening.as_deref() != Some(track) {
            return;
        }
        let mut audio = Vec::new();
        for frame in frames {
            let speaking = self.agent_speaking();
            let events = self.turn.on_frame(now, frame, speaking);
            let mut took_frame = false;
            for event in events {
                took_frame |= self.on_turn_event(event, now, Some(frame), &mut audio);
            }
            let Some(user) = &mut self.user else { continue };
            if frame.speech && self.turn.in_utterance() {
                user.last_speech = now;
            }
            if took_frame {
                continue;
            }
            if user.open.is_some() {
                if frame.speech {
                    audio.append(&mut user.held);
                    audio.extend_from_slice(&frame.samples);
                } else {
                    user.held.extend_from_slice(&frame.samples);
                }
            } else if self.turn.in_utterance() {
                // Between a likely end and what follows: kept as the pre-roll of a continuation.
                user.held.extend_from_slice(&frame.samples);
                let excess = user.held.len().saturating_sub(CONTINUATION_PRE_ROLL);
                user.held.drain(..excess);
            }
        }
        if let Some(segment) = self.user.as_ref().and_then(|user| user.open)
            && !audio.is_empty()
        {
            self.out.push(Output::Transcribe { segment, audio });
        }
    }

    /// Acts on a turn event; `audio` collects what goes to the open segment and is sent before
    /// the segment closes. True when the event already took `frame`'s audio.
    pub(super) fn on_turn_event(
        &mut self,
        event: TurnEvent,
        now: Instant,
        frame: Option<&VadFrame>,
        audio: &mut Vec<i16>,
    ) -> bool {
        match event {
            TurnEvent::SpeechStarted { pre_roll } => {
                self.speech_started(pre_roll, now, audio);
                return true;
            }
            TurnEvent::Continued => {
                // The draft stays: should the words that follow add nothing (a breath, a
                // cough), it still answers the turn.
                let Some(user) = &mut self.user else { return false };
                let mut pre_roll = std::mem::take(&mut user.held);
                if let Some(frame) = frame {
                    pre_roll.extend_from_slice(&frame.samples);
                }
                self.open_segment(pre_roll, audio);
                return frame.is_some();
            }
            TurnEvent::LikelyEnd => {
                if self.config.preemptive || self.config.endpointing.is_some() {
                    self.close_segment(audio);
                }
            }
            TurnEvent::UserTurnEnded { .. } => {
                self.close_segment(audio);
                if let Some(user) = &mut self.user {
                    user.ended = Some(now);
                    user.held.clear();
                }
                self.try_complete(now);
            }
            TurnEvent::Discarded => self.discard_utterance(audio),
            TurnEvent::PauseAgent => {
                if self.interruptible() {
                    self.pause();
                }
            }
            TurnEvent::ResumeAgent => {
                if !self.user.as_ref().is_some_and(|user| user.confirming) {
                    self.resume();
                }
            }
            TurnEvent::Interrupt => {
                if !self.interruptible() {
                    return false;
                }
                if self.config.min_interruption_words == 0 {
                    self.interrupt(now);
                } else if let Some(user) = &mut self.user {
                    user.confirming = true;
                    self.pause();
                    self.confirm_by_words(now);
                }
            }
        }
        false
    }

    /// The goodbye at the time limit is said whole.
    pub(super) fn interruptible(&self) -> bool {
        self.speech.as_ref().is_some_and(|speech| speech.purpose != Purpose::Goodbye)
    }

    pub(super) fn speech_started(&mut self, pre_roll: Vec<i16>, now: Instant, audio: &mut Vec<i16>) {
        self.last_activity = now;
        self.asked_still_there = false;
        match &mut self.user {
            // More words before the agent answered: the same turn goes on.
            Some(user) => {
                user.ended = None;
                user.held.clear();
                user.last_speech = now;
                user.utterance_from = user.segments.len();
            }
            None => {
                let id = self.id();
                self.user = Some(UserTurn {
                    id,
                    segments: Vec::new(),
                    open: None,
                    utterance_from: 0,
                    held: Vec::new(),
                    last_speech: now,
                    ended: None,
                    started_at: now,
                    confirming: false,
                    draft: None,
                });
            }
        }
        self.open_segment(pre_roll, audio);
    }

    pub(super) fn open_segment(&mut self, pre_roll: Vec<i16>, audio: &mut Vec<i16>) {
        let id = self.id();
        let Some(user) = &mut self.user else { return };
        user.segments.push(Segment { id, partial: String::new(), result: None });
        user.open = Some(id);
        audio.clear();
        self.out.push(Output::StartTranscription { segment: id, audio: pre_roll });
    }

    /// Sends the open segment's last audio with a short tail of silence, and finishes it.
    pub(super) fn close_segment(&mut self, audio: &mut Vec<i16>) {
        let Some(user) = &mut self.user else { return };
        let Some(segment) = user.open.take() else { return };
        audio.extend_from_slice(&user.held[..user.held.len().min(TAIL_SAMPLES)]);
        if !audio.is_empty() {
            self.out.push(Output::Transcribe { segment, audio: std::mem::take(audio) });
        }
        self.out.push(Output::FinishTranscription { segment });
    }

    /// The detector's utterance was noise or a backchannel: its segments go, and a turn that
    /// had ended before it stands as it was.
    pub(super) fn discard_utterance(&mut self, audio: &mut Vec<i16>) {
        audio.clear();
        let Some(user) = &mut self.user else { return };
        user.open = None;
        let dropped: Vec<u64> = user.segments.drain(user.utterance_from..).map(|segment| segment.id).collect();
        self.out.extend(dropped.into_iter().map(|segment| Output::AbandonTranscription { segment }));
        if user.segments.is_empty() {
            if let Some(draft) = self.user.take().and_then(|user| user.draft) {
                self.drop_speech(draft.speech);
            }
            return;
        }
        user.held.clear();
        user.ended = Some(self.now);
        self.try_complete(self.now);
    }

    pub(super) fn on_partial(&mut self, segment: u64, text: String, now: Instant) {
        let Some(user) = &mut self.user else { return };
        let Some(found) = user.segments.iter_mut().find(|s| s.id == segment) else { return };
        found.partial = text;
        let words = user.words();
        let turn = user.id;
        if !words.is_empty() {
            self.out.push(Output::UserCaption { turn, text: words, last: false });
        }
        self.confirm_by_words(now);
    }

    /// An interruption waiting for words becomes real once there are enough.
    pub(super) fn confirm_by_words(&mut self, now: Instant) {
        let Some(user) = &self.user else { return };
        if user.confirming && word_count(&user.words()) >= self.config.min_interruption_words {
            self.interrupt(now);
        }
    }

    pub(super) fn on_transcript(&mut self, segment: u64, result: Result<Heard, String>, now: Instant) {
        let Some(user) = &mut self.user else { return };
        let Some(found) = user.segments.iter_mut().find(|s| s.id == segment) else { return };
        found.result = Some(result);
        if user.ended.is_none() {
            self.early_words(now);
        }
        self.confirm_by_words(now);
        self.try_complete(now);
    }

    /// The words of a likely end: how long to wait for more, and an answer prepared meanwhile.
    pub(super) fn early_words(&mut self, now: Instant) {
        let Some(user) = &mut self.user else { return };
        if user.segments.iter().any(|segment| segment.result.is_none()) || user.open.is_some() {
            return;
        }
        let text = user.text();
        if let Some(waits) = self.config.endpointing {
            self.turn.set_silence(endpoint::silence_after(&text, waits));
        }
        let turn = user.id;
        if !text.is_empty() {
            self.out.push(Output::UserCaption { turn, text: text.clone(), last: false });
        }
        let preempt = self.config.preemptive
            && !text.is_empty()
            && !user.confirming
            && self.stopping.is_none()
            && self.ending.is_none()
            && user.draft.as_ref().is_none_or(|draft| draft.text != text);
        if !preempt {
            return;
        }
        if let Some(draft) = self.user.as_mut().and_then(|user| user.draft.take()) {
            self.drop_speech(draft.speech);
        }
        let mut messages = self.history.messages(self.lead.captured());
        messages.push(ChatMessage::user(text.clone()));
        let request = self.request(messages);
        let id = self.id();
        let mut speech = Speech::new(id, Purpose::Answer, None);
        speech.held = true;
        speech.request = Some(request.clone());
        speech.rounds = 1;
        let job = self.id();
        speech.running = Some(job);
        self.out.push(Output::StartJob {
            job,
            speech: id,
            work: Job::Generate { request, hold: true, new_turn: true },
        });
        if let Some(user) = &mut self.user {
            user.draft = Some(Draft { speech, text, asked: now });
        }
    }

    /// Once the turn has ended and every segment is transcribed: the words join the
    /// conversation and the agent answers.
    pub(super) fn try_complete(&mut self, now: Instant) {
        let ready = self
            .user
            .as_ref()
            .is_some_and(|user| user.ended.is_some() && user.segments.iter().all(|segment| segment.result.is_some()));
        if !ready {
            return;
        }
        let Some(user) = self.user.take() else { return };
        let text = user.text();
        let failed = user.segments.iter().any(|segment| matches!(segment.result, Some(Err(_))));
        let stt = user
            .segments
            .iter()
            .rev()
            .find_map(|segment| match &segment.result {
                Some(Ok(heard)) => Some(heard.latency),
                _ => None,
            })
            .unwrap_or_default();
        let ended = user.ended.unwrap_or(now);
        let mut draft = user.draft;
        if user.confirming {
            if word_count(&text) >= self.config.min_interruption_words.max(1) {
                self.interrupt(now);
            } else {
                // Not words: a cough, a door, the television. The agent goes on.
                if let Some(draft) = draft.take() {
                    self.drop_speech(draft.speech);
                }
                self.resume();
                return;
            }
        }
        if text.is_empty() {
            if let Some(draft) = draft.take() {
                self.drop_speech(draft.speech);
            }
            if failed && self.speech.is_none() && self.stopping.is_none() && self.ending.is_none() {
                self.apologise();
            }
            return;
        }
        self.last_activity = now;
        tracing::debug!(words = %crate::telemetry::personal(&text), "the caller's turn");
        self.out.push(Output::UserCaption { turn: user.id, text: text.clone(), last: true });
        self.out.push(Output::Line(Line::new(Speaker::Caller, &text, self.wall(user.started_at), false)));
        self.history.push(ChatMessage::user(text.clone()));
        if self.stopping.is_some() || self.ending.is_some() {
            if let Some(draft) = draft.take() {
                self.drop_speech(draft.speech);
            }
            return;
        }
        // Whatever the agent began after this turn started, the newer turn takes precedence.
        self.end_speech(true, now);
        let clock = |asked| TurnClock { last_speech: user.last_speech, ended, stt, asked };
        match draft {
            Some(draft) if draft.text == text => {
                let mut speech = draft.speech;
                speech.set_clock(clock(draft.asked));
                speech.held = false;
                if let Some(job) = speech.running {
                    self.out.push(Output::Release { job });
                }
                self.speech = Some(speech);
                self.after_job(now);
            }
            other => {
                if let Some(draft) = other {
                    self.drop_speech(draft.speech);
                }
                self.answer(Some(clock(now)));
            }
        }
    }
}

/// The caller's turn: segments transcribed or being transcribed.
#[derive(Debug)]
pub(super) struct UserTurn {
    pub(super) id: u64,
    pub(super) segments: Vec<Segment>,
    /// The segment receiving audio.
    pub(super) open: Option<u64>,
    /// Index of the first segment of the detector's current utterance.
    pub(super) utterance_from: usize,
    /// Silence since the last speech, sent only if speech follows.
    pub(super) held: Vec<i16>,
    pub(super) last_speech: Instant,
    /// When the turn detector ended it; `None` while the caller speaks.
    pub(super) ended: Option<Instant>,
    pub(super) started_at: Instant,
    /// It interrupted the agent, which stays paused until its words are known.
    pub(super) confirming: bool,
    /// An answer prepared for the words so far.
    pub(super) draft: Option<Draft>,
}

#[derive(Debug)]
pub(super) struct Segment {
    pub(super) id: u64,
    pub(super) partial: String,
    pub(super) result: Option<Result<Heard, String>>,
}

#[derive(Debug)]
pub(super) struct Draft {
    pub(super) speech: Speech,
    /// The words it answers.
    pub(super) text: String,
    pub(super) asked: Instant,
}

impl UserTurn {
    /// The transcribed words of every segment, in order.
    pub(super) fn text(&self) -> String {
        let texts = self.segments.iter().filter_map(|segment| match &segment.result {
            Some(Ok(heard)) => Some(heard.text.trim()),
            _ => None,
        });
        join(texts)
    }

    /// The words known so far: transcripts, and partial words of segments still open.
    pub(super) fn words(&self) -> String {
        let texts = self.segments.iter().map(|segment| match &segment.result {
            Some(Ok(heard)) => heard.text.trim(),
            _ => segment.partial.trim(),
        });
        join(texts)
    }
}

pub(super) fn join<'a>(texts: impl Iterator<Item = &'a str>) -> String {
    texts.filter(|text| !text.is_empty()).collect::<Vec<_>>().join(" ")
}

pub(super) fn word_count(text: &str) -> usize {
    text.split_whitespace().filter(|word| word.chars().any(char::is_alphanumeric)).count()
}
