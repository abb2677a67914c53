//! Time passing: fillers, the call's limits, and the end of the call.

use std::time::Instant;

use super::*;

impl ConversationCore {
    pub(super) fn on_tick(&mut self, now: Instant) {
        let speaking = self.agent_speaking();
        let events = self.turn.on_tick(now, speaking);
        let mut audio = Vec::new();
        for event in events {
            self.on_turn_event(event, now, None, &mut audio);
        }
        if let Some(segment) = self.user.as_ref().and_then(|user| user.open)
            && !audio.is_empty()
        {
            self.out.push(Output::Transcribe { segment, audio });
        }
        self.say_filler(now);
        self.check_limits(now);
    }

    /// A slow tool is covered once, so the caller never sits in silence.
    pub(super) fn say_filler(&mut self, now: Instant) {
        let Some(speech) = &mut self.speech else { return };
        let slow = speech.calls_since.is_some_and(|since| now >= since + self.config.filler_after);
        if !slow || speech.filler_said || speech.pending.iter().all(|call| call.result.is_some()) {
            return;
        }
        speech.filler_said = true;
        let filler = speech
            .pending
            .iter()
            .filter(|call| call.result.is_none())
            .find_map(|call| {
                self.config
                    .tools
                    .iter()
                    .find(|tool| tool.spec.name == call.call.name)
                    .and_then(|tool| tool.filler.clone())
            })
            .unwrap_or_else(|| self.config.filler.clone());
        if filler.trim().is_empty() {
            return;
        }
        speech.queue.push_front(Job::Say(filler));
        self.start_next_job();
    }

    pub(super) fn check_limits(&mut self, now: Instant) {
        let limits = self.config.limits.clone();
        if self.ending.is_none()
            && self.stopping.is_none()
            && let Some(max) = limits.max_duration
            && now >= self.started + max
        {
            tracing::info!("the call reached its time limit");
            self.end_speech(true, now);
            self.abandon_user();
            self.ending = Some((EndReason::MaxDuration, now + GOODBYE_LIMIT));
            if !limits.goodbye.trim().is_empty() {
                self.start_speech(Purpose::Goodbye, None, Job::Say(limits.goodbye.clone()));
            }
            return;
        }
        if !self.engaged
            && let (Some(joined), Some(after)) = (self.joined_at, limits.no_audio)
            && now >= joined + after
        {
            tracing::info!("the caller has neither a microphone nor a message; ending the call");
            self.hang_up(EndReason::NoAudio);
            return;
        }
        if self.idle() {
            if let Some(after) = limits.silence_hangup
                && now >= self.last_activity + after
            {
                tracing::info!("nobody has spoken for {after:?}; ending the call");
                self.hang_up(EndReason::Silence);
                return;
            }
            if let Some(after) = limits.silence_prompt
                && !self.asked_still_there
                && now >= self.last_activity + after
                && !limits.still_there.trim().is_empty()
            {
                self.asked_still_there = true;
                self.start_speech(Purpose::StillThere, None, Job::Say(limits.still_there.clone()));
            }
        }
    }

    /// Drops the caller's turn in progress without answering it.
    pub(super) fn abandon_user(&mut self) {
        let Some(user) = self.user.take() else { return };
        for segment in user.segments.iter().filter(|segment| segment.result.is_none()) {
            self.out.push(Output::AbandonTranscription { segment: segment.id });
        }
        if let Some(draft) = user.draft {
            self.drop_speech(draft.speech);
        }
    }

    pub(super) fn on_stop(&mut self, reason: EndReason, now: Instant) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some((reason, now + STOP_GRACE));
        self.end_speech(true, now);
        let mut audio = Vec::new();
        self.close_segment(&mut audio);
        if let Some(user) = &mut self.user {
            user.ended.get_or_insert(now);
            if let Some(draft) = user.draft.take() {
                self.drop_speech(draft.speech);
            }
        }
        self.try_complete(now);
    }

    pub(super) fn hang_up(&mut self, reason: EndReason) {
        if self.hung_up {
            return;
        }
        self.end_speech(true, self.now);
        self.abandon_user();
        for (tool, pending) in std::mem::take(&mut self.orphans) {
            tracing::debug!(tool = %pending.call.name, "the call ended before a function did");
            self.out.push(Output::CancelTool { tool });
        }
        self.hung_up = true;
        self.out.push(Output::HangUp(reason));
    }
}
