//! The URLs a participant connects to.

use url::Url;

use super::ConnectError;
use crate::config::redact_url;

/// The signal protocol we speak. 16 gets every feature an agent uses (LeaveRequest actions,
/// OK RequestResponses) without packet trailers (protocol 17), which carry nothing for audio-only.
pub const PROTOCOL_VERSION: u32 = 16;

/// Join options carried in the `/rtc` query string.
#[derive(Debug, Clone, Default)]
pub struct JoinParams {
    /// Ask the server to subscribe us to every track (`auto_subscribe=1`).
    pub auto_subscribe: bool,
}

/// `ws(s)://host[/prefix]/rtc?...` from a LiveKit URL given as ws, wss, http or https.
pub fn rtc_url(base: &str, params: &JoinParams) -> Result<Url, ConnectError> {
    let mut url = endpoint(base, "rtc", true)?;
    url.query_pairs_mut()
        .append_pair("protocol", &PROTOCOL_VERSION.to_string())
        .append_pair("client_protocol", "1")
        .append_pair("sdk", "rust")
        .append_pair("version", env!("CARGO_PKG_VERSION"))
        .append_pair("auto_subscribe", if params.auto_subscribe { "1" } else { "0" })
        .append_pair("adaptive_stream", "0");
    Ok(url)
}

/// The plain-HTTP twin of a join URL, which answers why a join was refused.
pub fn validate_url(join: &Url) -> Url {
    let mut url = join.clone();
    let scheme = if url.scheme() == "wss" { "https" } else { "http" };
    url.set_scheme(scheme).expect("http and https are valid schemes for a ws URL");
    let path = format!("{}/validate", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

/// Joins `path` onto the server URL, switching http(s) to ws(s) when `websocket`.
pub fn endpoint(base: &str, path: &str, websocket: bool) -> Result<Url, ConnectError> {
    let shown = redact_url(base);
    let mut url = Url::parse(base.trim()).map_err(|e| ConnectError::InvalidUrl(format!("`{shown}`: {e}")))?;
    let scheme = match (url.scheme(), websocket) {
        ("ws" | "http", true) => "ws",
        ("wss" | "https", true) => "wss",
        ("ws" | "http", false) => "http",
        ("wss" | "https", false) => "https",
        (other, _) => {
            return Err(ConnectError::InvalidUrl(format!("`{shown}`: scheme `{other}` is not ws, wss, http or https")));
        }
    };
    if url.host().is_none() {
        return Err(ConnectError::InvalidUrl(format!("`{shown}` has no host")));
    }
    url.set_scheme(scheme).map_err(|()| ConnectError::InvalidUrl(format!("`{shown}` cannot use {scheme}")))?;
    let joined = format!("{}/{path}", url.path().trim_end_matches('/'));
    url.set_path(&joined);
    url.set_query(None);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_join_url_from_any_scheme() {
        let url = rtc_url("https://lk.example.com/base/", &JoinParams { auto_subscribe: true }).expect("valid");
        assert_eq!(url.scheme(), "wss");
        assert_eq!(url.path(), "/base/rtc");
        let query: Vec<_> = url.query_pairs().map(|(k, v)| format!("{k}={v}")).collect();
        for expected in ["protocol=16", "sdk=rust", "auto_subscribe=1"] {
            assert!(query.contains(&expected.to_owned()), "{query:?}");
        }
        assert_eq!(
            rtc_url("ws://127.0.0.1:7880", &JoinParams::default()).expect("valid").as_str().split('?').next(),
            Some("ws://127.0.0.1:7880/rtc")
        );
        assert_eq!(validate_url(&url).path(), "/base/rtc/validate");
        assert_eq!(validate_url(&url).scheme(), "https");
    }

    #[test]
    fn refuses_what_is_not_a_livekit_url() {
        for bad in ["", "lk.example.com", "ftp://lk.example.com", "ws://"] {
            assert!(matches!(rtc_url(bad, &JoinParams::default()), Err(ConnectError::InvalidUrl(_))), "{bad}");
        }
    }
}
