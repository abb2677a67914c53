//! Turning the `data` of streamed chat-completion chunks (providers.md §2) into [`ChatDelta`]s.
//!
//! Text passes straight through. Tool calls arrive as fragments keyed by `index`: the first
//! carries the call's id and name, later ones append to its arguments; calls come one after the
//! other, so a call is complete when a fragment of another index arrives or the choice
//! finishes. Usage comes in an extra chunk without choices (`include_usage`), or only in Groq's
//! `x_groq.usage`; either is taken.

use serde_json::Value;

use super::{ChatDelta, ToolCall, Usage};
use crate::providers::ProviderError;

pub(super) struct Assembler {
    provider: &'static str,
    /// The call being received, with its index.
    call: Option<(u64, ToolCall)>,
    /// Indexes of calls already complete, to notice a fragment arriving too late.
    finished_calls: Vec<u64>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    done: bool,
}

impl Assembler {
    pub(super) fn new(provider: &'static str) -> Self {
        Self { provider, call: None, finished_calls: Vec::new(), finish_reason: None, usage: None, done: false }
    }

    /// Whether `[DONE]` was received; anything after it is ignored.
    pub(super) fn is_done(&self) -> bool {
        self.done
    }

    /// The deltas one event's data makes.
    pub(super) fn feed(&mut self, data: &str) -> Result<Vec<ChatDelta>, ProviderError> {
        if self.done {
            return Ok(Vec::new());
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            return self.finish();
        }
        let chunk: Value = serde_json::from_str(data)
            .map_err(|e| self.protocol(format!("a chunk of {} bytes is not JSON ({e})", data.len())))?;
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            let message = error["message"].as_str().unwrap_or("no details given");
            let kind = error["type"].as_str().or_else(|| error["code"].as_str()).unwrap_or("error");
            return Err(self.protocol(format!("the answer broke off with an error ({kind}): {message}")));
        }
        if let Some(usage) = usage(&chunk["usage"]).or_else(|| usage(&chunk["x_groq"]["usage"])) {
            self.usage = Some(usage);
        }
        let mut deltas = Vec::new();
        for choice in
            chunk["choices"].as_array().into_iter().flatten().filter(|c| c["index"].as_u64().unwrap_or(0) == 0)
        {
            let delta = &choice["delta"];
            if let Some(text) = delta["content"].as_str().filter(|text| !text.is_empty()) {
                deltas.push(ChatDelta::Text(text.to_owned()));
            }
            for fragment in delta["tool_calls"].as_array().into_iter().flatten() {
                deltas.extend(self.fragment(fragment)?);
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.finish_reason = Some(reason.to_owned());
                deltas.extend(self.complete_call()?);
            }
        }
        Ok(deltas)
    }

    /// What is owed when the body ends without `[DONE]`: the end of an answer that had finished
    /// (the usage chunk may be lost), or an error for one cut short.
    pub(super) fn end(&mut self) -> Result<Vec<ChatDelta>, ProviderError> {
        if self.done {
            return Ok(Vec::new());
        }
        self.done = true;
        if self.finish_reason.is_none() {
            return Err(self.protocol("the connection closed in the middle of the answer".into()));
        }
        self.finish()
    }

    /// The last call, if still open, and the end of the answer.
    fn finish(&mut self) -> Result<Vec<ChatDelta>, ProviderError> {
        let mut deltas: Vec<ChatDelta> = self.complete_call()?.into_iter().collect();
        let finish_reason = self
            .finish_reason
            .take()
            .ok_or_else(|| self.protocol("the answer ended without a finish reason".into()))?;
        deltas.push(ChatDelta::Done { finish_reason, usage: self.usage.take() });
        Ok(deltas)
    }

    fn fragment(&mut self, fragment: &Value) -> Result<Option<ChatDelta>, ProviderError> {
        let id = fragment["id"].as_str().filter(|id| !id.is_empty());
        let index = match (fragment["index"].as_u64(), &self.call) {
            (Some(index), _) => index,
            // Servers that omit the index mark a new call by a new id.
            (None, Some((current, call))) if id.is_some_and(|id| id != call.id) => current + 1,
            (None, Some((current, _))) => *current,
            (None, None) => 0,
        };
        if self.finished_calls.contains(&index) {
            return Err(self.protocol(format!("a fragment of tool call {index} came after the call had ended")));
        }
        let completed = match &self.call {
            Some((current, _)) if *current != index => self.complete_call()?,
            _ => None,
        };
        let (_, call) = self.call.get_or_insert_with(|| {
            (index, ToolCall { id: String::new(), name: String::new(), arguments: String::new() })
        });
        let function = &fragment["function"];
        if let Some(id) = id.filter(|_| call.id.is_empty()) {
            call.id = id.to_owned();
        }
        if let Some(name) = function["name"].as_str().filter(|_| call.name.is_empty()) {
            call.name = name.to_owned();
        }
        call.arguments.push_str(function["arguments"].as_str().unwrap_or_default());
        Ok(completed)
    }

    /// The call being received, now complete; it must have said what it calls.
    fn complete_call(&mut self) -> Result<Option<ChatDelta>, ProviderError> {
        let Some((index, call)) = self.call.take() else { return Ok(None) };
        self.finished_calls.push(index);
        if call.id.is_empty() || call.name.is_empty() {
            return Err(self.protocol(format!("tool call {index} came without an id or a name")));
        }
        Ok(Some(ChatDelta::ToolCall(call)))
    }

    fn protocol(&self, message: String) -> ProviderError {
        ProviderError::Protocol { provider: self.provider, message }
    }
}

fn usage(value: &Value) -> Option<Usage> {
    let count = |key: &str| value[key].as_u64().and_then(|n| u32::try_from(n).ok());
    Some(Usage {
        prompt_tokens: count("prompt_tokens")?,
        completion_tokens: count("completion_tokens")?,
        total_tokens: count("total_tokens")?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn feed_all(events: &[Value]) -> Result<Vec<ChatDelta>, ProviderError> {
        let mut assembler = Assembler::new("openai");
        let mut deltas = Vec::new();
        for event in events {
            deltas.extend(assembler.feed(&event.to_string())?);
        }
        deltas.extend(assembler.feed("[DONE]")?);
        Ok(deltas)
    }

    fn chunk(delta: Value, finish: Option<&str>) -> Value {
        json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": null})
    }

    #[test]
    fn text_and_usage_chunks() {
        let deltas = feed_all(&[
            chunk(json!({"role": "assistant", "content": ""}), None),
            chunk(json!({"content": "Hello"}), None),
            chunk(json!({"content": " there"}), None),
            chunk(json!({}), Some("stop")),
            json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}),
        ])
        .expect("valid");
        let usage = Some(Usage { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 });
        assert_eq!(
            deltas,
            vec![
                ChatDelta::Text("Hello".into()),
                ChatDelta::Text(" there".into()),
                ChatDelta::Done { finish_reason: "stop".into(), usage }
            ]
        );
    }

    #[test]
    fn groq_usage_is_read_from_x_groq() {
        let mut last = chunk(json!({}), Some("stop"));
        last["x_groq"] = json!({"id": "req_1", "usage": {"queue_time": 0.01, "prompt_tokens": 5, "prompt_time": 0.002,
            "completion_tokens": 1, "completion_time": 0.001, "total_tokens": 6, "total_time": 0.003}});
        let deltas = feed_all(&[chunk(json!({"content": "Hi"}), None), last]).expect("valid");
        let usage = Some(Usage { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 });
        assert_eq!(deltas.last(), Some(&ChatDelta::Done { finish_reason: "stop".into(), usage }));
    }

    #[test]
    fn parallel_tool_calls_are_assembled_in_order() {
        let call = |index: u64, id: &str, name: &str| json!({"tool_calls": [{"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]});
        let args = |index: u64, text: &str| json!({"tool_calls": [{"index": index, "function": {"arguments": text}}]});
        let deltas = feed_all(&[
            chunk(call(0, "call_a", "get_weather"), None),
            chunk(args(0, "{\"city\":"), None),
            chunk(args(0, "\"Pune\"}"), None),
            chunk(call(1, "call_b", "book"), None),
            chunk(args(1, "{}"), None),
            chunk(json!({}), Some("tool_calls")),
        ])
        .expect("valid");
        assert_eq!(
            deltas,
            vec![
                ChatDelta::ToolCall(ToolCall {
                    id: "call_a".into(),
                    name: "get_weather".into(),
                    arguments: "{\"city\":\"Pune\"}".into()
                }),
                ChatDelta::ToolCall(ToolCall { id: "call_b".into(), name: "book".into(), arguments: "{}".into() }),
                ChatDelta::Done { finish_reason: "tool_calls".into(), usage: None },
            ]
        );
    }

    #[test]
    fn malformed_answers_are_protocol_errors() {
        let late = feed_all(&[
            chunk(json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}}]}), None),
            chunk(json!({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": ""}}]}), None),
            chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}), None),
        ]);
        assert!(matches!(late, Err(ProviderError::Protocol { .. })));
        let nameless = feed_all(&[chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
            Some("tool_calls"),
        )]);
        assert!(matches!(nameless, Err(ProviderError::Protocol { .. })));
        assert!(matches!(feed_all(&[chunk(json!({"content": "cut"}), None)]), Err(ProviderError::Protocol { .. })));
        let mut assembler = Assembler::new("groq");
        assert!(matches!(assembler.feed("{not json"), Err(ProviderError::Protocol { .. })));
        let error = json!({"error": {"message": "The server had an error", "type": "server_error"}}).to_string();
        let err = Assembler::new("openai").feed(&error).expect_err("an error chunk");
        assert!(err.to_string().contains("The server had an error"), "{err}");
    }

    #[test]
    fn a_body_ending_after_the_finish_still_completes() {
        let mut assembler = Assembler::new("openai");
        assembler.feed(&chunk(json!({"content": "ok"}), Some("stop")).to_string()).expect("valid");
        assert_eq!(
            assembler.end().expect("finished"),
            vec![ChatDelta::Done { finish_reason: "stop".into(), usage: None }]
        );
        let mut cut = Assembler::new("openai");
        cut.feed(&chunk(json!({"content": "o"}), None).to_string()).expect("valid");
        assert!(cut.end().is_err());
    }
}
