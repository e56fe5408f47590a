//! One WebSocket connection: authentication, then a reader (client frames, here) and a
//! writer (`writer.rs`) that stop each other.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use poem::web::websocket::{CloseCode, Message, WebSocketStream};
use uuid::Uuid;

use super::{
    presence,
    sync::Sync,
    writer::{HEARTBEAT, Sink, Writer, text},
};
use crate::{
    auth::{CurrentUser, authenticate},
    bus::RedisLink,
    chat::{self, store},
    error::{ApiError, ErrorCode},
    limits::{Key, Limit},
    state::AppState,
};
use crate::{
    frames::{ClientFrame, MAX_REF_BYTES, PROTOCOL_VERSION, ServerFrame},
    hub::{Kill, Outgoing, close},
};

pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer silent this long (no frame, no pong) is dead.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const TYPING_EVERY: Duration = Duration::from_secs(2);

/// Runs a connection to its end. `header_token` comes from `Authorization: Bearer`.
pub async fn serve(state: AppState, socket: WebSocketStream, header_token: Option<String>) {
    // Shutdown waits for this task to end, its presence removed.
    let _task = state.hub.task();
    let (mut sink, mut stream) = socket.split();
    let token = match header_token {
        Some(t) => Some(t),
        None => match tokio::time::timeout(AUTH_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => match ClientFrame::parse(&t) {
                Ok(ClientFrame::Auth { token }) => Some(token),
                _ => None,
            },
            _ => None,
        },
    };
    let Some(token) = token else {
        refuse(
            &mut sink,
            close::UNAUTHENTICATED,
            "send a bearer token first",
        )
        .await;
        return;
    };
    let checked = state
        .with_socket_db(Box::pin(authenticate(
            &state.tokens,
            &state.db,
            &state.sessions,
            &token,
        )))
        .await;
    let (user, expires_at) = match checked {
        Ok(user) => {
            let exp = state.tokens.verify(&token).map(|c| c.exp).unwrap_or(0);
            (user, exp)
        }
        Err(err) => {
            let (code, reason) = match err.code {
                ErrorCode::TokenExpired => (close::TOKEN_EXPIRED, "authentication failed"),
                // The token may be fine: the database could not tell. Not the client's fault.
                ErrorCode::ServiceUnavailable => (
                    close::TRY_AGAIN_LATER,
                    "service unavailable; reconnect shortly",
                ),
                _ => (close::UNAUTHENTICATED, "authentication failed"),
            };
            let _ = sink
                .send(Message::Text(
                    text(&error_frame(None, &err)).unwrap_or_default(),
                ))
                .await;
            refuse(&mut sink, code, reason).await;
            return;
        }
    };
    // Each socket opened updates presence: openings are limited per user, and so are the
    // sockets open at once (counted in PostgreSQL's presence, on every instance).
    if let Err(err) = Box::pin(state.limits.check(Limit::Connects, Key::user(user.id))).await {
        too_many(&mut sink, &err).await;
        return;
    }
    let max = state.settings.rate_limits.max_connections_per_user;
    let announced = state
        .with_socket_db(Box::pin(presence::connected(&state, user.id, max)))
        .await;
    let contacts = match announced {
        Ok(Some(frames)) => frames,
        Ok(None) => {
            let mut err = ApiError::new(
                poem::http::StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                format!("At most {max} sockets may be open at once; close one first."),
            );
            err.retry_after = Some(HEARTBEAT.as_secs());
            too_many(&mut sink, &err).await;
            return;
        }
        // Other instances find this one through its presence rows: a socket they cannot
        // find would miss their frames, so with Redis it is refused until presence works.
        Err(err) if state.bus.redis_link() != RedisLink::Disabled => {
            tracing::warn!(error = %err, "presence unavailable; socket refused");
            refuse(
                &mut sink,
                close::TRY_AGAIN_LATER,
                "service unavailable; reconnect shortly",
            )
            .await;
            return;
        }
        Err(err) => {
            tracing::warn!(error = %err, "presence unavailable");
            state.hub.presence_missed();
            Vec::new()
        }
    };
    let (id, rx, kill) = state.hub.register(user.id, user.session_id);
    // What the user belongs to, read once registered: every frame committed after this
    // reaches the connection, every frame before is the client's to resume.
    let seed = state
        .with_socket_db(chat::log::memberships(&state.db, user.id))
        .await;
    let Ok((memberships, notifications)) = seed else {
        state.hub.unregister(user.id, id);
        refuse(
            &mut sink,
            close::TRY_AGAIN_LATER,
            "service unavailable; reconnect shortly",
        )
        .await;
        Box::pin(presence::disconnected(state, user.id)).await;
        return;
    };
    let sync = Sync::new(&memberships, notifications);
    let ready = ServerFrame::Ready {
        protocol: PROTOCOL_VERSION,
        user_id: user.id,
        session_id: user.session_id,
        heartbeat_secs: HEARTBEAT.as_secs(),
    };
    if sink
        .send(Message::Text(text(&ready).unwrap_or_default()))
        .await
        .is_err()
    {
        state.hub.unregister(user.id, id);
        Box::pin(presence::disconnected(state, user.id)).await;
        return;
    }
    let writer = Writer {
        state: state.clone(),
        user: user.id,
        sink,
        sync,
        seed: Some(memberships),
        kill: kill.clone(),
        expires_at,
    };
    let writer = tokio::spawn(writer.run(rx));
    contacts.iter().for_each(|f| reply(&state, user.id, id, f));
    read(&state, &user, &mut stream, &kill, id).await;
    kill.close(1000, "closed");
    let _ = writer.await;
    state.hub.unregister(user.id, id);
    Box::pin(presence::disconnected(state, user.id)).await;
}

async fn refuse(sink: &mut Sink, code: u16, reason: &str) {
    let _ = sink
        .send(Message::Close(Some((
            CloseCode::from(code),
            reason.to_owned(),
        ))))
        .await;
    let _ = sink.close().await;
}

/// Refuses a socket over the user's limits: an error frame saying when to retry, then 4029.
async fn too_many(sink: &mut Sink, err: &ApiError) {
    if let Some(t) = text(&error_frame(None, err)) {
        let _ = sink.send(Message::Text(t)).await;
    }
    refuse(sink, close::TOO_MANY_CONNECTIONS, "too many connections").await;
}

fn error_frame(reference: Option<String>, err: &ApiError) -> ServerFrame {
    let code = poem_openapi::types::ToJSON::to_json(&err.code)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", err.code));
    let message = match err.fields.first() {
        Some(f) => format!("{}: {}", f.field, f.message),
        None => err.message.clone(),
    };
    ServerFrame::Error {
        reference,
        code,
        message,
        retry_after: err.retry_after,
    }
}

/// Answers to this connection go through the hub's queue like every other frame, so the
/// writer stays the only one touching the socket.
fn reply(state: &AppState, user: Uuid, conn: u64, frame: &ServerFrame) {
    if let Some(t) = text(frame) {
        state.hub.send_to_connection(
            user,
            conn,
            Outgoing::Frame {
                event: None,
                text: Arc::from(t),
            },
        );
    }
}

/// Refuses a client frame.
fn invalid(state: &AppState, user: Uuid, conn: u64, code: &str, message: String) {
    let frame = ServerFrame::Error {
        reference: None,
        code: code.into(),
        message,
        retry_after: None,
    };
    reply(state, user, conn, &frame);
}

async fn read(
    state: &AppState,
    user: &CurrentUser,
    stream: &mut futures_util::stream::SplitStream<WebSocketStream>,
    kill: &Kill,
    conn: u64,
) {
    let mut typing_at: HashMap<Uuid, tokio::time::Instant> = HashMap::new();
    let mut first = true;
    loop {
        let next = tokio::select! {
            () = kill.token.cancelled() => return,
            next = tokio::time::timeout(IDLE_TIMEOUT, stream.next()) => next,
        };
        let message = match next {
            Err(_) => {
                kill.close(close::HEARTBEAT_TIMEOUT, "no sign of life");
                return;
            }
            Ok(None) | Ok(Some(Err(_))) => return,
            Ok(Some(Ok(m))) => m,
        };
        state
            .metrics
            .frames_in
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let raw = match message {
            Message::Text(t) => t,
            Message::Close(_) => return,
            // Pings are answered by the library; any frame proves the peer alive.
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Binary(_) => {
                invalid(
                    state,
                    user.id,
                    conn,
                    "invalid_frame",
                    "frames are JSON text".into(),
                );
                continue;
            }
        };
        let frame = match ClientFrame::parse(&raw) {
            Ok(f) => f,
            Err(err) => {
                let message = format!("not a protocol frame: {err}");
                invalid(state, user.id, conn, "invalid_frame", message);
                continue;
            }
        };
        if frame.reference().is_some_and(|r| r.len() > MAX_REF_BYTES) {
            let message = format!("ref must be at most {MAX_REF_BYTES} bytes");
            invalid(state, user.id, conn, "invalid_frame", message);
            continue;
        }
        if let Some(field) = frame.negative_number() {
            let message = format!("{field}: event numbers are 0 or more");
            invalid(state, user.id, conn, "validation_failed", message);
            continue;
        }
        if std::mem::take(&mut first) && !matches!(frame, ClientFrame::Resume { .. }) {
            state.hub.send_to_connection(user.id, conn, Outgoing::Live);
        }
        match frame {
            ClientFrame::Auth { .. } => reply(
                state,
                user.id,
                conn,
                &ServerFrame::Error {
                    reference: None,
                    code: "already_authenticated".into(),
                    message: "this connection is already authenticated".into(),
                    retry_after: None,
                },
            ),
            ClientFrame::Ping { reference } => {
                reply(state, user.id, conn, &ServerFrame::Pong { reference });
            }
            ClientFrame::Send {
                reference,
                conversation_id,
                body,
                client_msg_id,
            } => {
                // Shared with REST sends, so through Redis when configured: a send costs a
                // PostgreSQL transaction anyway, one more round trip is small beside it.
                if let Err(err) =
                    Box::pin(state.limits.check(Limit::Messages, Key::user(user.id))).await
                {
                    reply(state, user.id, conn, &error_frame(Some(reference), &err));
                    continue;
                }
                // Queued for the message writer (its own bounded queue: a full one refuses
                // at once), and answered when its batch commits, while this reader goes on
                // with the client's next frames: sends are stored in the order queued.
                let submitted =
                    state
                        .sends
                        .submit(user.id, conversation_id, &body, client_msg_id.as_deref());
                match submitted {
                    Ok(answer) => {
                        let (state, user) = (state.clone(), user.id);
                        tokio::spawn(async move {
                            let frame = match answer.await {
                                Ok((message, _)) => ServerFrame::Ack { reference, message },
                                Err(err) => error_frame(Some(reference), &err),
                            };
                            reply(&state, user, conn, &frame);
                        });
                    }
                    Err(err) => reply(state, user.id, conn, &error_frame(Some(reference), &err)),
                }
            }
            ClientFrame::Read {
                conversation_id,
                seq,
            } => {
                let marked = state
                    .with_socket_db(Box::pin(store::mark_read(
                        &state.db,
                        &state.bus,
                        user.id,
                        conversation_id,
                        seq,
                    )))
                    .await;
                if let Err(err) = marked {
                    reply(state, user.id, conn, &error_frame(None, &err));
                }
            }
            ClientFrame::Typing { conversation_id } => {
                let now = tokio::time::Instant::now();
                if typing_at
                    .get(&conversation_id)
                    .is_some_and(|t| now.duration_since(*t) < TYPING_EVERY)
                {
                    continue;
                }
                // Per process only, no Redis round trip per typing frame (README, "Rate
                // limits"): typing is ephemeral and cheap to drop.
                if let Err(err) = state.limits.check_local(Limit::Typing, Key::user(user.id)) {
                    reply(state, user.id, conn, &error_frame(None, &err));
                    continue;
                }
                // Typing is shed first when messages are queueing up.
                if state.sends.shedding() {
                    let err = chat::sender::overloaded();
                    reply(state, user.id, conn, &error_frame(None, &err));
                    continue;
                }
                typing_at.insert(conversation_id, now);
                let members = state
                    .with_socket_db(Box::pin(store::members(&state.db, conversation_id)))
                    .await;
                match members {
                    Ok(members) if members.iter().any(|m| m.user_id == user.id) => {
                        let others = members
                            .into_iter()
                            .map(|m| m.user_id)
                            .filter(|u| *u != user.id)
                            .collect();
                        let frame = ServerFrame::Typing {
                            conversation_id,
                            user_id: user.id,
                        };
                        Box::pin(chat::deliver(&state.bus, others, frame)).await;
                    }
                    Ok(_) => reply(
                        state,
                        user.id,
                        conn,
                        &error_frame(None, &ApiError::not_found("Conversation")),
                    ),
                    Err(err) => reply(state, user.id, conn, &error_frame(None, &err)),
                }
            }
            ClientFrame::Resume {
                conversations,
                notifications,
            } => {
                let resume = Outgoing::Resume {
                    conversations,
                    notifications,
                };
                state.hub.send_to_connection(user.id, conn, resume);
            }
        }
    }
}
