//! Agent profiles: from n8n when it knows the agent (cached), else from `profiles/*.toml`.

mod analysis;
mod cache;
mod local;
mod n8n;
mod profile;
mod store;
mod tools;
mod variables;

use std::path::PathBuf;

pub use analysis::{AnalysisOptions, SENTIMENTS};
pub use n8n::{N8nAnswer, N8nClient, N8nError, classify as classify_n8n_answer};
pub use profile::{
    AgentProfile, LeadField, LeadFieldKind, LlmOptions, ProfileDoc, SttOptions, TtsOptions, TurnOptions, check_id,
};
pub use store::{FAILURE_RETRY, N8N_TIMEOUT, ProfileStore};
pub use tools::{ToolDef, Webhook};
pub use variables::{DEFAULT_TIME_ZONE, valid_name as valid_variable_name};

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("profile directory {}: {source}", dir.display())]
    Dir { dir: PathBuf, source: std::io::Error },
    #[error("invalid local profiles:\n  - {}", problems.join("\n  - "))]
    InvalidLocal { problems: Vec<String> },
    #[error("invalid agent id: {0}")]
    InvalidId(String),
    #[error("unknown agent `{0}`: neither n8n nor profiles/{0}.toml has a profile with that id")]
    UnknownAgent(String),
    #[error("agent `{id}` is unavailable: {reason}")]
    Unavailable { id: String, reason: String },
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::config::{ProfileDefaults, Role, Settings, Sources};

    /// The built-in defaults, from the real settings loader.
    pub fn defaults() -> ProfileDefaults {
        Settings::load(&Sources::default(), Role::DevServer).expect("built-in settings are valid").defaults
    }
}
