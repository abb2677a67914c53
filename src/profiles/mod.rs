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
pub use n8n::N8nClient;
pub use profile::{
    AgentProfile, LeadField, LeadFieldKind, LlmOptions, ProfileDoc, SttOptions, TtsOptions, TurnOptions, check_id,
};
pub use store::{FAILURE_RETRY, N8N_TIMEOUT, ProfileStore};
pub use tools::{ToolDef, Webhook};
pub use variables::{DEFAULT_TIME_ZONE, valid_name as valid_variable_name};

/// Why no profile could be had for an agent.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// PROFILES_DIR could not be read (at startup).
    #[error("profile directory {}: {source}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Local profile files that do not parse or validate (at startup).
    #[error("invalid local profiles:\n  - {}", problems.join("\n  - "))]
    InvalidLocal {
        /// One line per problem, naming the file and field.
        problems: Vec<String>,
    },
    /// The requested id is not a valid agent id (see [`check_id`]).
    #[error("invalid agent id: {0}")]
    InvalidId(String),
    /// Neither n8n nor a local file knows the id.
    #[error("unknown agent `{0}`: neither n8n nor profiles/{0}.toml has a profile with that id")]
    UnknownAgent(String),
    /// n8n failed and there is no local profile to fall back on; the call cannot start.
    #[error("agent `{id}` is unavailable: {reason}")]
    Unavailable {
        /// The agent id.
        id: String,
        /// What n8n answered, and what to fix.
        reason: String,
    },
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::config::{ProfileDefaults, Role, Settings, Sources};

    /// The built-in defaults, from the real settings loader.
    pub fn defaults() -> ProfileDefaults {
        Settings::load(&Sources::default(), Role::DevServer).expect("built-in settings are valid").defaults
    }
}
