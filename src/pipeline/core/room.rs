//! People joining, publishing a microphone, muting and typing.

use std::time::Instant;

use super::*;

impl ConversationCore {
    pub(super) fn on_joined(&mut self, identity: String, name: String, agent: bool, now: Instant) {
        if agent {
            self.agents.push(identity);
            return;
        }
        self.joined_at.get_or_insert(now);
        if self.first_caller.is_none() {
            self.first_caller = Some(Caller { identity, name });
        }
    }

    pub(super) fn on_track(&mut self, identity: String, track: String, now: Instant) {
        if self.agents.contains(&identity) || self.stopping.is_some() {
            return;
        }
        // A republished microphone replaces the old one; an utterance on the old one is over.
        if let Some(user) = &mut self.user
            && let Some(open) = user.open.take()
        {
            self.out.push(Output::FinishTranscription { segment: open });
        }
        self.turn = TurnDetector::new(self.config.turn);
        self.listening = Some(track.clone());
        self.out.push(Output::Listen { track });
        self.engage(now);
        if std::mem::take(&mut self.greeting_due) && self.ending.is_none() {
            let greeting = self.config.greeting.clone();
            self.start_speech(Purpose::Greeting, None, Job::Say(greeting));
        }
    }

    /// The caller is really here: prepare what a conversation needs.
    pub(super) fn engage(&mut self, now: Instant) {
        if !self.engaged {
            self.engaged = true;
            self.last_activity = now;
        }
        if self.apology == Apology::NotAsked && !self.config.apology.trim().is_empty() {
            self.apology = Apology::Preparing;
            self.out.push(Output::PrepareApology);
        }
    }

    pub(super) fn on_muted(&mut self, track: &str, muted: bool, now: Instant) {
        if muted && self.listening.as_deref() == Some(track) {
            let speaking = self.agent_speaking();
            let events = self.turn.end_now(now, speaking);
            for event in events {
                self.on_turn_event(event, now, None, &mut Vec::new());
            }
        }
    }

    pub(super) fn on_typed(&mut self, identity: &str, text: &str, now: Instant) {
        if self.agents.iter().any(|agent| agent == identity) || self.ending.is_some() || self.stopping.is_some() {
            return;
        }
        let text: String = text.trim().chars().take(MAX_TYPED_CHARS).collect();
        if text.is_empty() {
            return;
        }
        self.engage(now);
        self.greeting_due = false;
        self.last_activity = now;
        self.asked_still_there = false;
        // A message is a deliberate turn: it cuts the agent off like sustained speech would.
        self.end_speech(true, now);
        let at = self.wall(now);
        self.out.push(Output::Line(Line::typed(&text, at)));
        self.history.push(ChatMessage::user(text));
        self.answer(None);
    }
}
