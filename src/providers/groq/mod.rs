//! Groq (`https://api.groq.com/openai/v1`): chat models over OpenAI's chat-completions
//! protocol (providers.md §2).

use super::llm::compatible::CompatibleChat;
use super::registry::{Account, ChatProvider, Vendor};

pub(crate) const NAME: &str = "groq";

pub(crate) struct Groq;

/// Groq's production models as its documentation listed them on the date of the prices
/// ([`super::usage::DEFAULT_PRICES_DATE`]); `openai/gpt-oss-120b` is the default, thinking
/// briefly (`reasoning_effort = "low"`) so the caller does not wait on it.
static CHAT: CompatibleChat = CompatibleChat {
    name: NAME,
    default_model: "openai/gpt-oss-120b",
    retired: &[
        ("llama-3.3-70b-versatile", "openai/gpt-oss-120b"),
        ("llama-3.1-70b-versatile", "openai/gpt-oss-120b"),
        ("llama3-70b-8192", "openai/gpt-oss-120b"),
        ("llama3-8b-8192", "llama-3.1-8b-instant"),
        ("mixtral-8x7b-32768", "openai/gpt-oss-20b"),
        ("gemma2-9b-it", "llama-3.1-8b-instant"),
    ],
    efforts: &["low", "medium", "high"],
    default_effort: |model| model.starts_with("openai/gpt-oss").then_some("low"),
    prices: &[
        ("openai/gpt-oss-120b", 0.15, 0.60),
        ("openai/gpt-oss-20b", 0.075, 0.30),
        ("llama-3.1-8b-instant", 0.05, 0.08),
        ("meta-llama/llama-4-scout-17b-16e-instruct", 0.11, 0.34),
        ("qwen/qwen3-32b", 0.29, 0.59),
        ("moonshotai/kimi-k2-instruct-0905", 1.00, 3.00),
    ],
};

impl Vendor for Groq {
    fn name(&self) -> &'static str {
        NAME
    }

    fn account(&self) -> Account {
        Account {
            key_setting: "GROQ_API_KEY",
            key_doc: "Groq API key; required when a profile that can be dispatched uses groq (the default LLM_PROVIDER).",
            base_url_setting: "GROQ_BASE_URL",
            default_base_url: "https://api.groq.com/openai/v1",
            base_url_doc: "Groq OpenAI-compatible endpoint.",
        }
    }

    fn chat(&self) -> Option<&dyn ChatProvider> {
        Some(&CHAT)
    }
}
