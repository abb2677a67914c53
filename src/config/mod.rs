//! Configuration, layered as built-in defaults < TOML file (`--config`) < `.env` < environment.
//!
//! Names are the Python system's environment variables, so its `.env` files keep working.
//! Loading never stops at the first problem: a bad configuration is reported once, listing every
//! missing or invalid setting by name, so an operator fixes everything in one go.

mod layers;
mod reader;
mod redact;
mod secret;
mod spec;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

pub use layers::Sources;
pub use redact::{redact_url, without_credentials};
pub use secret::Secret;
pub use spec::{SETTINGS, SettingSpec};

use crate::devserver::{DEV_API_KEY, DEV_API_SECRET};
use crate::providers::catalog;
use crate::providers::registry::{self, Kind, VENDORS};
use crate::providers::usage::PriceTable;
use reader::Reader;

/// Which program is starting; it decides which settings are required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The companion web server: needs LiveKit credentials and URL to issue tokens.
    TokenServer,
    /// `agent-worker dev-server`: the LiveKit key pair defaults to `livekit-server --dev`'s.
    DevServer,
    /// `agent-worker connect`: joins a room with a token it signs itself.
    Connect,
    /// `agent-worker start`: the worker, against a LiveKit server.
    Worker,
    /// `agent-worker dev`: everything in one process; LiveKit is embedded unless LIVEKIT_URL is
    /// set, and calls are taken whatever the load.
    Dev,
    /// `agent-worker deliver`: sends the spooled call records, so it needs n8n and nothing of LiveKit.
    Deliver,
}

/// How log lines are written (LOG_FORMAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people reading a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The LiveKit server the worker and the token server talk to.
#[derive(Debug, Clone)]
pub struct LiveKitSettings {
    /// For `dev` without LIVEKIT_URL, where its embedded server will listen.
    pub url: Url,
    /// LIVEKIT_URL was set (for `dev`: use that server rather than the embedded one).
    pub external: bool,
    /// What browsers are told to connect to; the same as `url` unless set apart.
    pub public_url: Url,
    /// LIVEKIT_API_KEY: names the key pair tokens are signed with.
    pub api_key: String,
    /// LIVEKIT_API_SECRET.
    pub api_secret: Secret,
}

/// A provider vendor's account: its key (unset until a profile needs it) and endpoint.
#[derive(Debug, Clone)]
pub struct ProviderAccount {
    /// `<VENDOR>_API_KEY`.
    pub api_key: Option<Secret>,
    /// `<VENDOR>_BASE_URL`: the vendor's API, or a proxy or mock standing in for it.
    pub base_url: Url,
}

/// Every provider vendor's account (`SARVAM_API_KEY`, `DEEPGRAM_BASE_URL`, ...), by vendor
/// name, and the operator's prices.
#[derive(Debug, Clone, Default)]
pub struct ProviderSettings {
    accounts: BTreeMap<String, ProviderAccount>,
    /// PRICES: the operator's prices, over the providers' list prices.
    pub prices: PriceTable,
}

impl ProviderSettings {
    /// The account of `vendor` (a registry name such as `deepgram`); `None` for an unknown one.
    pub fn account(&self, vendor: &str) -> Option<&ProviderAccount> {
        self.accounts.get(vendor)
    }

    /// These settings with `vendor`'s account set.
    pub fn with_account(mut self, vendor: &str, api_key: Option<Secret>, base_url: Url) -> Self {
        self.accounts.insert(vendor.to_owned(), ProviderAccount { api_key, base_url });
        self
    }
}

/// What a profile gets for anything it leaves out.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileDefaults {
    /// DEFAULT_LANGUAGE, a BCP-47 code such as `hi-IN`.
    pub language: String,
    /// DEFAULT_VOICE, a voice of the default text-to-speech provider.
    pub voice: String,
    /// A chat provider of the registry.
    pub llm_provider: String,
    /// LLM_MODEL; empty for the provider's own default.
    pub llm_model: String,
}

/// Where n8n is and what goes to it.
#[derive(Debug, Clone)]
pub struct N8nSettings {
    /// `None` when n8n is not used: profiles then come from the local directory only.
    pub base_url: Option<Url>,
    /// N8N_WEBHOOK_AGENT_CONFIG: the profile webhook's path under the base URL.
    pub agent_config_path: String,
    /// N8N_WEBHOOK_LEAD_CAPTURE: the call record webhook's path under the base URL.
    pub lead_capture_path: String,
    /// Signs call records so the workflow can tell them from anyone else's POSTs.
    pub webhook_secret: Option<Secret>,
    /// Where call records wait for n8n; one per worker, on a volume that outlives the container.
    pub spool_dir: PathBuf,
    /// How many delivered records the spool keeps for the operator's view.
    pub keep_delivered: usize,
}

impl N8nSettings {
    /// Where call records are POSTed: N8N_WEBHOOK_LEAD_CAPTURE under N8N_BASE_URL, joined as the
    /// profile webhook is; `None` when n8n is not used.
    pub fn lead_capture_url(&self) -> Option<Url> {
        let base = self.base_url.as_ref()?;
        Url::parse(&format!("{}{}", base.as_str().trim_end_matches('/'), self.lead_capture_path)).ok()
    }
}

/// Where local profiles are and how long n8n's stay cached.
#[derive(Debug, Clone)]
pub struct ProfileSettings {
    /// PROFILES_DIR: the local TOML profiles, used when n8n has none or is down.
    pub dir: PathBuf,
    /// PROFILE_CACHE_TTL_SECS.
    pub cache_ttl: Duration,
}

/// The token server: where it listens, what it serves, and its limits.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// WEB_HOST.
    pub host: IpAddr,
    /// WEB_PORT.
    pub port: u16,
    /// WEB_DIR: the page's files.
    pub dir: PathBuf,
    /// TOKEN_TTL_SECS: how long a browser's token may be used to join.
    pub token_ttl: Duration,
    /// Tokens per client address per minute; 0 means unlimited.
    pub token_rate_limit_per_min: u32,
    /// Requests per client address per minute to the other API routes; 0 means unlimited.
    pub api_rate_limit_per_min: u32,
    /// WEB_MAX_CONNECTIONS: open connections at once, all clients together.
    pub max_connections: usize,
    /// 0 means no per-client cap.
    pub max_connections_per_client: usize,
    /// CORS_ORIGINS: origins whose pages may call the API; empty for same-origin only.
    pub cors_origins: Vec<String>,
    /// TRUST_FORWARDED_FOR: the client is the last X-Forwarded-For address (behind a proxy).
    pub trust_forwarded_for: bool,
    /// ADMIN_TOKEN: unlocks the admin routes; unset disables them.
    pub admin_token: Option<Secret>,
    /// The address `GET /metrics` is served on, apart from the public port (METRICS_HOST).
    pub metrics_host: IpAddr,
    /// The port `GET /metrics` is served on (METRICS_PORT).
    pub metrics_port: u16,
}

/// The agent worker: how many calls it takes, how it drains, where its health answers.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// MAX_JOBS: calls at once.
    pub max_jobs: u32,
    /// `None` takes calls whatever the load (`dev`).
    pub load_threshold: Option<f64>,
    /// DRAIN_TIMEOUT_SECS: how long running calls may go on after SIGTERM.
    pub drain_timeout: Duration,
    /// HEALTH_HOST.
    pub health_host: IpAddr,
    /// HEALTH_PORT.
    pub health_port: u16,
}

/// Where `dev` runs its embedded LiveKit server, and so what it tells browsers and the worker.
pub const DEV_LIVEKIT_URL: &str = "ws://127.0.0.1:7880";

/// Every setting, checked; see [`Settings::load`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// The LiveKit server.
    pub livekit: LiveKitSettings,
    /// Empty means automatic dispatch: the worker gets a job for every new room.
    pub agent_name: String,
    /// The providers' keys, endpoints and prices.
    pub providers: ProviderSettings,
    /// What profiles get for what they leave out.
    pub defaults: ProfileDefaults,
    /// n8n: profiles, tools and call records.
    pub n8n: N8nSettings,
    /// Local profiles and the cache of n8n's.
    pub profiles: ProfileSettings,
    /// The token server.
    pub web: WebSettings,
    /// The agent worker.
    pub worker: WorkerSettings,
    /// LOG_FORMAT.
    pub log_format: LogFormat,
    /// `REDIS_URL`: state shared by every instance; `None` works alone.
    pub redis_url: Option<Secret>,
    /// Personal data may be written to the logs (`LOG_PERSONAL_DATA`).
    pub log_personal_data: bool,
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The setting's environment variable name, or the source that could not be read.
    pub name: String,
    /// What is wrong with it, and what would be right.
    pub why: String,
}

/// Every problem found, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Never empty.
    pub problems: Vec<Problem>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.problems.len();
        let noun = if count == 1 { "problem" } else { "problems" };
        write!(f, "the configuration has {count} {noun}:")?;
        for problem in &self.problems {
            write!(f, "\n  - {}: {}", problem.name, problem.why)?;
        }
        Ok(())
    }
}

impl Settings {
    /// Reads and checks the configuration for `role`, reporting every problem at once.
    pub fn load(sources: &Sources, role: Role) -> Result<Self, ConfigError> {
        let merged = sources.merge();
        let mut reader = Reader::new(&merged);
        let settings = read(&mut reader, role);
        reader.finish().map(|()| settings)
    }
}

fn read(r: &mut Reader<'_>, role: Role) -> Settings {
    let dev = matches!(role, Role::DevServer | Role::Dev);
    let livekit_url = r.url("LIVEKIT_URL", &["ws", "wss", "http", "https"], !dev && role != Role::Deliver);
    let external = livekit_url.is_some();
    let public_url = r.url("LIVEKIT_PUBLIC_URL", &["ws", "wss", "http", "https"], false);
    // The dev key pair only fits our own embedded server; a real one needs real keys.
    let embedded = dev && !(role == Role::Dev && external);
    let keys_required = !embedded && role != Role::Deliver;
    let api_key = r.string("LIVEKIT_API_KEY", keys_required).or_else(|| embedded.then(|| DEV_API_KEY.to_owned()));
    let api_secret =
        r.secret("LIVEKIT_API_SECRET", keys_required).or_else(|| embedded.then(|| Secret::new(DEV_API_SECRET)));
    let fallback = if role == Role::Dev { DEV_LIVEKIT_URL } else { "ws://unset.invalid" };
    let url = livekit_url.unwrap_or_else(|| Url::parse(fallback).expect("a constant, valid URL"));

    let chat_providers = format!("one of {}", registry::names(Kind::Llm).replace(", ", " or "));
    let llm_provider = r
        .choice(
            "LLM_PROVIDER",
            |v| Some(v.to_ascii_lowercase()).filter(|v| registry::exists(Kind::Llm, v)),
            &chat_providers,
        )
        .unwrap_or_else(|| registry::default_provider(Kind::Llm).to_owned());
    let llm_model = r.string("LLM_MODEL", false).unwrap_or_else(|| {
        registry::chat(&llm_provider).map(|chat| chat.default_model()).unwrap_or_default().to_owned()
    });
    let language = r.string("DEFAULT_LANGUAGE", true).unwrap_or_default();
    let voice = r.string("DEFAULT_VOICE", true).unwrap_or_default();
    if let Err(why) = catalog::check_default_voice(&language, &voice) {
        let name = if catalog::language(&language).is_none() { "DEFAULT_LANGUAGE" } else { "DEFAULT_VOICE" };
        r.problem(name, why);
    }
    let mut providers = ProviderSettings::default();
    for vendor in VENDORS {
        let account = vendor.account();
        let key = r.secret(account.key_setting, false);
        providers = providers.with_account(vendor.name(), key, r.base_url(account.base_url_setting));
    }
    if let Some(text) = r.string("PRICES", false) {
        match PriceTable::parse(&text) {
            Ok(prices) => providers.prices = prices,
            Err(problems) => r.problem("PRICES", problems.join("; ")),
        }
    }

    let agent_name = r.string("AGENT_NAME", false).unwrap_or_default();
    if let Some(bad) = agent_name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        r.problem("AGENT_NAME", format!("`{agent_name}` contains `{bad}`; use letters, digits, `-`, `_` and `.` only"));
    }

    let settings = Settings {
        livekit: LiveKitSettings {
            public_url: public_url.unwrap_or_else(|| url.clone()),
            url,
            external,
            api_key: api_key.unwrap_or_default(),
            api_secret: api_secret.unwrap_or_else(|| Secret::new("")),
        },
        agent_name,
        // Keys are required by the profiles that use them, which the worker checks at start.
        providers,
        defaults: ProfileDefaults { language, voice, llm_provider, llm_model },
        n8n: N8nSettings {
            base_url: r.url("N8N_BASE_URL", &["http", "https"], role == Role::Deliver),
            agent_config_path: r.path("N8N_WEBHOOK_AGENT_CONFIG"),
            lead_capture_path: r.path("N8N_WEBHOOK_LEAD_CAPTURE"),
            webhook_secret: r.secret("N8N_WEBHOOK_SECRET", false),
            spool_dir: PathBuf::from(r.string("SPOOL_DIR", true).unwrap_or_default()),
            keep_delivered: r.number("RECORDS_KEEP_DELIVERED", 0..=10_000),
        },
        profiles: ProfileSettings {
            dir: PathBuf::from(r.string("PROFILES_DIR", true).unwrap_or_default()),
            cache_ttl: Duration::from_secs(r.number("PROFILE_CACHE_TTL_SECS", 0..=86_400)),
        },
        web: WebSettings {
            host: r
                .parsed("WEB_HOST", "an IP address such as 0.0.0.0 or 127.0.0.1")
                .unwrap_or(IpAddr::from([0, 0, 0, 0])),
            port: r.number("WEB_PORT", 1..=65_535),
            dir: PathBuf::from(r.string("WEB_DIR", true).unwrap_or_default()),
            token_ttl: Duration::from_secs(r.number("TOKEN_TTL_SECS", 60..=86_400)),
            token_rate_limit_per_min: r.number("TOKEN_RATE_LIMIT_PER_MIN", 0..=100_000),
            api_rate_limit_per_min: r.number("API_RATE_LIMIT_PER_MIN", 0..=100_000),
            max_connections: r.number("WEB_MAX_CONNECTIONS", 1..=1_000_000),
            max_connections_per_client: r.number("WEB_MAX_CONNECTIONS_PER_CLIENT", 0..=1_000_000),
            cors_origins: r.origins("CORS_ORIGINS"),
            trust_forwarded_for: r.flag("TRUST_FORWARDED_FOR"),
            admin_token: r.secret("ADMIN_TOKEN", false),
            metrics_host: r
                .parsed("METRICS_HOST", "an IP address such as 0.0.0.0 or 127.0.0.1")
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
            metrics_port: r.number("METRICS_PORT", 1..=65_535),
        },
        worker: WorkerSettings {
            max_jobs: r.number("MAX_JOBS", 1..=10_000),
            load_threshold: Some(r.fraction("LOAD_THRESHOLD")).filter(|_| role != Role::Dev),
            drain_timeout: Duration::from_secs(r.number("DRAIN_TIMEOUT_SECS", 0..=86_400)),
            health_host: r
                .parsed("HEALTH_HOST", "an IP address such as 0.0.0.0 or 127.0.0.1")
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
            health_port: r.number("HEALTH_PORT", 1..=65_535),
        },
        log_format: r
            .choice(
                "LOG_FORMAT",
                |value| match value {
                    "text" => Some(LogFormat::Text),
                    "json" => Some(LogFormat::Json),
                    _ => None,
                },
                "text or json",
            )
            .unwrap_or(LogFormat::Text),
        log_personal_data: r.flag("LOG_PERSONAL_DATA"),
        redis_url: r.url("REDIS_URL", &["redis"], false).map(|url| Secret::new(url.to_string())),
    };
    if let Some(secret) = &settings.web.admin_token
        && secret.expose().len() < 16
    {
        r.problem(
            "ADMIN_TOKEN",
            "is shorter than 16 characters; use a long random value (e.g. `openssl rand -hex 24`)".to_owned(),
        );
    }
    settings
}

#[cfg(test)]
mod tests;
