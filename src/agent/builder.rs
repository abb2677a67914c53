//! An agent put together piece by piece; every setting but the three providers has a default
//! that suits a phone-like conversation.

use std::sync::Arc;
use std::time::Duration;

use super::hooks::{AgentHooks, NoHooks};
use super::tool::Tool;
pub use crate::pipeline::core::CallLimits as Limits;
use crate::pipeline::core::{ChatSettings, CoreConfig, Endpointing, ExternalTool};
use crate::pipeline::turn::TurnConfig;
use crate::pipeline::vad::VadConfig;
use crate::profiles::LeadField;
use crate::providers::llm::ChatModel;
use crate::providers::stt::SpeechToText;
use crate::providers::tts::{SpeechRequest, TextToSpeech};

/// How the agent takes turns with the caller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnOptions {
    /// Speech a turn needs; shorter sounds are clicks and taps. Default 150 ms.
    pub min_speech: Duration,
    /// Silence that ends the caller's turn when their words say nothing either way. Default
    /// 500 ms.
    pub min_silence: Duration,
    /// Silence that ends a turn after a complete sentence. Default 450 ms: in the noisy-room suite,
    /// 400 ms split one turn in a hundred at the pause between two sentences.
    pub complete_silence: Duration,
    /// Silence that ends a turn after a word that promises more ("and", "um") or half a number.
    /// Default 1.5 s.
    pub unfinished_silence: Duration,
    /// A pause after which the turn has probably ended: the words are fetched then, to choose
    /// the silence above and (with `preemptive`) to prepare the answer. `None` turns both off.
    /// Default 300 ms: pauses inside a sentence are shorter, so a turn rarely costs more than
    /// one request to the model.
    pub likely_end: Option<Duration>,
    /// Ask the model at the likely end, and drop its answer if the caller goes on. Default on.
    pub preemptive: bool,
    /// Speech over the agent that interrupts it. Default 500 ms.
    pub min_interrupt_speech: Duration,
    /// Words an interruption needs before the agent's answer is dropped; until they are known
    /// the agent is paused, and without them it resumes. 0 trusts the voice detector alone.
    /// Default 1.
    pub min_interruption_words: usize,
    /// Longest pause for speech that never reaches `min_interrupt_speech`. Default 1.5 s.
    pub false_interruption_timeout: Duration,
    /// The voice detector. Default Silero, which tells speech from fans, traffic, hum and music.
    pub vad: VadConfig,
}

impl Default for TurnOptions {
    fn default() -> Self {
        let turn = TurnConfig::default();
        Self {
            min_speech: turn.min_speech,
            min_silence: turn.min_silence,
            complete_silence: Duration::from_millis(450),
            unfinished_silence: Duration::from_millis(1_500),
            likely_end: Some(Duration::from_millis(300)),
            preemptive: true,
            min_interrupt_speech: turn.min_interrupt_speech,
            min_interruption_words: 1,
            false_interruption_timeout: turn.false_interruption_timeout,
            vad: VadConfig::default(),
        }
    }
}

impl TurnOptions {
    /// Sets the conversation's turn-taking from these options.
    pub(crate) fn apply(&self, config: &mut CoreConfig) {
        config.turn = TurnConfig {
            min_speech: self.min_speech,
            min_silence: self.min_silence,
            min_interrupt_speech: self.min_interrupt_speech,
            false_interruption_timeout: self.false_interruption_timeout,
            likely_end: self.likely_end,
            ..TurnConfig::default()
        };
        config.endpointing = self.likely_end.map(|_| Endpointing {
            complete: self.complete_silence,
            default: self.min_silence,
            unfinished: self.unfinished_silence,
        });
        config.preemptive = self.preemptive && self.likely_end.is_some();
        config.min_interruption_words = self.min_interruption_words;
    }
}

/// What is missing to build an agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// One of the three providers was not given.
    #[error("the agent needs a {0} provider")]
    Missing(&'static str),
    /// Two tools share a name, or a tool takes a built-in function's name.
    #[error("two functions are named `{0}`")]
    DuplicateTool(String),
}

/// A voice agent, ready to run a call ([`Agent::run`]).
pub struct Agent {
    pub(crate) stt: Arc<dyn SpeechToText>,
    pub(crate) language: String,
    pub(crate) llm: Arc<dyn ChatModel>,
    pub(crate) tts: Arc<dyn TextToSpeech>,
    pub(crate) voice: SpeechRequest,
    pub(crate) tools: Vec<Arc<dyn Tool>>,
    pub(crate) hooks: Arc<dyn AgentHooks>,
    pub(crate) agent_id: String,
    pub(crate) config: CoreConfig,
    pub(crate) vad: VadConfig,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("agent_id", &self.agent_id)
            .field("language", &self.language)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Starts building an agent.
    pub fn builder() -> AgentBuilder {
        AgentBuilder::default()
    }
}

/// Builds an [`Agent`]; see the [module documentation](super) for an example.
pub struct AgentBuilder {
    stt: Option<(Arc<dyn SpeechToText>, String)>,
    llm: Option<Arc<dyn ChatModel>>,
    chat: ChatSettings,
    tts: Option<Arc<dyn TextToSpeech>>,
    voice: SpeechRequest,
    instructions: String,
    greeting: String,
    apology: String,
    filler: String,
    filler_after: Duration,
    lead_fields: Vec<LeadField>,
    tools: Vec<Arc<dyn Tool>>,
    hooks: Arc<dyn AgentHooks>,
    turn: TurnOptions,
    limits: Limits,
    max_tool_rounds: u32,
    history_budget: usize,
    agent_id: String,
}

impl Default for AgentBuilder {
    fn default() -> Self {
        Self {
            stt: None,
            llm: None,
            chat: ChatSettings { model: String::new(), temperature: 0.7, max_tokens: 300 },
            tts: None,
            voice: SpeechRequest { text: String::new(), language: "en-IN".into(), voice: String::new() },
            instructions: "You are a helpful voice assistant. Answer briefly, in plain spoken sentences.".into(),
            greeting: String::new(),
            apology: "Sorry, I'm having a little trouble on my side. Could you say that once more?".into(),
            filler: "One moment, let me check that.".into(),
            filler_after: Duration::from_millis(700),
            lead_fields: Vec::new(),
            tools: Vec::new(),
            hooks: Arc::new(NoHooks),
            turn: TurnOptions::default(),
            limits: Limits::default(),
            max_tool_rounds: 4,
            history_budget: 6_000,
            agent_id: "custom".into(),
        }
    }
}

impl AgentBuilder {
    /// The speech-to-text provider and the language it listens for (a BCP-47 code such as
    /// `hi-IN`, or what the provider accepts).
    pub fn speech_to_text(mut self, stt: Arc<dyn SpeechToText>, language: impl Into<String>) -> Self {
        self.stt = Some((stt, language.into()));
        self
    }

    /// The chat model and the model name requests ask for.
    pub fn chat_model(mut self, llm: Arc<dyn ChatModel>, model: impl Into<String>) -> Self {
        self.llm = Some(llm);
        self.chat.model = model.into();
        self
    }

    /// Sampling temperature and the longest answer, in tokens. Defaults 0.7 and 300.
    pub fn chat_options(mut self, temperature: f32, max_tokens: u32) -> Self {
        self.chat.temperature = temperature;
        self.chat.max_tokens = max_tokens;
        self
    }

    /// The text-to-speech provider, with the language and voice it speaks in.
    pub fn text_to_speech(
        mut self,
        tts: Arc<dyn TextToSpeech>,
        language: impl Into<String>,
        voice: impl Into<String>,
    ) -> Self {
        self.tts = Some(tts);
        self.voice.language = language.into();
        self.voice.voice = voice.into();
        self
    }

    /// The language and voice at once (model, pace and the like are the provider's own
    /// options).
    pub fn voice(mut self, voice: SpeechRequest) -> Self {
        self.voice = voice;
        self
    }

    /// The system prompt.
    pub fn instructions(mut self, instructions: impl Into<String>) -> Self {
        self.instructions = instructions.into();
        self
    }

    /// Said when the caller's microphone arrives; empty (the default) waits for the caller.
    pub fn greeting(mut self, greeting: impl Into<String>) -> Self {
        self.greeting = greeting.into();
        self
    }

    /// Said when a provider fails; it is synthesised early so it plays even when synthesis is
    /// what failed.
    pub fn apology(mut self, apology: impl Into<String>) -> Self {
        self.apology = apology.into();
        self
    }

    /// Said once while a slow tool runs (tools may name their own), after `after`. Defaults
    /// "One moment, let me check that." and 700 ms.
    pub fn filler(mut self, filler: impl Into<String>, after: Duration) -> Self {
        self.filler = filler.into();
        self.filler_after = after;
        self
    }

    /// What the agent should learn from the caller: offered to the model as `capture_lead`.
    pub fn lead_fields(mut self, fields: Vec<LeadField>) -> Self {
        self.lead_fields = fields;
        self
    }

    /// A function the model may call.
    pub fn tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.tools.push(tool);
        self
    }

    /// Your callbacks.
    pub fn hooks(mut self, hooks: Arc<dyn AgentHooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Turn-taking.
    pub fn turn(mut self, turn: TurnOptions) -> Self {
        self.turn = turn;
        self
    }

    /// When calls end on their own.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Model rounds one answer may take calling functions (default 4), and the history's budget
    /// in estimated tokens (default 6,000; the oldest turns go first, 0 keeps everything).
    pub fn budgets(mut self, max_tool_rounds: u32, history_tokens: usize) -> Self {
        self.max_tool_rounds = max_tool_rounds.max(1);
        self.history_budget = history_tokens;
        self
    }

    /// The name tools and records know the agent by. Default `custom`.
    pub fn agent_id(mut self, id: impl Into<String>) -> Self {
        self.agent_id = id.into();
        self
    }

    /// The agent, or what is missing.
    pub fn build(self) -> Result<Agent, BuildError> {
        let (stt, language) = self.stt.ok_or(BuildError::Missing("speech-to-text"))?;
        let llm = self.llm.ok_or(BuildError::Missing("chat model"))?;
        let tts = self.tts.ok_or(BuildError::Missing("text-to-speech"))?;
        let mut names =
            vec![crate::pipeline::tools::CAPTURE_LEAD.to_owned(), crate::pipeline::tools::END_CALL.to_owned()];
        let mut tools = Vec::with_capacity(self.tools.len());
        for tool in &self.tools {
            let spec = tool.spec();
            if names.contains(&spec.name) {
                return Err(BuildError::DuplicateTool(spec.name));
            }
            names.push(spec.name.clone());
            tools.push(ExternalTool { spec, side_effects: tool.side_effects(), filler: tool.filler() });
        }
        let turn = self.turn;
        let mut config = CoreConfig {
            turn: TurnConfig::default(),
            endpointing: None,
            preemptive: false,
            min_interruption_words: 0,
            chat: self.chat,
            system_prompt: self.instructions,
            greeting: self.greeting,
            apology: self.apology,
            lead_fields: self.lead_fields,
            tools,
            filler: self.filler,
            filler_after: self.filler_after,
            max_tool_rounds: self.max_tool_rounds,
            history_budget: self.history_budget,
            limits: self.limits,
        };
        turn.apply(&mut config);
        Ok(Agent {
            stt,
            language,
            llm,
            tts,
            voice: self.voice,
            tools: self.tools,
            hooks: self.hooks,
            agent_id: self.agent_id,
            config,
            vad: turn.vad,
        })
    }
}
