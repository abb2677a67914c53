//! The conversation as the model sees it, kept within a token budget.
//!
//! A long call would otherwise grow every request until the model refuses it (and cost more on
//! each turn). When the estimate passes the budget, the oldest messages go, whole exchanges at a
//! time so a function result never loses the call it answers. The system prompt always stays,
//! and so does what the caller told about themselves: once earlier messages are gone, the
//! captured lead is restated after the prompt.

use std::collections::BTreeMap;

use crate::providers::llm::{ChatMessage, Role};

/// Per-message overhead of the chat format, in tokens (role markers and separators).
const MESSAGE_OVERHEAD: usize = 4;

#[derive(Debug, Clone)]
pub(crate) struct History {
    system: String,
    messages: Vec<ChatMessage>,
    budget: usize,
    /// Messages left out so far.
    dropped: usize,
}

impl History {
    /// `budget` is in estimated tokens for everything but the system prompt; 0 keeps everything.
    pub fn new(system: String, budget: usize) -> Self {
        Self { system, messages: Vec::new(), budget, dropped: 0 }
    }

    pub fn push(&mut self, message: ChatMessage) {
        self.messages.push(message);
        self.trim();
    }

    pub fn extend(&mut self, messages: impl IntoIterator<Item = ChatMessage>) {
        self.messages.extend(messages);
        self.trim();
    }

    /// Adds what the agent said; words said in parts of one answer (around function calls)
    /// join the answer's message.
    pub fn said(&mut self, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        match self.messages.last_mut() {
            Some(last) if last.role == Role::Assistant && last.tool_calls.is_empty() => {
                last.content.push(' ');
                last.content.push_str(text);
            }
            _ => self.messages.push(ChatMessage::assistant(text)),
        }
        self.trim();
    }

    /// The messages for a request: the system prompt (with the lead restated once earlier
    /// messages are gone), then the conversation.
    pub fn messages(&self, lead: &BTreeMap<String, String>) -> Vec<ChatMessage> {
        let mut system = self.system.clone();
        if self.dropped > 0 {
            system.push_str("\n\n(Earlier parts of this call were left out to keep it short.)");
            if !lead.is_empty() {
                let details: Vec<String> = lead.iter().map(|(field, value)| format!("{field}: {value}")).collect();
                system.push_str(&format!(" Details the caller has already given: {}.", details.join("; ")));
            }
        }
        let mut messages = Vec::with_capacity(self.messages.len() + 1);
        messages.push(ChatMessage::system(system));
        messages.extend(self.messages.iter().cloned());
        messages
    }

    fn trim(&mut self) {
        if self.budget == 0 {
            return;
        }
        let mut total: usize = self.messages.iter().map(estimate).sum();
        let mut cut = 0;
        // The newest message always stays, however long.
        while total > self.budget && cut + 1 < self.messages.len() {
            total -= estimate(&self.messages[cut]);
            cut += 1;
            // A result without its call, or a call whose results are gone, would be refused.
            while cut + 1 < self.messages.len() && self.messages[cut].role == Role::Tool {
                total -= estimate(&self.messages[cut]);
                cut += 1;
            }
        }
        if cut > 0 {
            self.messages.drain(..cut);
            self.dropped += cut;
        }
    }
}

/// A conservative token estimate: about four characters per token in Latin script, two in
/// Devanagari and other scripts, which tokenisers split finer.
fn estimate(message: &ChatMessage) -> usize {
    let text = |s: &str| {
        let (ascii, other) = s.chars().fold((0, 0), |(a, o), c| if c.is_ascii() { (a + 1, o) } else { (a, o + 1) });
        ascii / 4 + other / 2
    };
    let calls: usize = message.tool_calls.iter().map(|call| text(&call.name) + text(&call.arguments)).sum();
    MESSAGE_OVERHEAD + text(&message.content) + calls
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::llm::ToolCall;

    fn roles(history: &History) -> Vec<Role> {
        history.messages(&BTreeMap::new()).iter().map(|m| m.role).collect()
    }

    #[test]
    fn a_short_call_keeps_everything() {
        let mut history = History::new("You are Aria.".into(), 1_000);
        history.push(ChatMessage::user("Hello"));
        history.said("Hi there.");
        history.said("How can I help?");
        let messages = history.messages(&BTreeMap::new());
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[0].content, "You are Aria.");
        assert_eq!(messages[2].content, "Hi there. How can I help?");
    }

    #[test]
    fn a_long_call_drops_the_oldest_turns_and_keeps_the_prompt_and_the_lead() {
        let mut history = History::new("You are Aria.".into(), 200);
        for turn in 0..100 {
            history.push(ChatMessage::user(format!("Question number {turn} with some words to fill it up.")));
            history.said(&format!("Answer number {turn}, which also has a few words in it."));
        }
        let lead = BTreeMap::from([("name".to_owned(), "Asha".to_owned())]);
        let messages = history.messages(&lead);
        assert!(messages[0].content.starts_with("You are Aria."));
        assert!(messages[0].content.contains("name: Asha"), "{}", messages[0].content);
        assert!(messages.len() < 30, "{} messages kept", messages.len());
        assert!(messages.last().is_some_and(|m| m.content.starts_with("Answer number 99")));
        let kept: usize = messages[1..].iter().map(estimate).sum();
        assert!(kept <= 200, "{kept} tokens kept");
    }

    #[test]
    fn function_results_never_lose_their_call() {
        let mut history = History::new("S".into(), 60);
        history.push(ChatMessage::user("My name is Asha and my number is 98765 43210."));
        let call = ToolCall { id: "c1".into(), name: "capture_lead".into(), arguments: "{\"name\":\"Asha\"}".into() };
        history.push(ChatMessage { tool_calls: vec![call], ..ChatMessage::assistant("") });
        history
            .push(ChatMessage::tool("c1", "{\"ok\":true,\"saved\":[\"name\"],\"some\":\"padding to make it long\"}"));
        history.said("Thank you Asha, I have noted your details and someone will call you back soon.");
        history.push(ChatMessage::user("Great, thanks a lot for your help today, goodbye then."));
        let kept = roles(&history);
        assert_ne!(kept.get(1), Some(&Role::Tool), "{kept:?}");
    }

    #[test]
    fn the_newest_message_stays_even_when_it_alone_is_over_budget() {
        let mut history = History::new("S".into(), 10);
        history.push(ChatMessage::user("short"));
        history.push(ChatMessage::user("a".repeat(1_000)));
        assert_eq!(roles(&history), [Role::System, Role::User]);
        assert_eq!(history.messages(&BTreeMap::new())[1].content.len(), 1_000);
    }

    #[test]
    fn devanagari_counts_more_tokens_per_character() {
        let latin = estimate(&ChatMessage::user("a".repeat(100)));
        let hindi = estimate(&ChatMessage::user("क".repeat(100)));
        assert!(hindi > latin);
    }
}
