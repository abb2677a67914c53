//! Every setting the product reads: its name, built-in default, and what it is for.
//!
//! One table serves the defaults layer, the check for unknown keys in a config file, and the
//! tests that keep `.env.example` and the README in step with the code. Each provider's key
//! and endpoint settings come from the provider registry, so a new provider brings its own.

use std::sync::LazyLock;

use crate::providers::registry::VENDORS;

/// One setting. Names are the environment variable names; a TOML config file uses the same
/// names in lower case.
#[derive(Debug, Clone, Copy)]
pub struct SettingSpec {
    /// The environment variable's name.
    pub name: &'static str,
    /// The built-in value, or `None` when the setting is unset unless someone sets it.
    pub default: Option<&'static str>,
    /// Secrets are redacted everywhere and never echoed back in error messages.
    pub secret: bool,
    /// What it does, for `--help`-style listings and error messages.
    pub doc: &'static str,
}

const fn setting(name: &'static str, default: Option<&'static str>, doc: &'static str) -> SettingSpec {
    SettingSpec { name, default, secret: false, doc }
}

const fn secret(name: &'static str, doc: &'static str) -> SettingSpec {
    SettingSpec { name, default: None, secret: true, doc }
}

/// Every setting: the deployment's, then each provider's key and endpoint, then the rest.
pub static SETTINGS: LazyLock<Vec<SettingSpec>> = LazyLock::new(|| {
    let providers = VENDORS.iter().flat_map(|vendor| {
        let account = vendor.account();
        [
            secret(account.key_setting, account.key_doc),
            setting(account.base_url_setting, Some(account.default_base_url), account.base_url_doc),
        ]
    });
    HEAD.iter().copied().chain(providers).chain(TAIL.iter().copied()).collect()
});

const HEAD: &[SettingSpec] = &[
    setting(
        "LIVEKIT_URL",
        None,
        "WebSocket URL of the LiveKit server (ws:// or wss://); `dev` runs its own when unset.",
    ),
    setting(
        "LIVEKIT_PUBLIC_URL",
        None,
        "URL browsers use to reach LiveKit when it differs from LIVEKIT_URL (proxies, Docker networks).",
    ),
    setting("LIVEKIT_API_KEY", None, "LiveKit API key; tokens are signed for it (`dev-server` defaults to devkey)."),
    secret("LIVEKIT_API_SECRET", "LiveKit API secret that signs every token (`dev-server` defaults to secret)."),
    setting(
        "AGENT_NAME",
        Some(""),
        "Name the worker registers under; empty means it is dispatched to every new room automatically.",
    ),
];

const TAIL: &[SettingSpec] = &[
    setting(
        "PRICES",
        None,
        "Prices for usage estimates, over the providers' list prices: kind:provider:model=USD, comma-separated (e.g. stt:deepgram:nova-3=0.0077 per minute, tts:…=per million characters, llm:…=prompt/completion per million tokens).",
    ),
    setting("LLM_PROVIDER", Some("groq"), "Default chat model provider for profiles that name none: groq or openai."),
    setting(
        "LLM_MODEL",
        None,
        "Default chat model of LLM_PROVIDER; unset means openai/gpt-oss-120b on Groq, gpt-4.1-mini on OpenAI.",
    ),
    setting("DEFAULT_LANGUAGE", Some("hi-IN"), "Language used when neither the caller nor the profile picks one."),
    setting(
        "DEFAULT_VOICE",
        Some("shubh"),
        "Sarvam voice used when neither the caller nor the profile picks one; a bulbul:v2 voice (arya, ...) makes bulbul:v2 the default model.",
    ),
    setting("N8N_BASE_URL", None, "Base URL of n8n (e.g. https://n8n.example.com); unset means local profiles only."),
    setting(
        "N8N_WEBHOOK_AGENT_CONFIG",
        Some("/webhook/agent-config"),
        "Path of the n8n webhook that answers agent profiles (GET ?agent_id=ID).",
    ),
    setting(
        "N8N_WEBHOOK_LEAD_CAPTURE",
        Some("/webhook/lead-capture"),
        "Path of the n8n webhook that receives call records (POST).",
    ),
    secret(
        "N8N_WEBHOOK_SECRET",
        "When set, call records and tool requests carry X-Signature-256: sha256=HMAC-SHA256(secret, body).",
    ),
    setting(
        "SPOOL_DIR",
        Some("data/outbox"),
        "Directory where call records wait until n8n has them; keep it on a persistent volume, which any number of workers may share (each keeps a locked sub-spool in it).",
    ),
    setting(
        "RECORDS_KEEP_DELIVERED",
        Some("50"),
        "Delivered call records kept in SPOOL_DIR/delivered/ for the operator's view (/admin); 0 keeps none.",
    ),
    setting(
        "PROFILES_DIR",
        Some("profiles"),
        "Directory of local agent profiles (*.toml), used when n8n is off or does not know an agent.",
    ),
    setting(
        "PROFILE_CACHE_TTL_SECS",
        Some("300"),
        "How long a profile fetched from n8n is reused before asking n8n again.",
    ),
    setting("WEB_HOST", Some("0.0.0.0"), "Address the token server listens on."),
    setting("WEB_PORT", Some("3000"), "Port the token server and its page listen on."),
    setting("WEB_DIR", Some("web"), "Directory holding the page (public/) and its npm packages (node_modules/)."),
    setting("TOKEN_TTL_SECS", Some("3600"), "Lifetime of the LiveKit tokens the token server issues."),
    setting(
        "TOKEN_RATE_LIMIT_PER_MIN",
        Some("30"),
        "Tokens one client address may obtain per minute; 0 disables the limit.",
    ),
    setting(
        "API_RATE_LIMIT_PER_MIN",
        Some("120"),
        "Requests one client address may make per minute to the other /api/ routes; 0 disables the limit.",
    ),
    setting(
        "WEB_MAX_CONNECTIONS",
        Some("512"),
        "Connections the token server holds at once; more are answered 503. Keep it well under `ulimit -n`.",
    ),
    setting(
        "WEB_MAX_CONNECTIONS_PER_CLIENT",
        Some("64"),
        "Connections one client address (IPv6: one /64) may hold at once; 0 disables, and so does TRUST_FORWARDED_FOR.",
    ),
    setting(
        "CORS_ORIGINS",
        Some(""),
        "Comma-separated origins allowed to call the API from other sites; empty means same-origin only.",
    ),
    setting(
        "TRUST_FORWARDED_FOR",
        Some("false"),
        "Take the client address from X-Forwarded-For (only behind a proxy you run).",
    ),
    secret(
        "REDIS_URL",
        "Redis shared by token servers and workers (redis://[:password@]host[:port][/db]): cache invalidation, one rate limit, the live call registry; unset means each instance alone.",
    ),
    secret(
        "ADMIN_TOKEN",
        "Bearer token for the admin endpoints: the operator's view /admin and /api/invalidate-cache; unset disables them.",
    ),
    setting(
        "METRICS_HOST",
        Some("127.0.0.1"),
        "Address of the token server's Prometheus endpoint (GET /metrics on METRICS_PORT); loopback only by default.",
    ),
    setting(
        "METRICS_PORT",
        Some("9464"),
        "Port of the token server's Prometheus endpoint, apart from the public port and without a token; the worker serves /metrics on HEALTH_PORT.",
    ),
    setting(
        "MAX_JOBS",
        Some("100"),
        "Calls one worker process takes at most; beyond it the worker reports itself full.",
    ),
    setting(
        "LOAD_THRESHOLD",
        Some("0.75"),
        "Load (0 to 1) at which the worker stops taking calls; load is the higher of CPU share and MAX_JOBS used.",
    ),
    setting(
        "DRAIN_TIMEOUT_SECS",
        Some("600"),
        "On SIGTERM, how long running calls may go on before the worker leaves them and exits.",
    ),
    setting(
        "HEALTH_HOST",
        Some("127.0.0.1"),
        "Address of the worker's health endpoint; loopback only by default (the Docker image sets 0.0.0.0).",
    ),
    setting(
        "HEALTH_PORT",
        Some("8081"),
        "Port of the worker's health endpoint: / answers 200 while registered, /worker describes it, /metrics is for Prometheus.",
    ),
    setting(
        "LOG_PERSONAL_DATA",
        Some("false"),
        "Write personal data (what callers say, captured lead values, participant identities and names) to the logs, for debugging only.",
    ),
    setting(
        "LOG_FORMAT",
        Some("text"),
        "Log output: text for people, json for log collectors. Levels come from RUST_LOG.",
    ),
];

pub fn find(name: &str) -> Option<&'static SettingSpec> {
    SETTINGS.iter().find(|spec| spec.name.eq_ignore_ascii_case(name))
}
