//! The agent's side: speeches made of jobs, function rounds, pauses and interruptions.

use std::time::Instant;

use super::*;

impl ConversationCore {
    pub(super) fn request(&self, messages: Vec<ChatMessage>) -> ChatRequest {
        let mut tools = self.lead.specs();
        tools.extend(self.config.tools.iter().map(|tool| tool.spec.clone()));
        let chat = &self.config.chat;
        ChatRequest {
            model: chat.model.clone(),
            messages,
            temperature: chat.temperature,
            max_tokens: chat.max_tokens,
            tools,
        }
    }

    /// Asks the model for an answer to the conversation so far.
    pub(super) fn answer(&mut self, clock: Option<TurnClock>) {
        let request = self.request(self.history.messages(self.lead.captured()));
        let id = self.id();
        let mut speech = Speech::new(id, Purpose::Answer, clock);
        speech.request = Some(request.clone());
        speech.rounds = 1;
        speech.queue.push_back(Job::Generate { request, hold: false, new_turn: true });
        self.speech = Some(speech);
        self.start_next_job();
    }

    pub(super) fn start_speech(&mut self, purpose: Purpose, clock: Option<TurnClock>, job: Job) {
        let id = self.id();
        let mut speech = Speech::new(id, purpose, clock);
        speech.queue.push_back(job);
        self.speech = Some(speech);
        self.start_next_job();
    }

    pub(super) fn apologise(&mut self) {
        let job = match self.apology {
            Apology::Ready => Job::PlayApology,
            _ => Job::Say(self.config.apology.clone()),
        };
        if !self.config.apology.trim().is_empty() {
            self.start_speech(Purpose::Apology, None, job);
        }
    }

    pub(super) fn start_next_job(&mut self) {
        let Some(speech) = &mut self.speech else { return };
        if speech.running.is_some() || speech.failed.is_some() {
            return;
        }
        let Some(work) = speech.queue.pop_front() else { return };
        let speech_id = speech.id;
        self.next_id += 1;
        let job = self.next_id;
        if let Some(speech) = &mut self.speech {
            speech.running = Some(job);
        }
        self.out.push(Output::StartJob { job, speech: speech_id, work });
    }

    pub(super) fn on_job(&mut self, job: u64, event: JobEvent, now: Instant) {
        let mine = |speech: &Speech| speech.running == Some(job);
        let speech = match (&mut self.speech, &mut self.user) {
            (Some(speech), _) if mine(speech) => speech,
            (_, Some(UserTurn { draft: Some(draft), .. })) if mine(&draft.speech) => &mut draft.speech,
            _ => return,
        };
        match event {
            JobEvent::FirstToken => speech.first_token(now),
            JobEvent::FirstAudio { synthesis } => speech.first_audio(synthesis),
            JobEvent::Sentence { text, start, duration } => {
                if speech.sentence(&text, start, duration, now) {
                    self.next_caption = Some(now);
                }
            }
            JobEvent::ToolCalls(calls) => speech.calls = calls,
            JobEvent::Done { text } => {
                speech.job_done(&text);
                self.after_job(now);
            }
            JobEvent::Failed { stage, error } => {
                tracing::warn!(speech = speech.id, "{stage} failed: {error}");
                speech.running = None;
                speech.failed = Some(stage);
                speech.queue.clear();
                speech.calls.clear();
            }
        }
    }

    /// A job finished: run the functions its round called, or start what comes next.
    pub(super) fn after_job(&mut self, now: Instant) {
        let Some(speech) = &mut self.speech else { return };
        if speech.held || speech.running.is_some() {
            return;
        }
        if !speech.calls.is_empty() {
            self.run_tools(now);
        }
        self.start_next_job();
    }

    pub(super) fn run_tools(&mut self, now: Instant) {
        let Some(speech) = &mut self.speech else { return };
        let calls = std::mem::take(&mut speech.calls);
        speech.exchange.push(ChatMessage { tool_calls: calls.clone(), ..ChatMessage::assistant("") });
        speech.calls_since = Some(now);
        speech.filler_said = false;
        for call in calls {
            let external = self.config.tools.iter().find(|tool| tool.spec.name == call.name).cloned();
            let (result, side_effects) = match external {
                Some(tool) => {
                    self.next_id += 1;
                    let token = self.next_id;
                    tracing::info!(tool = %call.name, "the model called a function");
                    self.out.push(Output::CallTool { tool: token, call: call.clone() });
                    let pending = PendingCall { call, result: None, side_effects: tool.side_effects, token };
                    if let Some(speech) = &mut self.speech {
                        speech.pending.push(pending);
                    }
                    continue;
                }
                None if call.name == CAPTURE_LEAD || call.name == END_CALL => {
                    let outcome = self.lead.call(&call);
                    tracing::info!(tool = %call.name, "the model called a function");
                    if outcome.end_call
                        && let Some(speech) = &mut self.speech
                    {
                        speech.end_call = true;
                    }
                    (outcome.result, false)
                }
                None => {
                    let mut names: Vec<String> = self.lead.specs().into_iter().map(|spec| spec.name).collect();
                    names.extend(self.config.tools.iter().map(|tool| tool.spec.name.clone()));
                    let error =
                        format!("there is no function named `{}`; the functions are {}", call.name, names.join(", "));
                    (serde_json::json!({"ok": false, "error": error}).to_string(), false)
                }
            };
            if let Some(speech) = &mut self.speech {
                speech.pending.push(PendingCall { call, result: Some(result), side_effects, token: 0 });
            }
        }
        self.next_round();
    }

    /// Once every call of the round has its result: the results go to the model for the next
    /// round, unless the rounds are used up.
    pub(super) fn next_round(&mut self) {
        let max_rounds = self.config.max_tool_rounds;
        let Some(speech) = &mut self.speech else { return };
        if speech.pending.iter().any(|call| call.result.is_none()) {
            return;
        }
        let results: Vec<ChatMessage> = std::mem::take(&mut speech.pending)
            .into_iter()
            .map(|call| ChatMessage::tool(&call.call.id, call.result.unwrap_or_default()))
            .collect();
        speech.exchange.extend(results);
        speech.calls_since = None;
        if speech.rounds >= max_rounds {
            tracing::warn!("the model kept calling functions; its answer ends here");
            return;
        }
        // The first round's request with the calls and results of every round so far.
        let Some(mut request) = speech.request.clone() else { return };
        request.messages.extend(speech.exchange.iter().cloned());
        speech.rounds += 1;
        speech.queue.push_back(Job::Generate { request, hold: false, new_turn: false });
    }

    pub(super) fn on_tool_result(&mut self, tool: u64, output: ToolOutput) {
        if let Some(at) = self.orphans.iter().position(|(token, _)| *token == tool) {
            let (_, pending) = self.orphans.remove(at);
            tracing::info!(tool = %pending.call.name, "a function finished after its answer was cut off");
            let call = pending.call;
            let id = call.id.clone();
            self.history.extend([
                ChatMessage { tool_calls: vec![call], ..ChatMessage::assistant("") },
                ChatMessage::tool(&id, output.result),
            ]);
            return;
        }
        let Some(speech) = &mut self.speech else { return };
        let Some(pending) = speech.pending.iter_mut().find(|call| call.token == tool && call.result.is_none()) else {
            return;
        };
        let mut result = output.result;
        if let Some(say) = output.say.filter(|say| !say.trim().is_empty()) {
            result = serde_json::json!({"result": serde_json::from_str::<serde_json::Value>(&result).unwrap_or(serde_json::Value::String(result)), "said_to_caller": say}).to_string();
            speech.queue.push_back(Job::Say(say));
        }
        pending.result = Some(result);
        speech.end_call |= output.end_call;
        self.next_round();
        self.start_next_job();
    }

    pub(super) fn pause(&mut self) {
        if !self.paused && self.speech.as_ref().is_some_and(Speech::started) {
            self.paused = true;
            self.next_caption = None;
            self.out.push(Output::Pause);
        }
    }

    pub(super) fn resume(&mut self) {
        if self.paused {
            self.paused = false;
            self.next_caption = self.speech.as_ref().filter(|speech| speech.started()).map(|_| self.now);
            self.out.push(Output::Resume);
        }
    }

    /// The caller cut the agent off: what it was saying stops now.
    pub(super) fn interrupt(&mut self, now: Instant) {
        if let Some(user) = &mut self.user {
            user.confirming = false;
        }
        if self.interruptible() {
            tracing::info!("the caller interrupted");
            self.end_speech(true, now);
        }
    }

    /// Drops a speech nobody heard (a draft): its job stops, its tools too.
    pub(super) fn drop_speech(&mut self, speech: Speech) {
        if let Some(job) = speech.running {
            self.out.push(Output::CancelJob { job });
        }
    }

    /// Ends the speech in flight: `interrupted` when it is cut off, else it has played whole.
    pub(super) fn end_speech(&mut self, interrupted: bool, now: Instant) {
        let Some(mut speech) = self.speech.take() else { return };
        if let Some(job) = speech.running.take() {
            self.out.push(Output::CancelJob { job });
        }
        for pending in std::mem::take(&mut speech.pending) {
            if pending.result.is_some() {
                continue;
            }
            if pending.side_effects {
                self.orphans.push((pending.token, pending));
            } else {
                self.out.push(Output::CancelTool { tool: pending.token });
            }
        }
        if interrupted || self.paused {
            self.out.push(Output::Clear);
        }
        self.paused = false;
        self.next_caption = None;
        let id = speech.id;
        let started = speech.started();
        let (ended, delta, exchange) = speech.end(self.played, interrupted);
        if !delta.is_empty() {
            self.out.push(Output::AgentCaption { speech: id, text: delta });
        }
        if started {
            self.out.push(Output::AgentCaptionEnd { speech: id });
        }
        self.history.extend(exchange);
        self.history.said(&ended.said);
        if let (false, Some(at)) = (ended.said.trim().is_empty(), ended.spoke_at) {
            let at = self.wall(at);
            self.out.push(Output::Line(Line::new(Speaker::Agent, &ended.said, at, ended.interrupted)));
        }
        if let Some(metrics) = ended.metrics {
            self.out.push(Output::Turn(metrics));
        }
        if ended.purpose != Purpose::StillThere {
            self.last_activity = now;
        }
        if interrupted {
            return;
        }
        if ended.end_call && self.ending.is_none() {
            self.ending = Some((EndReason::AgentEnded, now));
        }
        let waiting = self.user.as_ref().is_some_and(|user| user.ended.is_some());
        if ended.failed
            && ended.purpose != Purpose::Apology
            && !waiting
            && self.stopping.is_none()
            && self.ending.is_none()
        {
            self.apologise();
        }
    }
}
