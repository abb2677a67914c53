//! URLs as they may be shown: in logs, errors and responses, credentials never appear.
//!
//! Operators put basic-auth credentials in URLs (`https://user:password@n8n.example.com`), and
//! some put tokens in query strings. Every place that displays a URL goes through
//! [`redact_url`]; what is sent to browsers goes through [`without_credentials`].

use url::Url;

/// Query parameters whose values are hidden, matched as parts of the lower-cased name.
const SECRET_QUERY_KEYS: &[&str] = &["token", "key", "secret", "password", "passwd", "pwd", "auth", "sig"];
const HIDDEN: &str = "***";

/// `text` with any user and password replaced by `***`, and the values of query parameters that
/// look like secrets too. Text that is not a valid URL, as in a configuration error about
/// exactly that, is redacted from its last `//` to its last `@` before any query.
pub fn redact_url(text: &str) -> String {
    let shown = match Url::parse(text) {
        Ok(mut url) if url.has_host() => {
            if !url.username().is_empty() || url.password().is_some() {
                // Valid URLs with a host accept any user and password.
                let _ = url.set_password(None);
                let _ = url.set_username(HIDDEN);
            }
            url.to_string()
        }
        _ => redact_userinfo_text(text),
    };
    redact_query(&shown)
}

fn redact_userinfo_text(text: &str) -> String {
    let before_query = text.find(['?', '#']).unwrap_or(text.len());
    let Some(at) = text[..before_query].rfind('@') else { return text.to_owned() };
    let start = text[..at].rfind("//").map_or(0, |i| i + 2);
    format!("{}{HIDDEN}{}", &text[..start], &text[at..])
}

fn redact_query(text: &str) -> String {
    let (before_fragment, fragment) = text.split_at(text.find('#').unwrap_or(text.len()));
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            let pairs: Vec<String> = query.split('&').map(redact_pair).collect();
            format!("{path}?{}{fragment}", pairs.join("&"))
        }
        None => text.to_owned(),
    }
}

fn redact_pair(pair: &str) -> String {
    match pair.split_once('=') {
        Some((key, _)) if SECRET_QUERY_KEYS.iter().any(|secret| key.to_ascii_lowercase().contains(secret)) => {
            format!("{key}={HIDDEN}")
        }
        _ => pair.to_owned(),
    }
}

/// `url` without user and password, for URLs handed to others (browsers are told where LiveKit
/// is, never how the operator logs in to it).
pub fn without_credentials(url: &Url) -> Url {
    let mut shown = url.clone();
    // Only URLs that cannot have credentials refuse these, and those have none to remove.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_hidden_in_urls_valid_or_not() {
        for (text, shown) in [
            ("https://admin:hunter2@n8n.example.com/base", "https://***@n8n.example.com/base"),
            ("https://admin@n8n.example.com", "https://***@n8n.example.com/"),
            ("wss://key:s3cr3t@lk.example.com:7880", "wss://***@lk.example.com:7880/"),
            ("https://u:p@ss@host/x", "https://***@host/x"),
            ("htps//admin:hunter2@n8n.example.com", "htps//***@n8n.example.com"),
            ("admin:hunter2@n8n.example.com/path", "***@n8n.example.com/path"),
            ("https:/admin:hunter2@n8n.example.com", "https://***@n8n.example.com/"),
            ("ftp://admin:hunter2@n8n example.com", "ftp://***@n8n example.com"),
            ("https://n8n.example.com/a@b", "https://n8n.example.com/a@b"),
            ("https://n8n.example.com", "https://n8n.example.com/"),
        ] {
            assert_eq!(redact_url(text), shown, "{text}");
            assert!(!redact_url(text).contains("hunter2"));
        }
    }

    #[test]
    fn secret_looking_query_values_are_hidden() {
        assert_eq!(
            redact_url("wss://lk.example.com/rtc?access_token=eyJ.x.y&room=a#frag"),
            "wss://lk.example.com/rtc?access_token=***&room=a#frag"
        );
        assert_eq!(redact_url("https://h/?apiKey=1&Signature=2&page=3"), "https://h/?apiKey=***&Signature=***&page=3");
    }

    #[test]
    fn urls_for_browsers_lose_their_credentials() {
        let url = Url::parse("wss://key:s3cr3t@lk.example.com:7880/").expect("valid");
        assert_eq!(without_credentials(&url).as_str(), "wss://lk.example.com:7880/");
    }
}
