//! After the call: what the profile wants to know about it (a summary, the caller's sentiment,
//! an outcome from its list, fields of its own), asked of the chat model as structured output.
//!
//! The model is offered one function, `record_analysis`, whose parameters are exactly what the
//! profile asks for, and told to call it; function calling is the structured output every
//! OpenAI-compatible provider (Groq included) supports. Its arguments are checked against that
//! schema; an answer that is not valid JSON or does not fit is asked for once more, with what
//! was wrong, and after that the record goes without analysis and says why.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use super::record::{Line, Speaker};
use crate::agent::schema;
use crate::profiles::{AnalysisOptions, SENTIMENTS};
use crate::providers::llm::{ChatDelta, ChatMessage, ChatModel, ChatRequest, ToolSpec};

pub const FUNCTION: &str = "record_analysis";
/// Two asks at most: one more when the first answer could not be used.
const ATTEMPTS: usize = 2;
/// Enough for a summary and a dozen fields.
const MAX_TOKENS: u32 = 1_000;

/// Analyses finished calls for one profile.
pub struct Analyst {
    llm: Arc<dyn ChatModel>,
    model: String,
    options: AnalysisOptions,
    agent_name: String,
}

impl Analyst {
    /// `model` is the call's chat model; the profile may name a cheaper one for analysis.
    pub fn new(llm: Arc<dyn ChatModel>, model: &str, options: AnalysisOptions, agent_name: &str) -> Self {
        let model = options.model.clone().unwrap_or_else(|| model.to_owned());
        Self { llm, model, options, agent_name: agent_name.to_owned() }
    }

    /// The longest the record waits for the analysis.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.options.timeout_secs))
    }

    /// The analysis as the record holds it, or why there is none; returns within
    /// [`Analyst::timeout`].
    pub async fn analyse(&self, transcript: &[Line], lead: &BTreeMap<String, String>) -> Result<Value, String> {
        if !transcript.iter().any(|line| line.speaker == Speaker::Caller) {
            return Err("the caller said nothing, so there was nothing to analyse".to_owned());
        }
        let asking = self.ask(transcript, lead);
        match tokio::time::timeout(self.timeout(), asking).await {
            Ok(result) => result,
            Err(_) => Err(format!("the model gave no analysis within {} s", self.options.timeout_secs)),
        }
    }

    async fn ask(&self, transcript: &[Line], lead: &BTreeMap<String, String>) -> Result<Value, String> {
        let schema = parameters(&self.options);
        let mut messages = prompt(&self.options, &self.agent_name, transcript, lead);
        let mut problem = String::new();
        for _ in 0..ATTEMPTS {
            let request = ChatRequest {
                model: self.model.clone(),
                messages: messages.clone(),
                temperature: 0.0,
                max_tokens: MAX_TOKENS,
                tools: vec![ToolSpec {
                    name: FUNCTION.into(),
                    description: "Records the analysis of the call. Call it exactly once.".into(),
                    parameters: schema.clone(),
                }],
            };
            let answer = self.answer(request).await?;
            match check(&schema, &self.options, &answer) {
                Ok(analysis) => return Ok(analysis),
                Err(why) => {
                    messages.push(ChatMessage::user(format!(
                        "Your answer could not be used: {why}. Call {FUNCTION} again, with arguments that fit its \
                         parameters exactly."
                    )));
                    problem = why;
                }
            }
        }
        Err(problem)
    }

    /// The function's arguments, or the text the model wrote instead.
    async fn answer(&self, request: ChatRequest) -> Result<String, String> {
        let failed = |e: crate::providers::ProviderError| format!("the model failed: {e}");
        let mut stream = self.llm.stream(request).await.map_err(failed)?;
        let mut text = String::new();
        while let Some(delta) = stream.next().await {
            match delta.map_err(failed)? {
                ChatDelta::ToolCall(call) if call.name == FUNCTION => return Ok(call.arguments),
                ChatDelta::Text(piece) => text.push_str(&piece),
                ChatDelta::ToolCall(_) | ChatDelta::Done { .. } => {}
            }
        }
        Ok(text)
    }
}

/// The parameters of `record_analysis`: what the profile asks for, nothing else.
fn parameters(options: &AnalysisOptions) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    if options.summary {
        properties.insert(
            "summary".into(),
            json!({"type": "string", "description": "What the call was about and how it ended, in two to four sentences."}),
        );
        required.push("summary");
    }
    if options.sentiment {
        properties.insert(
            "sentiment".into(),
            json!({"type": "string", "enum": SENTIMENTS, "description": "The caller's overall sentiment."}),
        );
        required.push("sentiment");
    }
    if !options.outcomes.is_empty() {
        properties.insert(
            "outcome".into(),
            json!({"type": "string", "enum": options.outcomes, "description": "How the call ended: the one value that fits best."}),
        );
        required.push("outcome");
    }
    for (name, field) in &options.fields {
        properties.insert(name.clone(), field.clone());
    }
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

fn prompt(
    options: &AnalysisOptions,
    agent_name: &str,
    transcript: &[Line],
    lead: &BTreeMap<String, String>,
) -> Vec<ChatMessage> {
    let mut system = format!(
        "You analyse a phone call that has ended, between a voice agent called {agent_name} and a caller. Read the \
         transcript and call the function {FUNCTION} exactly once with your analysis. Base every value only on what \
         was said; leave out a field of your own when the call does not tell it. Write the summary in English unless \
         told otherwise."
    );
    if !options.instructions.trim().is_empty() {
        system.push_str("\n\n");
        system.push_str(options.instructions.trim());
    }
    let mut conversation = String::from("Transcript:\n");
    for line in transcript {
        let speaker = match line.speaker {
            Speaker::Caller => "Caller",
            Speaker::Agent => "Agent",
        };
        let cut = if line.interrupted { " [cut off by the caller]" } else { "" };
        conversation.push_str(&format!("{speaker}: {}{cut}\n", line.text));
    }
    if !lead.is_empty() {
        conversation.push_str(&format!("\nDetails the agent saved: {}\n", json!(lead)));
    }
    vec![ChatMessage::system(system), ChatMessage::user(conversation)]
}

/// The analysis from the model's answer, every asked-for key present (fields of the profile's
/// own that the call did not tell are `null`), or what is wrong with it.
fn check(schema: &Value, options: &AnalysisOptions, answer: &str) -> Result<Value, String> {
    let text = answer.trim();
    let text = text
        .strip_prefix("```json")
        .or_else(|| text.strip_prefix("```"))
        .and_then(|inner| inner.strip_suffix("```"))
        .unwrap_or(text)
        .trim();
    if text.is_empty() {
        return Err(format!("the model did not call {FUNCTION}"));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the model's analysis is not valid JSON ({e})"))?;
    let problems = schema::validate(schema, &value);
    if !problems.is_empty() {
        return Err(format!("the model's analysis does not fit what the profile asks: {}", problems.join("; ")));
    }
    let Value::Object(mut analysis) = value else { return Err("the model's analysis is not an object".to_owned()) };
    for name in options.fields.keys() {
        analysis.entry(name.clone()).or_insert(Value::Null);
    }
    Ok(Value::Object(analysis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> AnalysisOptions {
        toml::from_str(
            r#"
            summary = true
            sentiment = true
            outcomes = ["booked", "callback", "not_interested"]
            [fields.follow_up_date]
            type = "string"
            description = "The day the caller wants a call back, YYYY-MM-DD."
            [fields.patients]
            type = "integer"
            minimum = 1
            "#,
        )
        .expect("parses")
    }

    #[test]
    fn the_function_asks_for_exactly_what_the_profile_wants() {
        let schema = parameters(&options());
        assert_eq!(schema["required"], json!(["summary", "sentiment", "outcome"]));
        assert_eq!(schema["properties"]["outcome"]["enum"], json!(["booked", "callback", "not_interested"]));
        assert_eq!(schema["properties"]["patients"]["minimum"], 1);
        let only_outcome = AnalysisOptions { summary: false, sentiment: false, fields: BTreeMap::new(), ..options() };
        assert_eq!(parameters(&only_outcome)["required"], json!(["outcome"]));
        let mut problems = Vec::new();
        schema::check(&schema, "analysis", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn answers_are_checked_and_what_is_wrong_is_said() {
        let options = options();
        let schema = parameters(&options);
        let good = r#"{"summary":"Asha booked a visit.","sentiment":"positive","outcome":"booked","patients":1}"#;
        let analysis = check(&schema, &options, good).expect("fits");
        assert_eq!(analysis["follow_up_date"], Value::Null, "an untold field of the profile's own is null");
        assert_eq!(analysis["outcome"], "booked");
        let fenced = format!("```json\n{good}\n```");
        assert!(check(&schema, &options, &fenced).is_ok(), "a fenced JSON answer is read");

        let broken = check(&schema, &options, r#"{"summary": "Asha booked"#).expect_err("broken JSON");
        assert!(broken.contains("not valid JSON"), "{broken}");
        let wrong = check(&schema, &options, r#"{"summary":"x","sentiment":"angry","outcome":"sold"}"#)
            .expect_err("not in the lists");
        assert!(wrong.contains("`sentiment` is \"angry\"") && wrong.contains("`outcome` is \"sold\""), "{wrong}");
        assert!(check(&schema, &options, "").expect_err("nothing").contains("did not call record_analysis"));
    }

    #[test]
    fn the_prompt_holds_the_transcript_with_cut_off_answers_marked() {
        let transcript = [
            Line::new(Speaker::Agent, "Hello, Sharma clinic.", 0, false),
            Line::new(Speaker::Caller, "I need a slot tomorrow.", 1_000, false),
            Line::new(Speaker::Agent, "We have", 2_000, true),
        ];
        let mut options = options();
        options.instructions = "Write the summary in Hindi.".into();
        let lead = BTreeMap::from([("phone".to_owned(), "9876543210".to_owned())]);
        let messages = prompt(&options, "Sunita", &transcript, &lead);
        assert!(messages[0].content.contains("Sunita") && messages[0].content.ends_with("Write the summary in Hindi."));
        let user = &messages[1].content;
        assert!(user.contains("Caller: I need a slot tomorrow.\nAgent: We have [cut off by the caller]"), "{user}");
        assert!(user.contains("\"phone\":\"9876543210\""), "{user}");
    }
}
