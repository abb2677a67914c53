//! Deepgram (`https://api.deepgram.com`): live speech-to-text over `/v1/listen`, as its
//! official SDK (`deepgram-sdk` on PyPI, `listen.v1`) types it (providers.md §4).

mod live;

use std::sync::Arc;

use super::http::Auth;
use super::options::Reader;
use super::registry::{Access, Account, Options, SttProvider, Vendor};
use super::stt::SpeechToText;
use super::usage::Price;

pub(crate) const NAME: &str = "deepgram";
const PROVIDER: &str = NAME;
const AUTH: Auth = Auth::Token;

const MODELS: &[&str] = &["nova-3", "nova-2"];

/// Our languages as Deepgram's codes, for both models.
const LANGUAGES: &[(&str, &str)] = &[("hi-IN", "hi"), ("en-IN", "en-IN")];

pub(crate) struct Deepgram;

impl Vendor for Deepgram {
    fn name(&self) -> &'static str {
        NAME
    }

    fn account(&self) -> Account {
        Account {
            key_setting: "DEEPGRAM_API_KEY",
            key_doc: "Deepgram API key; required when a profile that can be dispatched uses deepgram.",
            base_url_setting: "DEEPGRAM_BASE_URL",
            default_base_url: "https://api.deepgram.com",
            base_url_doc: "Deepgram endpoint; live transcription uses the matching wss:// URL.",
        }
    }

    fn stt(&self) -> Option<&dyn SttProvider> {
        Some(&Live)
    }
}

#[derive(Debug, Clone)]
struct LiveOptions {
    model: String,
    /// Silence (ms) after which Deepgram marks a result `speech_final`.
    endpointing_ms: u64,
    /// Time (ms) without a new word after which Deepgram sends `UtteranceEnd`.
    utterance_end_ms: u64,
    smart_format: bool,
    /// Words to listen for (names, products); nova-3 only.
    keyterms: Vec<String>,
}

fn read(options: &Options) -> (LiveOptions, Reader<'_>) {
    let mut reader = Reader::new(NAME, options);
    let model = reader.choice("model", MODELS[0], MODELS);
    let endpointing_ms = reader.whole("endpointing_ms", 300, (10, 5_000));
    // Deepgram's own minimum; below it UtteranceEnd never comes.
    let utterance_end_ms = reader.whole("utterance_end_ms", 1_000, (1_000, 5_000));
    let smart_format = reader.flag("smart_format", true);
    let keyterms = reader.words("keyterms");
    if !keyterms.is_empty() && model != "nova-3" {
        reader.problem("keyterms", format!("only nova-3 takes key terms; {model} does not"));
    }
    (LiveOptions { model, endpointing_ms, utterance_end_ms, smart_format, keyterms }, reader)
}

struct Live;

impl SttProvider for Live {
    fn resolve(&self, options: &Options) -> Result<Options, Vec<String>> {
        read(options).1.finish()
    }

    fn languages(&self, _options: &Options) -> Vec<&'static str> {
        LANGUAGES.iter().map(|(ours, _)| *ours).collect()
    }

    fn model(&self, options: &Options) -> String {
        read(options).0.model
    }

    fn build(&self, access: &Access, options: &Options) -> Result<Arc<dyn SpeechToText>, String> {
        Ok(Arc::new(live::DeepgramLive::new(access.clone(), read(options).0)))
    }

    /// Pay-as-you-go streaming prices.
    fn default_price(&self, model: &str) -> Option<Price> {
        match model {
            "nova-3" => Some(Price::UsdPerMinute(0.0077)),
            "nova-2" => Some(Price::UsdPerMinute(0.0058)),
            _ => None,
        }
    }
}

fn language_code(language: &str) -> &str {
    LANGUAGES.iter().find(|(ours, _)| *ours == language).map_or(language, |(_, theirs)| theirs)
}
