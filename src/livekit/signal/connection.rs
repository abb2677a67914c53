//! Opening a signal WebSocket, with LiveKit's way of saying why a join was refused.

use std::time::Duration;

use futures_util::StreamExt;
use livekit_protocol::signal_response;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use super::ConnectError;
use super::frames::{FrameError, decode_response};
use super::url::validate_url;

/// The signal WebSocket, over TLS for wss URLs.
pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// LiveKit answers a join with its first frame at once; far longer means something is wrong.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the WebSocket at `url` with the token as a bearer header (never in the URL, so it stays
/// out of proxy logs) and returns it with the server's first message.
pub async fn open(url: &Url, token: &str) -> Result<(WsStream, signal_response::Message), ConnectError> {
    if token.trim().is_empty() {
        return Err(ConnectError::InvalidToken("the token is empty".into()));
    }
    let mut request = url.as_str().into_client_request().map_err(|e| ConnectError::InvalidUrl(e.to_string()))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| ConnectError::InvalidToken("it contains characters not allowed in an HTTP header".into()))?;
    request.headers_mut().insert("authorization", bearer);
    // Signalling messages are small and latency-bound: no Nagle delay.
    let connecting = tokio_tungstenite::connect_async_with_config(request, None, true);
    let (mut ws, _) = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => {
            return Err(ConnectError::Unreachable(format!("{} did not answer within {CONNECT_TIMEOUT:?}", host(url))));
        }
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .map(|b| b.trim().to_owned())
                .unwrap_or_default();
            let reason = if body.is_empty() { validation_reason(url, token).await.unwrap_or_default() } else { body };
            return Err(ConnectError::Refused { status, reason });
        }
        Ok(Err(e)) => return Err(ConnectError::Unreachable(format!("{}: {e}", host(url)))),
        Ok(Ok(connected)) => connected,
    };
    let first = tokio::time::timeout(FIRST_FRAME_TIMEOUT, next_message(&mut ws)).await.map_err(|_| {
        ConnectError::Protocol(format!("the server sent nothing within {FIRST_FRAME_TIMEOUT:?} of the join"))
    })??;
    Ok((ws, first))
}

/// The next signalling message, skipping pings and messages this build does not know.
pub async fn next_message(ws: &mut WsStream) -> Result<signal_response::Message, ConnectError> {
    loop {
        let frame = ws.next().await.ok_or_else(|| ConnectError::Protocol("the server closed the connection".into()))?;
        match frame.map_err(|e| ConnectError::Protocol(e.to_string()))? {
            Message::Binary(bytes) => match decode_response(&bytes) {
                Ok(message) => return Ok(message),
                Err(FrameError::Empty) => {}
                Err(e) => return Err(ConnectError::Protocol(e.to_string())),
            },
            Message::Close(frame) => {
                let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                return Err(ConnectError::Protocol(format!("the server closed the connection ({reason})")));
            }
            _ => {}
        }
    }
}

/// Asks `/rtc/validate` why the server refused, as LiveKit's own clients do.
async fn validation_reason(url: &Url, token: &str) -> Option<String> {
    let response =
        reqwest::Client::new().get(validate_url(url)).bearer_auth(token).timeout(CONNECT_TIMEOUT).send().await.ok()?;
    response.text().await.ok().map(|text| text.trim().to_owned()).filter(|text| !text.is_empty())
}

fn host(url: &Url) -> String {
    format!("{}:{}", url.host_str().unwrap_or_default(), url.port_or_known_default().unwrap_or_default())
}
