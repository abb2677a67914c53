use std::io::Write;
use std::path::PathBuf;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

const LIVEKIT: &[(&str, &str)] = &[
    ("LIVEKIT_URL", "wss://lk.example.com"),
    ("LIVEKIT_API_KEY", "APIkey"),
    ("LIVEKIT_API_SECRET", "top-secret-value"),
];

fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::File::create(&path).and_then(|mut f| f.write_all(text.as_bytes())).expect("temp file is writable");
    path
}

fn load(sources: &Sources) -> Result<Settings, ConfigError> {
    Settings::load(sources, Role::TokenServer)
}

#[test]
fn built_in_defaults_apply_when_nothing_is_set() {
    let settings = load(&Sources { env: env(LIVEKIT), ..Sources::default() }).expect("valid");
    assert_eq!(settings.web.port, 3000);
    assert_eq!(settings.defaults.language, "hi-IN");
    assert_eq!(settings.defaults.voice, "shubh");
    assert_eq!(settings.defaults.llm_provider, "groq");
    assert_eq!(settings.defaults.llm_model, "openai/gpt-oss-120b");
    assert_eq!(settings.n8n.agent_config_path, "/webhook/agent-config");
    assert_eq!(settings.n8n.lead_capture_path, "/webhook/lead-capture");
    assert!(settings.n8n.base_url.is_none());
    assert_eq!(settings.agent_name, "");
    let groq = settings.providers.account("groq").expect("groq's settings");
    assert_eq!(groq.base_url.as_str(), "https://api.groq.com/openai/v1");
    let deepgram = settings.providers.account("deepgram").expect("deepgram's settings");
    assert_eq!(deepgram.base_url.as_str(), "https://api.deepgram.com/");
    assert!(deepgram.api_key.is_none());
    assert_eq!(settings.livekit.public_url, settings.livekit.url);
}

#[test]
fn later_layers_win_file_then_dotenv_then_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = file(
        &dir,
        "worker.toml",
        "web_port = 4000\ndefault_language = \"ta-IN\"\nllm_provider = \"openai\"\ncors_origins = [\"https://a.example\", \"https://b.example\"]\n",
    );
    let dotenv = file(&dir, ".env", "WEB_PORT=5000\nDEFAULT_VOICE=karun\nUNRELATED=ignored\n");
    let sources = Sources {
        config_file: Some(config),
        dotenv_file: Some(dotenv),
        env: env(&[LIVEKIT, &[("WEB_PORT", "6000")]].concat()),
    };
    let settings = load(&sources).expect("valid");
    assert_eq!(settings.web.port, 6000, "environment beats .env and file");
    assert_eq!(settings.defaults.voice, "karun", ".env beats default");
    assert_eq!(settings.defaults.language, "ta-IN", "file beats default");
    assert_eq!(settings.defaults.llm_provider, "openai");
    assert_eq!(settings.defaults.llm_model, "gpt-4.1-mini", "model default follows the provider");
    assert_eq!(settings.web.cors_origins, ["https://a.example", "https://b.example"]);
}

#[test]
fn every_problem_is_reported_at_once_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = file(&dir, "bad.toml", "livekit_ulr = \"ws://x\"\n");
    let sources = Sources {
        config_file: Some(config),
        dotenv_file: None,
        env: env(&[
            ("LIVEKIT_URL", "not a url"),
            ("WEB_PORT", "70000"),
            ("LLM_PROVIDER", "anthropic"),
            ("DEFAULT_LANGUAGE", "fr-FR"),
            ("N8N_BASE_URL", "ftp://n8n"),
            ("N8N_WEBHOOK_AGENT_CONFIG", "webhook/agent-config"),
            ("TRUST_FORWARDED_FOR", "maybe"),
            ("ADMIN_TOKEN", "short"),
            ("CORS_ORIGINS", "*"),
        ]),
    };
    let error = load(&sources).expect_err("invalid");
    let names: Vec<_> = error.problems.iter().map(|p| p.name.as_str()).collect();
    for expected in [
        "LIVEKIT_URL",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        "WEB_PORT",
        "LLM_PROVIDER",
        "DEFAULT_LANGUAGE",
        "N8N_BASE_URL",
        "N8N_WEBHOOK_AGENT_CONFIG",
        "TRUST_FORWARDED_FOR",
        "ADMIN_TOKEN",
        "CORS_ORIGINS",
    ] {
        assert!(names.contains(&expected), "{expected} not reported in:\n{error}");
    }
    let message = error.to_string();
    assert!(message.contains("unknown setting `livekit_ulr`"), "{message}");
    assert!(message.contains("`70000` (from environment)"), "{message}");
    assert!(message.contains("one of groq or openai"), "{message}");
    assert!(message.starts_with(&format!("the configuration has {} problems:", error.problems.len())));
}

#[test]
fn secrets_are_never_echoed_or_debug_printed() {
    let sources = Sources {
        env: env(&[LIVEKIT, &[("GROQ_API_KEY", "gsk_live_abc"), ("ADMIN_TOKEN", "tiny")]].concat()),
        ..Sources::default()
    };
    let error = load(&sources).expect_err("admin token too short");
    assert!(!error.to_string().contains("tiny"), "{error}");

    let sources = Sources { env: env(&[LIVEKIT, &[("GROQ_API_KEY", "gsk_live_abc")]].concat()), ..Sources::default() };
    let settings = load(&sources).expect("valid");
    let debug = format!("{settings:?}");
    assert!(!debug.contains("gsk_live_abc") && !debug.contains("top-secret-value"), "{debug}");
    let groq = settings.providers.account("groq").and_then(|account| account.api_key.as_ref());
    assert_eq!(groq.map(Secret::expose), Some("gsk_live_abc"));
}

#[test]
fn a_voice_must_exist_for_the_default_language() {
    let sources = Sources { env: env(&[LIVEKIT, &[("DEFAULT_VOICE", "alloy")]].concat()), ..Sources::default() };
    let error = load(&sources).expect_err("not a Sarvam voice");
    assert_eq!(error.problems.len(), 1, "{error}");
    assert_eq!(error.problems[0].name, "DEFAULT_VOICE");
    assert!(
        error.problems[0].why.contains("anushka") && error.problems[0].why.contains("shubh"),
        "lists the voices on offer: {error}"
    );
    let sources = Sources { env: env(&[LIVEKIT, &[("DEFAULT_VOICE", "arya")]].concat()), ..Sources::default() };
    assert_eq!(load(&sources).expect("a bulbul:v2 voice still serves").defaults.voice, "arya");
}

#[test]
fn every_provider_has_its_key_and_endpoint_and_prices_are_checked() {
    let sources = Sources {
        env: env(&[
            LIVEKIT,
            &[
                ("ELEVENLABS_API_KEY", "el-key"),
                ("ELEVENLABS_BASE_URL", "http://127.0.0.1:9/el/"),
                ("PRICES", "stt:deepgram:nova-3=0.01,llm:groq:openai/gpt-oss-120b=0.1/0.5"),
            ],
        ]
        .concat()),
        ..Sources::default()
    };
    let settings = load(&sources).expect("valid");
    let elevenlabs = settings.providers.account("elevenlabs").expect("its settings");
    assert_eq!(elevenlabs.api_key.as_ref().map(Secret::expose), Some("el-key"));
    assert_eq!(elevenlabs.base_url.as_str(), "http://127.0.0.1:9/el");
    assert!(settings.providers.prices.get(crate::providers::registry::Kind::Stt, "deepgram", "nova-3").is_some());
    let sources = Sources { env: env(&[LIVEKIT, &[("PRICES", "stt:whisper:x=1")]].concat()), ..Sources::default() };
    let error = load(&sources).expect_err("an unknown provider");
    assert_eq!(error.problems[0].name, "PRICES");
    assert!(error.problems[0].why.contains("`whisper` is not a speech-to-text provider"), "{error}");
}

#[test]
fn dotenv_syntax_errors_name_the_line_without_its_content() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dotenv = file(&dir, ".env", "LIVEKIT_URL=wss://x\nLIVEKIT_API_SECRET='unterminated-secret\n");
    let sources = Sources { dotenv_file: Some(dotenv), env: env(LIVEKIT), ..Sources::default() };
    let error = load(&sources).expect_err("bad .env");
    let message = error.to_string();
    assert!(message.contains(".env file") && message.contains("line 2"), "{message}");
    assert!(!message.contains("unterminated-secret"), "{message}");
}

#[test]
fn a_missing_config_file_is_an_error() {
    let sources =
        Sources { config_file: Some("/nonexistent/worker.toml".into()), env: env(LIVEKIT), ..Sources::default() };
    let error = load(&sources).expect_err("missing file");
    assert!(error.to_string().contains("config file /nonexistent/worker.toml: cannot be read"), "{error}");
}

#[test]
fn base_urls_lose_their_trailing_slash() {
    let sources = Sources {
        env: env(&[LIVEKIT, &[("OPENAI_BASE_URL", "http://127.0.0.1:9000/v1/")]].concat()),
        ..Sources::default()
    };
    let settings = load(&sources).expect("valid");
    let openai = settings.providers.account("openai").expect("openai's settings");
    assert_eq!(openai.base_url.as_str(), "http://127.0.0.1:9000/v1");
}

#[test]
fn env_example_documents_every_setting() {
    let example = include_str!("../../.env.example");
    for setting in SETTINGS.iter() {
        let line = format!("\n{}=", setting.name);
        let position = example.find(&line).unwrap_or_else(|| panic!(".env.example lacks {}", setting.name));
        let before = &example[..position];
        let comment = before.lines().last().unwrap_or_default();
        assert!(comment.starts_with('#'), "{} in .env.example has no comment line above it", setting.name);
    }
}

#[test]
fn readme_lists_every_setting() {
    let readme = include_str!("../../README.md");
    for setting in SETTINGS.iter() {
        assert!(readme.contains(&format!("| `{}` |", setting.name)), "README's settings table lacks {}", setting.name);
    }
}

#[test]
fn the_dev_server_needs_nothing_and_defaults_to_the_dev_key_pair() {
    let settings = Settings::load(&Sources::default(), Role::DevServer).expect("valid without settings");
    assert_eq!((settings.livekit.api_key.as_str(), settings.livekit.api_secret.expose()), ("devkey", "secret"));
    let error = Settings::load(&Sources::default(), Role::Connect).expect_err("connect needs a server and keys");
    let names: Vec<_> = error.problems.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"]);
}

#[test]
fn dev_embeds_livekit_unless_pointed_at_a_real_one_which_needs_real_keys() {
    let settings = Settings::load(&Sources::default(), Role::Dev).expect("nothing needed");
    assert!(!settings.livekit.external);
    assert_eq!(settings.livekit.url.as_str(), "ws://127.0.0.1:7880/");
    assert_eq!(settings.livekit.api_key, "devkey");
    assert_eq!(settings.worker.load_threshold, None, "dev takes calls whatever the load");
    let sources = Sources { env: env(&[("LIVEKIT_URL", "wss://project.livekit.cloud")]), ..Sources::default() };
    let error = Settings::load(&sources, Role::Dev).expect_err("a real server needs its keys");
    let names: Vec<_> = error.problems.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"]);
    // Provider keys are the profiles' business, checked when the worker starts.
    let worker = Settings::load(&Sources { env: env(LIVEKIT), ..Sources::default() }, Role::Worker).expect("valid");
    assert_eq!(
        (worker.worker.max_jobs, worker.worker.load_threshold, worker.worker.health_port),
        (100, Some(0.75), 8081)
    );
}

#[test]
fn the_health_endpoint_listens_on_loopback_unless_told_otherwise() {
    let settings = Settings::load(&Sources::default(), Role::Dev).expect("nothing needed");
    assert_eq!(settings.worker.health_host, std::net::IpAddr::from([127, 0, 0, 1]));
    let sources = Sources { env: env(&[("HEALTH_HOST", "0.0.0.0")]), ..Sources::default() };
    let settings = Settings::load(&sources, Role::Dev).expect("valid");
    assert_eq!(settings.worker.health_host, std::net::IpAddr::from([0, 0, 0, 0]));
}

#[test]
fn an_invalid_url_is_shown_without_its_password() {
    let sources = Sources {
        env: env(&[
            ("N8N_BASE_URL", "htps://admin:hunter2@n8n.example.com"),
            ("LIVEKIT_URL", "wss//k:pw9@lk.example.com"),
        ]),
        ..Sources::default()
    };
    let error = Settings::load(&sources, Role::Dev).expect_err("both URLs are invalid").to_string();
    assert!(error.contains("N8N_BASE_URL: `htps://***@n8n.example.com`"), "{error}");
    assert!(error.contains("LIVEKIT_URL: `wss//***@lk.example.com`"), "{error}");
    assert!(!error.contains("hunter2") && !error.contains("pw9"), "{error}");
}
