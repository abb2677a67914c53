//! The OpenAI-compatible chat client against mock OpenAI and Groq servers that stream the
//! documented server-sent events and play faults on demand.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use support::mocks::Fault;
use support::mocks::openai::{Flavour, MockOpenAi, Reply};
use voice_agent::config::Secret;
use voice_agent::providers::llm::{
    self, ChatDelta, ChatMessage, ChatModel, ChatRequest, LlmConfig, ToolCall, ToolSpec, Usage,
};
use voice_agent::providers::{ProviderError, RetryPolicy};

const KEY: &str = "sk-test-key-abcdefghijklmnop";
const TIMEOUT: Duration = Duration::from_millis(400);
const FLAVOURS: [Flavour; 2] = [Flavour::OpenAi, Flavour::Groq];

fn model(mock: &MockOpenAi, flavour: Flavour, key: &str) -> Arc<dyn ChatModel> {
    let config = LlmConfig {
        provider: if flavour == Flavour::Groq { "groq" } else { "openai" },
        base_url: mock.base_url(),
        api_key: Secret::new(key),
        timeout: TIMEOUT,
        retry: RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(40),
            max_retry_after: Duration::from_secs(2),
        },
        reasoning_effort: None,
    };
    llm::openai_compatible(config, reqwest::Client::new())
}

fn request(tools: Vec<ToolSpec>) -> ChatRequest {
    ChatRequest {
        model: "openai/gpt-oss-120b".into(),
        messages: vec![
            ChatMessage::system("You are a helpful agent."),
            ChatMessage::user("नमस्ते! What is the weather?"),
        ],
        temperature: 0.7,
        max_tokens: 256,
        tools,
    }
}

fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "The weather in a city".into(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    }
}

/// Every item of an answer, errors included.
async fn answer(
    model: &dyn ChatModel,
    request: ChatRequest,
) -> Result<Vec<Result<ChatDelta, ProviderError>>, ProviderError> {
    Ok(model.stream(request).await?.collect().await)
}

fn text_of(items: &[Result<ChatDelta, ProviderError>]) -> String {
    items
        .iter()
        .filter_map(|item| match item {
            Ok(ChatDelta::Text(text)) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn done(items: &[Result<ChatDelta, ProviderError>]) -> Option<(String, Option<Usage>)> {
    match items.last() {
        Some(Ok(ChatDelta::Done { finish_reason, usage })) => Some((finish_reason.clone(), usage.clone())),
        _ => None,
    }
}

#[tokio::test]
async fn text_streams_in_pieces_and_reports_usage() {
    let text = "नमस्ते! आज पुणे में धूप है, तापमान 31 डिग्री है। Anything else?";
    for flavour in FLAVOURS {
        let mock = MockOpenAi::start(flavour, KEY).await;
        mock.replies([Reply::Text(text.into())]);
        let items = answer(&*model(&mock, flavour, KEY), request(vec![])).await.expect("an answer");
        assert!(
            items.iter().filter(|i| matches!(i, Ok(ChatDelta::Text(_)))).count() > 5,
            "{flavour:?} streams in pieces"
        );
        assert_eq!(text_of(&items), text, "{flavour:?}");
        let (prompt, completion, total) = mock.records()[0].usage.expect("usage sent");
        let usage = Usage { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total };
        assert_eq!(done(&items), Some(("stop".into(), Some(usage))), "{flavour:?}");
    }
}

#[tokio::test]
async fn groq_usage_from_either_place_is_the_same() {
    let mock = MockOpenAi::start(Flavour::Groq, KEY).await;
    mock.groq_usage_chunk(true);
    let items = answer(&*model(&mock, Flavour::Groq, KEY), request(vec![])).await.expect("an answer");
    let (prompt, completion, total) = mock.records()[0].usage.expect("usage sent");
    let expected = Usage { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total };
    assert_eq!(done(&items).and_then(|(_, usage)| usage), Some(expected));
}

#[tokio::test]
async fn the_request_carries_everything_asked() {
    for flavour in FLAVOURS {
        let mock = MockOpenAi::start(flavour, KEY).await;
        answer(&*model(&mock, flavour, KEY), request(vec![weather_tool()])).await.expect("an answer");
        let body = &mock.records()[0].body;
        assert_eq!(body["model"], "openai/gpt-oss-120b");
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["max_completion_tokens"], 256);
        assert!((body["temperature"].as_f64().unwrap_or_default() - 0.7).abs() < 1e-6);
        assert_eq!(body["messages"][0], json!({"role": "system", "content": "You are a helpful agent."}));
        assert_eq!(body["messages"][1]["role"], "user");
        assert_eq!(body["tools"][0]["type"], "function");
        assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
        assert_eq!(body["tools"][0]["function"]["parameters"]["required"], json!(["city"]));
        assert_eq!(body["tool_choice"], "auto");
    }
}

#[tokio::test]
async fn parallel_tool_calls_are_assembled_exactly() {
    let calls = vec![
        ("get_weather".to_owned(), r#"{"city":"पुणे","unit":"celsius"}"#.to_owned()),
        ("book_callback".to_owned(), r#"{"phone":"+919800000000","when":"tomorrow 10:00"}"#.to_owned()),
    ];
    for flavour in FLAVOURS {
        let mock = MockOpenAi::start(flavour, KEY).await;
        mock.replies([Reply::ToolCalls(calls.clone())]);
        let items = answer(&*model(&mock, flavour, KEY), request(vec![weather_tool()])).await.expect("an answer");
        let received: Vec<ToolCall> = items
            .iter()
            .filter_map(|item| match item {
                Ok(ChatDelta::ToolCall(call)) => Some(call.clone()),
                _ => None,
            })
            .collect();
        let expected: Vec<ToolCall> = calls
            .iter()
            .enumerate()
            .map(|(i, (name, arguments))| ToolCall {
                id: format!("call_mock_{i}"),
                name: name.clone(),
                arguments: arguments.clone(),
            })
            .collect();
        assert_eq!(received, expected, "{flavour:?}");
        assert_eq!(done(&items).map(|(reason, _)| reason).as_deref(), Some("tool_calls"));
        assert_eq!(text_of(&items), "");
    }
}

#[tokio::test]
async fn transient_failures_before_the_answer_are_retried() {
    let faults =
        [Fault::RateLimited { retry_after: None }, Fault::ServerError, Fault::Slow(Duration::from_millis(700))];
    for flavour in FLAVOURS {
        for fault in faults.clone() {
            let mock = MockOpenAi::start(flavour, KEY).await;
            mock.replies([Reply::Text("फिर से कोशिश।".into())]);
            let times = if matches!(fault, Fault::Slow(_)) { 1 } else { 2 };
            mock.fault_next(fault.clone(), times);
            let items = answer(&*model(&mock, flavour, KEY), request(vec![])).await;
            let items = items.unwrap_or_else(|e| panic!("{flavour:?} after {fault:?}: {e}"));
            assert_eq!(text_of(&items), "फिर से कोशिश।", "{flavour:?} after {fault:?}");
            assert_eq!(mock.records().len(), times + 1, "{flavour:?} after {fault:?}");
        }
    }
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let after = Duration::from_millis(200);
    for flavour in FLAVOURS {
        let mock = MockOpenAi::start(flavour, KEY).await;
        mock.fault_next(Fault::RateLimited { retry_after: Some(after) }, 1);
        answer(&*model(&mock, flavour, KEY), request(vec![])).await.expect("an answer after the wait");
        let records = mock.records();
        assert_eq!(records.len(), 2);
        let waited = records[1].at - records[0].at;
        assert!(waited >= after, "{flavour:?} retried after {waited:?}");
    }
}

#[tokio::test]
async fn final_failures_fail_fast_without_the_key() {
    for flavour in FLAVOURS {
        for (fault, key) in
            [(Fault::QuotaExhausted, KEY), (Fault::AuthFailure, KEY), (Fault::ServerError, "sk-wrong-key-0123456789")]
        {
            let mock = MockOpenAi::start(flavour, KEY).await;
            if key == KEY {
                mock.fault_next(fault.clone(), 3);
            }
            let error = answer(&*model(&mock, flavour, key), request(vec![])).await.expect_err("a final failure");
            let variant_ok = match fault {
                Fault::QuotaExhausted => matches!(error, ProviderError::QuotaExhausted { .. }),
                _ => matches!(error, ProviderError::Auth { .. }),
            };
            assert!(variant_ok, "{flavour:?} {fault:?}: {error:?}");
            assert_eq!(mock.records().len(), 1, "{flavour:?} {fault:?} is not retried");
            let shown = error.to_string();
            assert!(!shown.contains(key) && !shown.contains(KEY), "{shown}");
        }
    }
}

#[tokio::test]
async fn server_errors_give_up_after_the_last_try() {
    let mock = MockOpenAi::start(Flavour::OpenAi, KEY).await;
    mock.fault_next(Fault::ServerError, 5);
    let error = answer(&*model(&mock, Flavour::OpenAi, KEY), request(vec![])).await.expect_err("three failures");
    assert!(matches!(error, ProviderError::Server { status: 500, .. }), "{error:?}");
    assert_eq!(mock.records().len(), 3);
}

#[tokio::test]
async fn failures_mid_answer_end_the_stream_and_are_not_retried() {
    for flavour in FLAVOURS {
        for fault in [Fault::ErrorMidStream, Fault::DropConnection] {
            let mock = MockOpenAi::start(flavour, KEY).await;
            mock.replies([Reply::Text("यह उत्तर बीच में टूट जाएगा और फिर कभी पूरा नहीं होगा".into())]);
            mock.fault_next(fault.clone(), 1);
            let items = answer(&*model(&mock, flavour, KEY), request(vec![])).await.expect("the answer starts");
            assert!(!text_of(&items).is_empty(), "{flavour:?} {fault:?}: text came first");
            let error = match items.last() {
                Some(Err(error)) => error,
                other => panic!("{flavour:?} {fault:?}: the stream ended with {other:?}"),
            };
            match fault {
                Fault::ErrorMidStream => {
                    assert!(matches!(error, ProviderError::Protocol { .. }), "{error:?}");
                    assert!(error.to_string().contains("The server had an error"), "{error}");
                }
                _ => assert!(matches!(error, ProviderError::Network { .. }), "{error:?}"),
            }
            assert_eq!(items.iter().filter(|i| i.is_err()).count(), 1);
            assert_eq!(mock.records().len(), 1, "{flavour:?} {fault:?}: never retried after the first byte");
        }
    }
}

#[tokio::test]
async fn a_stalled_answer_times_out() {
    let mock = MockOpenAi::start(Flavour::Groq, KEY).await;
    mock.replies([Reply::Text("one two three".into())]);
    mock.token_delay(Duration::from_millis(600));
    let items = answer(&*model(&mock, Flavour::Groq, KEY), request(vec![])).await.expect("the answer starts");
    assert!(matches!(items.last(), Some(Err(ProviderError::Timeout { after, .. })) if *after == TIMEOUT), "{items:?}");
    assert_eq!(mock.records().len(), 1);
}

// ---- OpenAI speech: transcription and synthesis

fn access(mock: &MockOpenAi, key: &str) -> voice_agent::providers::registry::Access {
    voice_agent::providers::registry::Access {
        key: Secret::new(key),
        base_url: mock.base_url(),
        http: reqwest::Client::new(),
        timeout: TIMEOUT,
        retry: RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(40),
            max_retry_after: Duration::from_secs(2),
        },
    }
}

fn transcriber(mock: &MockOpenAi, written: Value) -> Arc<dyn voice_agent::providers::stt::SpeechToText> {
    let provider = voice_agent::providers::registry::stt("openai").expect("registered");
    let options = provider.resolve(written.as_object().expect("an object")).expect("valid");
    provider.build(&access(mock, KEY), &options).expect("built")
}

fn speaker(mock: &MockOpenAi, written: Value) -> Arc<dyn voice_agent::providers::tts::TextToSpeech> {
    let provider = voice_agent::providers::registry::tts("openai").expect("registered");
    let (options, _) = provider.resolve(written.as_object().expect("an object"), None, "hi-IN", "").expect("valid");
    provider.build(&access(mock, KEY), &options).expect("built")
}

async fn transcribe(
    stt: &dyn voice_agent::providers::stt::SpeechToText,
    language: &str,
    seconds: f64,
) -> Result<String, ProviderError> {
    let mut utterance = stt.start(language).await?;
    let samples: Vec<i16> = (0..(seconds * 16_000.0) as usize).map(|i| ((i % 40) as i16 - 20) * 200).collect();
    for piece in samples.chunks(320) {
        utterance.push(piece).await?;
    }
    Ok(utterance.finish().await?.text)
}

async fn speak(
    tts: &dyn voice_agent::providers::tts::TextToSpeech,
    text: &str,
) -> Result<Vec<voice_agent::audio::AudioFrame>, ProviderError> {
    let request = voice_agent::providers::tts::SpeechRequest {
        text: text.into(),
        language: "hi-IN".into(),
        voice: "coral".into(),
    };
    let mut stream = tts.synthesize(request).await?;
    let mut frames = Vec::new();
    while let Some(frame) = stream.next().await {
        frames.push(frame?);
    }
    Ok(frames)
}

#[tokio::test]
async fn transcription_uploads_the_utterance_with_an_iso_language() {
    let mock = MockOpenAi::start(Flavour::OpenAi, KEY).await;
    mock.transcripts(["क्या आप कल खुले हैं?", "Are you open tomorrow?"]);
    let stt = transcriber(&mock, json!({"prompt": "Sharma clinic"}));
    assert_eq!(transcribe(&*stt, "hi-IN", 1.2).await.expect("a transcript"), "क्या आप कल खुले हैं?");
    let whisper = transcriber(&mock, json!({"model": "whisper-1"}));
    assert_eq!(transcribe(&*whisper, "en-IN", 0.8).await.expect("a transcript"), "Are you open tomorrow?");
    let records = mock.audio_records();
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[0].fields,
        json!({"model": "gpt-4o-mini-transcribe", "language": "hi", "response_format": "json", "prompt": "Sharma clinic"})
    );
    assert!((records[0].audio_seconds - 1.2).abs() < 0.01);
    assert_eq!(
        (records[1].fields["model"].as_str(), records[1].fields["language"].as_str()),
        (Some("whisper-1"), Some("en"))
    );
}

#[tokio::test]
async fn speech_streams_raw_pcm_at_24_khz() {
    let mock = MockOpenAi::start(Flavour::OpenAi, KEY).await;
    mock.speech_audio(Duration::from_millis(900));
    let tts = speaker(&mock, json!({"speed": 1.1, "instructions": "Warm."}));
    let frames = speak(&*tts, "नमस्ते।").await.expect("audio");
    assert!(frames.len() > 1, "passed on as it arrived");
    assert!(frames.iter().all(|f| f.sample_rate == 24_000));
    let seconds: f64 = frames.iter().map(|f| f.duration().as_secs_f64()).sum();
    assert!((seconds - 0.9).abs() < 0.001, "{seconds}");
    let record = &mock.audio_records()[0];
    assert_eq!(
        record.fields,
        json!({"model": "gpt-4o-mini-tts", "input": "नमस्ते।", "voice": "coral", "response_format": "pcm", "speed": 1.1,
               "instructions": "Warm."})
    );
}

#[tokio::test]
async fn speech_and_transcription_retry_what_is_transient_and_not_the_rest() {
    for fault in [Fault::RateLimited { retry_after: None }, Fault::ServerError, Fault::Slow(Duration::from_millis(600))]
    {
        let mock = MockOpenAi::start(Flavour::OpenAi, KEY).await;
        mock.fault_next(fault.clone(), 2);
        let stt = transcriber(&mock, json!({}));
        transcribe(&*stt, "hi-IN", 0.5).await.unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        speak(&*speaker(&mock, json!({})), "फिर से।").await.unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(mock.audio_records().len(), 4, "{fault:?}: each retried once");
    }
    let mock = MockOpenAi::start(Flavour::OpenAi, KEY).await;
    mock.fault_next(Fault::QuotaExhausted, 2);
    let error = transcribe(&*transcriber(&mock, json!({})), "hi-IN", 0.5).await.expect_err("no credit");
    assert!(matches!(error, ProviderError::QuotaExhausted { .. }), "{error:?}");
    let error = speak(&*speaker(&mock, json!({})), "नमस्ते।").await.expect_err("no credit");
    assert!(matches!(error, ProviderError::QuotaExhausted { .. }), "{error:?}");
    assert_eq!(mock.audio_records().len(), 2, "never retried");

    let mock = MockOpenAi::start(Flavour::OpenAi, KEY).await;
    mock.fault_next(Fault::DropConnection, 1);
    let tts = speaker(&mock, json!({}));
    let mut stream = tts
        .synthesize(voice_agent::providers::tts::SpeechRequest {
            text: "आधा।".into(),
            language: "hi-IN".into(),
            voice: "coral".into(),
        })
        .await
        .expect("audio starts");
    assert!(stream.next().await.is_some_and(|f| f.is_ok()), "audio first");
    let mut failed = false;
    while let Some(frame) = stream.next().await {
        failed |= frame.is_err();
    }
    assert!(failed, "a connection cut after audio ends the sentence with an error");
}

#[tokio::test]
async fn the_mock_refuses_what_openai_refuses() {
    let mock = MockOpenAi::start(Flavour::OpenAi, KEY).await;
    let tts = speaker(&mock, json!({}));
    let request = voice_agent::providers::tts::SpeechRequest {
        text: "hi".into(),
        language: "hi-IN".into(),
        voice: "shubh".into(),
    };
    let error = match tts.synthesize(request).await {
        Ok(_) => panic!("a Sarvam voice"),
        Err(error) => error,
    };
    assert!(matches!(error, ProviderError::Rejected { status: 400, .. }), "{error:?}");
    assert!(error.to_string().contains("Invalid voice"), "{error}");
}

// ---- the models a provider lists, checked at start-up

#[tokio::test]
async fn a_configured_model_the_provider_does_not_list_is_a_problem_and_an_unreachable_one_a_warning() {
    use voice_agent::config::ProviderSettings;
    use voice_agent::providers::startup;
    let groq = MockOpenAi::start(Flavour::Groq, KEY).await;
    groq.models(["openai/gpt-oss-20b", "llama-3.1-8b-instant"]);
    let settings = ProviderSettings::default()
        .with_account("groq", Some(Secret::new(KEY)), groq.base_url())
        .with_account("openai", Some(Secret::new(KEY)), "http://127.0.0.1:9/v1".parse().expect("a URL"));
    let setup = |provider: &str, model: &str| voice_agent::providers::registry::ProviderSetup {
        provider: provider.into(),
        options: json!({"model": model}).as_object().cloned().expect("an object"),
        voice: None,
        price: None,
    };
    let (sales, clinic) = (
        [setup("groq", "openai/gpt-oss-120b")],
        [setup("groq", "llama-3.1-8b-instant"), setup("openai", "gpt-4.1-mini")],
    );
    let chains = |llm| voice_agent::providers::Chains { stt: &[], llm, tts: &[] };
    let readiness = startup::check_models(
        [("sales", chains(&sales)), ("clinic", chains(&clinic))],
        &settings,
        &reqwest::Client::new(),
    )
    .await;
    assert_eq!(readiness.problems.len(), 1, "{readiness:?}");
    let problem = &readiness.problems[0];
    assert!(
        problem.contains("groq does not list the model `openai/gpt-oss-120b` that profile `sales` uses"),
        "{problem}"
    );
    assert!(problem.contains("llama-3.1-8b-instant"), "lists what it serves: {problem}");
    assert_eq!(readiness.warnings.len(), 1, "{readiness:?}");
    assert!(readiness.warnings[0].contains("cannot ask openai which models it serves"), "{readiness:?}");

    let refused =
        ProviderSettings::default().with_account("groq", Some(Secret::new("wrong-key-0123")), groq.base_url());
    let readiness = startup::check_models([("sales", chains(&sales))], &refused, &reqwest::Client::new()).await;
    assert!(readiness.problems[0].contains("groq refused the API key (check GROQ_API_KEY)"), "{readiness:?}");
}
