//! Headers that keep the page from being framed, fed foreign scripts, or used to reach servers
//! other than ours and LiveKit's, on every response of the token server.
//!
//! The page asks for the microphone, so a site that framed it could trick people into talking;
//! `frame-ancestors 'none'` (and `X-Frame-Options: DENY` for browsers without CSP level 2)
//! forbids framing. Scripts and styles come from this server only; the page connects to this
//! server and to the LiveKit server it is given (WebSocket, and HTTP for its validation and
//! region requests), nowhere else.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use url::Url;

/// LiveKit Cloud sends clients to regional hosts under the project's domain.
const LIVEKIT_CLOUD_DOMAINS: &[&str] = &["livekit.cloud", "livekit.run"];

/// The Content-Security-Policy for a page whose LiveKit server is `livekit` (the URL browsers
/// are given).
pub fn content_security_policy(livekit: &Url) -> String {
    let mut connect = vec!["'self'".to_owned()];
    if let Some(host) = livekit.host_str() {
        let secure = matches!(livekit.scheme(), "wss" | "https");
        let (ws, http) = if secure { ("wss", "https") } else { ("ws", "http") };
        let port = livekit.port().map(|port| format!(":{port}")).unwrap_or_default();
        connect.push(format!("{ws}://{host}{port}"));
        connect.push(format!("{http}://{host}{port}"));
        if let Some(domain) = LIVEKIT_CLOUD_DOMAINS.iter().find(|domain| host.ends_with(&format!(".{domain}"))) {
            connect.push(format!("wss://*.{domain}"));
            connect.push(format!("https://*.{domain}"));
        }
    }
    [
        "default-src 'self'".to_owned(),
        "script-src 'self'".to_owned(),
        "style-src 'self'".to_owned(),
        "img-src 'self' data:".to_owned(),
        format!("connect-src {}", connect.join(" ")),
        "object-src 'none'".to_owned(),
        "base-uri 'none'".to_owned(),
        "form-action 'self'".to_owned(),
        "frame-ancestors 'none'".to_owned(),
    ]
    .join("; ")
}

/// Sets the security headers on a response; `policy` is the Content-Security-Policy.
pub async fn headers(State(policy): State<Arc<HeaderValue>>, mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::clone(&policy));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("microphone=(self), camera=(), geolocation=(), payment=()"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(livekit: &str) -> String {
        content_security_policy(&Url::parse(livekit).expect("a URL"))
    }

    #[test]
    fn the_page_may_reach_itself_and_its_livekit_server_only() {
        let csp = policy("ws://127.0.0.1:7880");
        assert!(csp.contains("connect-src 'self' ws://127.0.0.1:7880 http://127.0.0.1:7880;"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        let csp = policy("wss://lk.example.com/livekit");
        assert!(csp.contains("connect-src 'self' wss://lk.example.com https://lk.example.com;"), "{csp}");
    }

    #[test]
    fn livekit_cloud_projects_may_use_their_regional_hosts() {
        let csp = policy("wss://project-1a2b.livekit.cloud");
        assert!(csp.contains("wss://project-1a2b.livekit.cloud https://project-1a2b.livekit.cloud"), "{csp}");
        assert!(csp.contains("wss://*.livekit.cloud https://*.livekit.cloud"), "{csp}");
        assert!(!policy("wss://evil-livekit.cloud.example").contains('*'));
    }
}
