//! Chains of fake providers that fail on command.

use std::sync::atomic::AtomicUsize;

use futures_util::stream;

use super::*;
use crate::providers::llm::{ChatMessage, Usage};

fn server_error(provider: &'static str) -> ProviderError {
    ProviderError::Server { provider, status: 503, message: "down".into() }
}

/// A provider answering with its name, failing while `failing` is set; counts its requests.
struct Fake {
    name: &'static str,
    failing: AtomicBool,
    requests: AtomicUsize,
    /// What the last request carried (audio samples, model, voice).
    last: Mutex<String>,
}

impl Fake {
    fn new(name: &'static str, failing: bool) -> Arc<Self> {
        Arc::new(Self {
            name,
            failing: AtomicBool::new(failing),
            requests: AtomicUsize::new(0),
            last: Mutex::default(),
        })
    }

    fn answer(&self, carried: String) -> Result<(), ProviderError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        *self.last.lock().expect("not poisoned") = carried;
        if self.failing.load(Ordering::SeqCst) { Err(server_error(self.name)) } else { Ok(()) }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn last(&self) -> String {
        self.last.lock().expect("not poisoned").clone()
    }
}

struct FakeUtterance {
    fake: Arc<Fake>,
    samples: usize,
}

impl SpeechToText for Arc<Fake> {
    fn start(&self, _language: &str) -> BoxFuture<'_, Result<Box<dyn Utterance>, ProviderError>> {
        let utterance = FakeUtterance { fake: self.clone(), samples: 0 };
        Box::pin(async move { Ok(Box::new(utterance) as Box<dyn Utterance>) })
    }
}

impl Utterance for FakeUtterance {
    fn push(&mut self, audio: &[i16]) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.samples += audio.len();
        Box::pin(async { Ok(()) })
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<Transcript, ProviderError>> {
        Box::pin(async move {
            self.fake.answer(format!("{} samples", self.samples))?;
            Ok(Transcript { text: format!("heard by {}", self.fake.name), language: None, latency: Duration::ZERO })
        })
    }
}

impl ChatModel for Arc<Fake> {
    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatStream, ProviderError>> {
        Box::pin(async move {
            self.answer(request.model.clone())?;
            let done = ChatDelta::Done { finish_reason: "stop".into(), usage: Some(Usage::default()) };
            Ok(stream::iter([Ok(ChatDelta::Text(format!("answer of {}", self.name))), Ok(done)]).boxed())
        })
    }
}

impl TextToSpeech for Arc<Fake> {
    fn synthesize(&self, request: SpeechRequest) -> BoxFuture<'_, Result<AudioStream, ProviderError>> {
        Box::pin(async move {
            self.answer(request.voice.clone())?;
            let frame = AudioFrame { samples: vec![1; 240], sample_rate: 24_000 };
            let broken = self.name == "broken";
            let items = if broken { vec![Ok(frame), Err(server_error(self.name))] } else { vec![Ok(frame)] };
            Ok(stream::iter(items).boxed())
        })
    }
}

const QUICK: ProbePolicy = ProbePolicy { first: Duration::from_millis(100), max: Duration::from_millis(400) };

fn stt_chain(fakes: &[Arc<Fake>]) -> FallbackStt {
    let members = fakes
        .iter()
        .map(|fake| Member::new(fake.name.to_owned(), Arc::new(fake.clone()) as Arc<dyn SpeechToText>, ()))
        .collect();
    FallbackStt::new(members, QUICK)
}

async fn transcribe(stt: &FallbackStt, samples: usize) -> Result<String, ProviderError> {
    let mut utterance = stt.start("hi-IN").await?;
    utterance.push(&vec![0; samples]).await?;
    Ok(utterance.finish().await?.text)
}

#[tokio::test(start_paused = true)]
async fn the_next_speech_provider_hears_the_same_audio_and_the_failed_one_is_probed_back() {
    let (sarvam, deepgram) = (Fake::new("sarvam", true), Fake::new("deepgram", false));
    let stt = stt_chain(&[sarvam.clone(), deepgram.clone()]);
    assert_eq!(transcribe(&stt, 1_600).await.expect("served"), "heard by deepgram");
    assert_eq!((sarvam.requests(), deepgram.requests()), (1, 1));
    assert_eq!(deepgram.last(), "1600 samples", "the whole utterance was sent again");

    assert_eq!(transcribe(&stt, 800).await.expect("served"), "heard by deepgram");
    assert_eq!(sarvam.requests(), 1, "the failed provider is skipped while it is down");

    // Probes resend the failed utterance with a growing pause until it answers.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(sarvam.requests() >= 3, "probed: {}", sarvam.requests());
    assert_eq!(sarvam.last(), "1600 samples", "a probe repeats the failed request");
    sarvam.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let probes = sarvam.requests();
    assert_eq!(transcribe(&stt, 800).await.expect("served"), "heard by sarvam", "recovered, it serves first again");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(sarvam.requests(), probes + 1, "probing stopped once it answered");
}

#[tokio::test(start_paused = true)]
async fn when_every_provider_fails_the_last_error_is_the_requests() {
    let stt = stt_chain(&[Fake::new("sarvam", true), Fake::new("deepgram", true)]);
    let error = transcribe(&stt, 160).await.expect_err("nobody answers");
    assert!(matches!(error, ProviderError::Server { provider: "deepgram", .. }), "{error:?}");
}

#[tokio::test(start_paused = true)]
async fn a_single_provider_is_never_skipped() {
    let sarvam = Fake::new("sarvam", true);
    let stt = stt_chain(std::slice::from_ref(&sarvam));
    assert!(transcribe(&stt, 160).await.is_err());
    sarvam.failing.store(false, Ordering::SeqCst);
    assert_eq!(transcribe(&stt, 160).await.expect("asked again"), "heard by sarvam");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sarvam.requests(), 2, "nothing to probe for: it is asked every time anyway");
}

#[tokio::test(start_paused = true)]
async fn each_chat_provider_asks_for_its_own_model() {
    let (groq, openai) = (Fake::new("groq", true), Fake::new("openai", false));
    let members = vec![
        Member::new("groq".into(), Arc::new(groq.clone()) as Arc<dyn ChatModel>, "openai/gpt-oss-120b".to_owned()),
        Member::new("openai".into(), Arc::new(openai.clone()) as Arc<dyn ChatModel>, "gpt-4.1-mini".to_owned()),
    ];
    let chat = FallbackChat::new(members, QUICK);
    let request = ChatRequest {
        model: String::new(),
        messages: vec![ChatMessage::user("hi")],
        temperature: 0.5,
        max_tokens: 10,
        tools: Vec::new(),
    };
    let answer: Vec<_> = chat.stream(request).await.expect("served").collect().await;
    assert!(matches!(&answer[0], Ok(ChatDelta::Text(text)) if text == "answer of openai"), "{answer:?}");
    assert_eq!((groq.last(), openai.last()), ("openai/gpt-oss-120b".to_owned(), "gpt-4.1-mini".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn a_model_the_request_names_is_the_first_providers_and_stand_ins_keep_their_own() {
    let (groq, openai) = (Fake::new("groq", false), Fake::new("openai", false));
    let members = vec![
        Member::new("groq".into(), Arc::new(groq.clone()) as Arc<dyn ChatModel>, "openai/gpt-oss-120b".to_owned()),
        Member::new("openai".into(), Arc::new(openai.clone()) as Arc<dyn ChatModel>, "gpt-4.1-mini".to_owned()),
    ];
    let chat = FallbackChat::new(members, QUICK);
    let request = ChatRequest {
        model: "llama-3.1-8b-instant".to_owned(),
        messages: vec![ChatMessage::user("analyse")],
        temperature: 0.0,
        max_tokens: 10,
        tools: Vec::new(),
    };
    let answer: Vec<_> = chat.stream(request.clone()).await.expect("served").collect().await;
    assert!(matches!(&answer[0], Ok(ChatDelta::Text(text)) if text == "answer of groq"), "{answer:?}");
    assert_eq!(groq.last(), "llama-3.1-8b-instant");
    groq.failing.store(true, Ordering::SeqCst);
    let stood_in: Vec<_> = chat.stream(request).await.expect("served by the stand-in").collect().await;
    assert!(matches!(&stood_in[0], Ok(ChatDelta::Text(text)) if text == "answer of openai"), "{stood_in:?}");
    assert_eq!(openai.last(), "gpt-4.1-mini", "a stand-in never gets another provider's model");
}

#[tokio::test(start_paused = true)]
async fn a_stand_in_voice_speaks_with_its_own_voice_and_a_broken_stream_benches_its_provider() {
    let (broken, sarvam, openai) = (Fake::new("broken", false), Fake::new("sarvam", true), Fake::new("openai", false));
    let members = vec![
        Member::new("broken".into(), Arc::new(broken.clone()) as Arc<dyn TextToSpeech>, None),
        Member::new("sarvam".into(), Arc::new(sarvam.clone()) as Arc<dyn TextToSpeech>, Some("ritu".to_owned())),
        Member::new("openai".into(), Arc::new(openai.clone()) as Arc<dyn TextToSpeech>, Some("coral".to_owned())),
    ];
    let tts = FallbackTts::new(members, QUICK);
    let request = SpeechRequest { text: "Hello.".into(), language: "en-IN".into(), voice: "call-voice".into() };
    let audio: Vec<_> = tts.synthesize(request.clone()).await.expect("first audio").collect().await;
    assert!(audio[0].is_ok() && audio[1].is_err(), "audio already played cannot be redone: {audio:?}");
    assert_eq!(broken.last(), "call-voice", "the first speaks the call's voice");

    let audio: Vec<_> = tts.synthesize(request).await.expect("served").collect().await;
    assert!(audio.iter().all(Result::is_ok));
    assert_eq!(broken.requests(), 1, "benched after breaking off");
    assert_eq!((sarvam.last(), openai.last()), ("ritu".to_owned(), "coral".to_owned()), "each with its own voice");
}
