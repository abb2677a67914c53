//! Providers' streaming WebSockets: opening one, with refused handshakes classified exactly
//! like REST answers (a bad key is refused the same way either way), and exchanging JSON text
//! messages and binary audio.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use super::http::{Auth, endpoint};
use super::{ProviderError, retry_after};
use crate::config::Secret;

pub(super) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The `ws`/`wss` URL of `path` below an `http`/`https` base, with `query`.
pub(super) fn url(
    provider: &'static str,
    base: &Url,
    path: &str,
    query: &[(&str, &str)],
) -> Result<Url, ProviderError> {
    let mut url = endpoint(provider, base, path)?;
    let scheme = match url.scheme() {
        "https" | "wss" => "wss",
        "http" | "ws" => "ws",
        other => {
            return Err(ProviderError::Protocol { provider, message: format!("cannot open a WebSocket over {other}") });
        }
    };
    url.set_scheme(scheme)
        .map_err(|()| ProviderError::Protocol { provider, message: format!("cannot open a WebSocket to {base}") })?;
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    Ok(url)
}

/// A provider socket reads in 16 KiB chunks rather than tungstenite's 128 KiB: a call keeps up
/// to three open (speech-to-text sockets waiting for the next utterance, the speech socket), and
/// their messages (transcripts, audio chunks) arrive in pieces of a few KiB anyway, so the larger
/// buffer only held memory. No message may exceed 16 MiB (an audio chunk is far smaller).
fn socket_config() -> tungstenite::protocol::WebSocketConfig {
    tungstenite::protocol::WebSocketConfig::default().read_buffer_size(16 * 1024).max_message_size(Some(16 << 20))
}

/// Opens the socket within `timeout`, the key in a header (never in the URL, which proxies log).
pub(super) async fn connect(
    provider: &'static str,
    url: &Url,
    auth: Auth,
    key: &Secret,
    timeout: Duration,
) -> Result<Socket, ProviderError> {
    let mut request = url.as_str().into_client_request().map_err(|e| ProviderError::Protocol {
        provider,
        message: format!("cannot build the WebSocket request: {e}"),
    })?;
    let (name, value) = auth.header(provider, key)?;
    request.headers_mut().insert(name, value);
    // Small messages (a flush, a sentence) must leave at once: with Nagle's algorithm one waits
    // for the server's delayed acknowledgement of the previous, 40 ms on Linux.
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(socket_config()), true);
    match tokio::time::timeout(timeout, connecting).await {
        Err(_) => Err(ProviderError::Timeout { provider, after: timeout }),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            // Deepgram repeats its message in a header; a body may be empty behind a proxy.
            let body = match response.headers().get("dg-error").and_then(|v| v.to_str().ok()) {
                Some(message) if body.trim().is_empty() => message.to_owned().into(),
                _ => body,
            };
            let after = retry_after(response.headers());
            Err(ProviderError::from_status(provider, response.status().as_u16(), after, &body, key))
        }
        Ok(Err(e)) => Err(ProviderError::Network { provider, message: e.to_string() }),
    }
}

pub(super) async fn send(provider: &'static str, socket: &mut Socket, message: &Value) -> Result<(), ProviderError> {
    socket
        .send(Message::text(message.to_string()))
        .await
        .map_err(|e| ProviderError::Network { provider, message: format!("sending failed: {e}") })
}

pub(super) async fn send_binary(
    provider: &'static str,
    socket: &mut Socket,
    bytes: Vec<u8>,
) -> Result<(), ProviderError> {
    socket
        .send(Message::binary(bytes))
        .await
        .map_err(|e| ProviderError::Network { provider, message: format!("sending failed: {e}") })
}

/// Closes the socket politely, within a second: the server may have gone already.
pub(super) async fn close(socket: &mut Socket) {
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
}

/// The next JSON message; a close, from either side, is an error because we only read while
/// waiting for an answer.
pub(super) async fn receive(provider: &'static str, socket: &mut Socket) -> Result<Value, ProviderError> {
    loop {
        let message = match socket.next().await {
            None => return Err(ProviderError::Network { provider, message: "the connection ended".into() }),
            Some(Err(e)) => return Err(ProviderError::Network { provider, message: e.to_string() }),
            Some(Ok(message)) => message,
        };
        match message {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str()).map_err(|e| ProviderError::Protocol {
                    provider,
                    message: format!(
                        "a message is not JSON ({e}): {}",
                        text.as_str().chars().take(120).collect::<String>()
                    ),
                });
            }
            Message::Close(frame) => {
                let why = frame.map(|f| format!(" (code {}: {})", u16::from(f.code), f.reason)).unwrap_or_default();
                return Err(ProviderError::Network {
                    provider,
                    message: format!("the server closed the connection{why}"),
                });
            }
            Message::Binary(_) => {
                return Err(ProviderError::Protocol { provider, message: "an unexpected binary message".into() });
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

/// The `data` of an `{"type":"error","data":{...}}` message as an error; Sarvam's STT puts the
/// text in `error`, its TTS in `message`; ElevenLabs sends such an object alone.
pub(super) fn error_from(provider: &'static str, data: &Value, key: &Secret) -> ProviderError {
    let text =
        ["message", "error"].iter().find_map(|k| data.get(*k).and_then(Value::as_str)).unwrap_or("no details given");
    ProviderError::from_error_code(provider, data.get("code").unwrap_or(&Value::Null), text, key)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn websocket_urls_follow_the_base_scheme() {
        let base = Url::parse("https://api.sarvam.ai").expect("valid");
        let url = url("sarvam", &base, "text-to-speech/ws", &[("model", "bulbul:v2")]).expect("a URL");
        assert_eq!(url.as_str(), "wss://api.sarvam.ai/text-to-speech/ws?model=bulbul%3Av2");
        let base = Url::parse("http://127.0.0.1:8080/sarvam").expect("valid");
        let url = super::url("sarvam", &base, "speech-to-text/ws", &[]).expect("a URL");
        assert_eq!(url.as_str(), "ws://127.0.0.1:8080/sarvam/speech-to-text/ws");
    }

    #[test]
    fn error_messages_read_either_field() {
        let key = Secret::new("k");
        let err = error_from("sarvam", &json!({"error": "too many", "code": "rate_limit_exceeded_error"}), &key);
        assert!(matches!(err, ProviderError::RateLimited { ref message, .. } if message == "too many"), "{err:?}");
        let err = error_from("sarvam", &json!({"message": "boom", "code": 500}), &key);
        assert!(matches!(err, ProviderError::Server { status: 500, ref message, .. } if message == "boom"), "{err:?}");
        let err = error_from("sarvam", &json!({}), &key);
        assert!(matches!(err, ProviderError::Protocol { .. }), "{err:?}");
    }
}
