//! A chat provider speaking OpenAI's chat-completions protocol (OpenAI itself, Groq): its
//! options, its documented models and prices, and what it builds.

use std::sync::Arc;

use super::{ChatModel, LlmConfig, openai_compatible};
use crate::providers::options::Reader;
use crate::providers::registry::{Access, ChatProvider, Options};
use crate::providers::usage::Price;

pub(crate) struct CompatibleChat {
    pub name: &'static str,
    /// A model the provider documents as current, for profiles naming none.
    pub default_model: &'static str,
    /// Models the provider has retired, with what to use instead.
    pub retired: &'static [(&'static str, &'static str)],
    /// `reasoning_effort` values it takes.
    pub efforts: &'static [&'static str],
    /// The effort asked of a model when the profile names none: reasoning models think before
    /// the first word, and a caller waits for it.
    pub default_effort: fn(&str) -> Option<&'static str>,
    /// List prices per million prompt and completion tokens, in USD.
    pub prices: &'static [(&'static str, f64, f64)],
}

struct ChatOptions {
    model: String,
    reasoning_effort: Option<String>,
}

impl CompatibleChat {
    fn read<'a>(&self, options: &'a Options, default_model: &str) -> (ChatOptions, Reader<'a>) {
        let mut reader = Reader::new(self.name, options);
        let model = reader.string("model", default_model);
        if model.is_empty() {
            reader.problem("model", "must not be empty");
        }
        if let Some((_, instead)) = self.retired.iter().find(|(retired, _)| *retired == model) {
            reader.problem("model", format!("`{model}` is retired by {}; use {instead}", self.name));
        }
        let reasoning_effort = match reader.optional("reasoning_effort") {
            Some(effort) if !self.efforts.contains(&effort.as_str()) => {
                let allowed = self.efforts.join(", ");
                reader.problem("reasoning_effort", format!("`{}` is not one of {allowed}", effort.escape_debug()));
                None
            }
            Some(effort) => Some(effort),
            None => (self.default_effort)(&model).map(str::to_owned),
        };
        (ChatOptions { model, reasoning_effort }, reader)
    }
}

impl ChatProvider for CompatibleChat {
    fn default_model(&self) -> &'static str {
        self.default_model
    }

    fn resolve(&self, options: &Options, model: &str) -> Result<Options, Vec<String>> {
        let (read, reader) = self.read(options, model);
        let mut resolved = reader.finish()?;
        if let Some(effort) = read.reasoning_effort {
            resolved.insert("reasoning_effort".into(), effort.into());
        }
        Ok(resolved)
    }

    fn model(&self, options: &Options) -> String {
        self.read(options, self.default_model).0.model
    }

    fn build(&self, access: &Access, options: &Options) -> Result<Arc<dyn ChatModel>, String> {
        let (read, _) = self.read(options, self.default_model);
        let config = LlmConfig {
            provider: self.name,
            base_url: access.base_url.clone(),
            api_key: access.key.clone(),
            timeout: access.timeout,
            retry: access.retry.clone(),
            reasoning_effort: read.reasoning_effort,
        };
        Ok(openai_compatible(config, access.http.clone()))
    }

    fn lists_models(&self) -> bool {
        true
    }

    fn default_price(&self, model: &str) -> Option<Price> {
        let (_, prompt, completion) = self.prices.iter().find(|(listed, _, _)| *listed == model)?;
        Some(Price::UsdPerMillionTokens { prompt: *prompt, completion: *completion })
    }
}
