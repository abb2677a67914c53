//! One agent worker's connection to the dev server (`/agent`): registration within 10 s, then
//! availability answers, job status and worker status flow to the dispatcher, and availability
//! requests, assignments and terminations flow back.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use livekit_protocol as pb;
use pb::{server_message, worker_message};
use tokio::sync::mpsc;

use super::dispatch::{DispatchMsg, Dispatcher};
use super::ids;
use super::limits::WORKER_QUEUE;
use super::writer::{SignalWriter, Stalled};
use crate::livekit::signal::{self, FrameError, PROTOCOL_VERSION};

/// LiveKit closes a worker connection that has not registered within this.
const REGISTER_DEADLINE: Duration = Duration::from_secs(10);

pub(super) async fn run(ws: WebSocket, dispatcher: Dispatcher, send_timeout: Duration) {
    let (sink, mut ws) = ws.split();
    let writer = SignalWriter::spawn(sink, send_timeout, "an agent worker".into());
    let Some(register) = wait_for_registration(&mut ws, &writer).await else {
        writer.close().await;
        return;
    };
    let worker_id = ids::sid("AW_");
    let server_info = pb::ServerInfo {
        edition: pb::server_info::Edition::Standard as i32,
        version: env!("CARGO_PKG_VERSION").into(),
        protocol: i32::try_from(PROTOCOL_VERSION).unwrap_or(16),
        agent_protocol: 1,
        region: "dev".into(),
        node_id: "dev-server".into(),
        ..Default::default()
    };
    let response = pb::RegisterWorkerResponse {
        worker_id: worker_id.clone(),
        server_info: Some(server_info),
        ..Default::default()
    };
    if send(&writer, server_message::Message::Register(response)).is_err() {
        writer.close().await;
        return;
    }
    // Absent permissions mean the defaults LiveKit grants.
    let permissions = register.allowed_permissions.unwrap_or(pb::ParticipantPermission {
        can_subscribe: true,
        can_publish: true,
        can_publish_data: true,
        can_update_metadata: true,
        ..Default::default()
    });
    let (link, mut outgoing) = mpsc::channel(WORKER_QUEUE);
    dispatcher
        .send_wait(DispatchMsg::Registered {
            worker_id: worker_id.clone(),
            agent_name: register.agent_name.clone(),
            permissions,
            link,
        })
        .await;

    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Binary(bytes))) => match signal::decode_worker_message(&bytes) {
                    Ok(message) => {
                        if let Some(reply) = handle(&dispatcher, &worker_id, message).await
                            && let Err(e) = send(&writer, reply)
                        {
                            tracing::warn!(worker = %worker_id, "closing: {e}");
                            break;
                        }
                    }
                    Err(FrameError::Empty) => {}
                    Err(e) => {
                        tracing::warn!(worker = %worker_id, "closing: malformed worker frame ({e})");
                        break;
                    }
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            message = outgoing.recv() => match message {
                Some(message) => {
                    if let Err(e) = send(&writer, message) {
                        tracing::warn!(worker = %worker_id, "closing: {e}");
                        break;
                    }
                }
                // The dispatcher dropped this worker (it did not keep up).
                None => break,
            },
            () = writer.failed() => break,
        }
    }
    dispatcher.send_wait(DispatchMsg::Gone { worker_id }).await;
    writer.close().await;
}

/// The first message must be `register`; pings before it are answered.
async fn wait_for_registration(
    ws: &mut SplitStream<WebSocket>,
    writer: &SignalWriter,
) -> Option<pb::RegisterWorkerRequest> {
    let deadline = tokio::time::Instant::now() + REGISTER_DEADLINE;
    loop {
        let frame = match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(_) => return None,
            Err(_) => {
                tracing::warn!("closing: an agent worker did not register within {REGISTER_DEADLINE:?}");
                return None;
            }
        };
        let Message::Binary(bytes) = frame else { continue };
        match signal::decode_worker_message(&bytes) {
            Ok(worker_message::Message::Register(register)) if register.r#type == pb::JobType::JtRoom as i32 => {
                return Some(register);
            }
            Ok(worker_message::Message::Register(register)) => {
                tracing::warn!(job_type = register.r#type, "closing: this dev server dispatches room jobs only");
                return None;
            }
            Ok(worker_message::Message::Ping(ping)) => {
                send(writer, server_message::Message::Pong(pong(ping))).ok()?;
            }
            Ok(_) | Err(FrameError::Empty) => {}
            Err(e) => {
                tracing::warn!("closing: malformed worker frame ({e})");
                return None;
            }
        }
    }
}

/// Hands a worker's message to the dispatcher; returns the direct reply, if any.
async fn handle(
    dispatcher: &Dispatcher,
    worker_id: &str,
    message: worker_message::Message,
) -> Option<server_message::Message> {
    let worker_id = worker_id.to_owned();
    let message = match message {
        worker_message::Message::Availability(response) => DispatchMsg::Availability { worker_id, response },
        worker_message::Message::UpdateJob(update) => DispatchMsg::JobStatus { worker_id, update },
        worker_message::Message::UpdateWorker(status) => {
            let available = status.status.is_none_or(|s| s == pb::WorkerStatus::WsAvailable as i32) && !status.draining;
            DispatchMsg::Status { worker_id, available, load: status.load }
        }
        worker_message::Message::MigrateJob(migrate) => DispatchMsg::Migrate { worker_id, job_ids: migrate.job_ids },
        worker_message::Message::Ping(ping) => return Some(server_message::Message::Pong(pong(ping))),
        worker_message::Message::Register(_) | worker_message::Message::SimulateJob(_) => {
            tracing::debug!(worker = %worker_id, "ignored a worker message");
            return None;
        }
    };
    dispatcher.send_wait(message).await;
    None
}

fn pong(ping: pb::WorkerPing) -> pb::WorkerPong {
    pb::WorkerPong { last_timestamp: ping.timestamp, timestamp: chrono::Utc::now().timestamp_millis() }
}

fn send(writer: &SignalWriter, message: server_message::Message) -> Result<(), Stalled> {
    writer.send(signal::encode_server_message(message))
}
