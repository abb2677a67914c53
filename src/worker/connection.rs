//! The worker's WebSocket to LiveKit's `/agent` endpoint.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use livekit_api::access_token::{AccessToken, VideoGrants};
use livekit_protocol as pb;
use pb::{server_message, worker_message};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::config::{Secret, redact_url};
use crate::livekit::signal::{self, FrameError, WsStream};

/// The worker protocol version we speak (LiveKit's agents protocol 1).
const AGENT_PROTOCOL: &str = "1";
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

pub struct AgentSocket {
    ws: WsStream,
}

/// Connects and registers; returns the socket and our worker id.
pub async fn register(
    url: &str,
    api_key: &str,
    api_secret: &Secret,
    register: worker_message::Message,
) -> Result<(AgentSocket, String), String> {
    let mut endpoint = signal::endpoint(url, "agent", true).map_err(|e| e.to_string())?;
    endpoint.query_pairs_mut().append_pair("protocol", AGENT_PROTOCOL);
    let token = AccessToken::with_api_key(api_key, api_secret.expose())
        .with_grants(VideoGrants { agent: true, ..VideoGrants::default() })
        .with_ttl(Duration::from_secs(3600))
        .to_jwt()
        .map_err(|e| format!("cannot sign the worker token: {e}"))?;
    let mut request = endpoint.as_str().into_client_request().map_err(|e| e.to_string())?;
    let bearer = format!("Bearer {token}").parse().map_err(|_| "the worker token is not a valid header".to_owned())?;
    request.headers_mut().insert("authorization", bearer);
    let (ws, _) =
        match tokio::time::timeout(REGISTER_TIMEOUT, tokio_tungstenite::connect_async_with_config(request, None, true))
            .await
        {
            Err(_) => {
                return Err(format!("{} did not answer within {REGISTER_TIMEOUT:?}", redact_url(endpoint.as_str())));
            }
            Ok(Err(tungstenite::Error::Http(response))) => {
                let body =
                    response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().trim().to_owned();
                return Err(format!("LiveKit refused the worker with HTTP {}: {body}", response.status().as_u16()));
            }
            Ok(Err(e)) => return Err(format!("cannot reach {}: {e}", redact_url(endpoint.as_str()))),
            Ok(Ok(connected)) => connected,
        };
    let mut socket = AgentSocket { ws };
    socket.send(register).await?;
    let answer = tokio::time::timeout(REGISTER_TIMEOUT, socket.next())
        .await
        .map_err(|_| "LiveKit did not confirm the registration".to_owned())??;
    match answer {
        server_message::Message::Register(registered) => Ok((socket, registered.worker_id)),
        other => Err(format!("expected the registration answer first, got {other:?}")),
    }
}

impl AgentSocket {
    pub async fn send(&mut self, message: worker_message::Message) -> Result<(), String> {
        self.ws
            .send(Message::Binary(signal::encode_worker_message(message).into()))
            .await
            .map_err(|e| format!("the connection to LiveKit failed: {e}"))
    }

    /// The next message from LiveKit, skipping ones this build does not know.
    pub async fn next(&mut self) -> Result<server_message::Message, String> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Binary(bytes))) => match signal::decode_server_message(&bytes) {
                    Ok(message) => return Ok(message),
                    Err(FrameError::Empty) => {}
                    Err(e) => return Err(e.to_string()),
                },
                Some(Ok(Message::Close(_))) | None => return Err("LiveKit closed the worker connection".into()),
                Some(Err(e)) => return Err(format!("the worker connection failed: {e}")),
                Some(Ok(_)) => {}
            }
        }
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }
}
