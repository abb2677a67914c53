//! Logging set-up shared by the binaries, and keeping personal data out of the logs.
//!
//! What callers say, the leads they give, and participant identities and names (a SIP caller's
//! identity holds their phone number) are personal data. Logs travel to collectors and vendors
//! with weaker guarantees than the call records, so such values are written only through
//! [`personal`], which shows them only when `LOG_PERSONAL_DATA` asks for it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

static PERSONAL_DATA: AtomicBool = AtomicBool::new(false);

/// Installs the global subscriber. Levels come from `RUST_LOG` (default `info`), so operators
/// use the filter syntax they know.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
    let _already_set = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Lets [`personal`] show personal data in the logs (the `LOG_PERSONAL_DATA` setting).
pub fn log_personal_data(allowed: bool) {
    PERSONAL_DATA.store(allowed, Ordering::Relaxed);
    if allowed {
        tracing::warn!("LOG_PERSONAL_DATA is on: what callers say and tell is written to the logs");
    }
}

/// A personal value for a log line: itself when `LOG_PERSONAL_DATA` is on, else only its size.
pub fn personal(value: &str) -> Personal<'_> {
    Personal(value)
}

/// See [`personal`].
pub struct Personal<'a>(&'a str);

impl fmt::Display for Personal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if PERSONAL_DATA.load(Ordering::Relaxed) {
            f.write_str(self.0)
        } else {
            write!(f, "[{} characters withheld]", self.0.chars().count())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_values_show_only_their_size_unless_allowed() {
        assert_eq!(personal("+91 98765 43210").to_string(), "[15 characters withheld]");
        assert_eq!(personal("नमस्ते").to_string(), "[6 characters withheld]");
    }
}
