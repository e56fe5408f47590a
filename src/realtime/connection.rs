//! One WebSocket connection: authentication, then a reader (client frames) and a writer
//! (queued frames, written in batches: many `feed`s, one flush) that stop each other.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::Utc;
use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use poem::web::websocket::{CloseCode, Message, WebSocketStream};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    frames::{ClientFrame, MAX_REF_BYTES, PROTOCOL_VERSION, ServerFrame},
    hub::{Kill, Outgoing, close},
    presence,
};
use crate::{
    auth::{CurrentUser, authenticate},
    chat::{self, store},
    error::{ApiError, ErrorCode},
    limits::{Key, Limit},
    state::AppState,
};

pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
pub const HEARTBEAT: Duration = Duration::from_secs(25);
/// A peer silent this long (no frame, no pong) is dead.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Frames written before one flush.
const BATCH: usize = 64;
/// Most events replayed for one conversation; beyond, the client refetches over REST.
pub const REPLAY_LIMIT: i64 = 500;
const TYPING_EVERY: Duration = Duration::from_secs(2);
/// Live conversation frames wait this long for a `resume` before being sent anyway.
pub const RESUME_WINDOW: Duration = Duration::from_secs(2);
/// Most live frames held while waiting for `resume`.
const HOLD_LIMIT: usize = 1024;

type Sink = SplitSink<WebSocketStream, Message>;

/// The contiguous range of a conversation's events sent on this connection.
#[derive(Debug, Clone, Copy)]
struct Sent {
    first: i64,
    last: i64,
}

fn text(frame: &ServerFrame) -> Option<String> {
    serde_json::to_string(frame).ok()
}

/// Runs a connection to its end. `header_token` comes from `Authorization: Bearer`.
pub async fn serve(state: AppState, socket: WebSocketStream, header_token: Option<String>) {
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
        .with_socket_db(Box::pin(authenticate(&state, &token)))
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
        Err(err) => {
            tracing::warn!(error = %err, "presence unavailable");
            state.hub.presence_missed();
            Vec::new()
        }
    };
    let (id, rx, kill) = state.hub.register(user.id, user.session_id);
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
    let writer = tokio::spawn(write(
        state.clone(),
        user.id,
        sink,
        rx,
        kill.clone(),
        expires_at,
    ));
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
                reply(
                    state,
                    user.id,
                    conn,
                    &ServerFrame::Error {
                        reference: None,
                        code: "invalid_frame".into(),
                        message: "frames are JSON text".into(),
                        retry_after: None,
                    },
                );
                continue;
            }
        };
        let frame = match ClientFrame::parse(&raw) {
            Ok(f) => f,
            Err(err) => {
                reply(
                    state,
                    user.id,
                    conn,
                    &ServerFrame::Error {
                        reference: None,
                        code: "invalid_frame".into(),
                        message: format!("not a protocol frame: {err}"),
                        retry_after: None,
                    },
                );
                continue;
            }
        };
        if frame.reference().is_some_and(|r| r.len() > MAX_REF_BYTES) {
            reply(
                state,
                user.id,
                conn,
                &ServerFrame::Error {
                    reference: None,
                    code: "invalid_frame".into(),
                    message: format!("ref must be at most {MAX_REF_BYTES} bytes"),
                    retry_after: None,
                },
            );
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
                let sent = state
                    .with_socket_db(Box::pin(store::send(
                        state,
                        user.id,
                        conversation_id,
                        &body,
                        client_msg_id.as_deref(),
                    )))
                    .await;
                let answer = match sent {
                    Ok((message, _)) => ServerFrame::Ack { reference, message },
                    Err(err) => error_frame(Some(reference), &err),
                };
                reply(state, user.id, conn, &answer);
            }
            ClientFrame::Read {
                conversation_id,
                seq,
            } => {
                let marked = state
                    .with_socket_db(Box::pin(store::mark_read(
                        state,
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
            ClientFrame::Resume { conversations } => {
                state
                    .hub
                    .send_to_connection(user.id, conn, Outgoing::Resume(conversations));
            }
        }
    }
}

async fn write(
    state: AppState,
    user: Uuid,
    mut sink: Sink,
    mut rx: mpsc::Receiver<Outgoing>,
    kill: Arc<Kill>,
    expires_at: i64,
) {
    let mut positions: HashMap<Uuid, Sent> = HashMap::new();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    let until_expiry =
        Duration::from_secs(u64::try_from(expires_at - Utc::now().timestamp()).unwrap_or(0));
    let expiry = tokio::time::sleep(until_expiry);
    tokio::pin!(expiry);
    // Until the client resumes (or says it won't), live conversation frames are held, so
    // that a replay is never overtaken by newer frames.
    let mut held: Option<Vec<Outgoing>> = Some(Vec::new());
    let window = tokio::time::sleep(RESUME_WINDOW);
    tokio::pin!(window);
    loop {
        tokio::select! {
            () = kill.token.cancelled() => break,
            () = &mut window, if held.is_some() => {
                let ok = release(&state, user, &mut sink, &mut positions, &mut held).await;
                if !ok || sink.flush().await.is_err() {
                    kill.close(1006, "write failed");
                    break;
                }
            }
            () = &mut expiry => {
                kill.close(close::TOKEN_EXPIRED, "access token expired; reconnect with a fresh one");
                break;
            }
            _ = heartbeat.tick() => {
                if sink.send(Message::Ping(Vec::new())).await.is_err() {
                    kill.close(1006, "write failed");
                    break;
                }
            }
            item = rx.recv() => {
                let Some(first) = item else { break };
                let mut ok = dispatch(&state, user, &mut sink, &mut positions, &mut held, first).await;
                for _ in 1..BATCH {
                    if !ok { break; }
                    match rx.try_recv() {
                        Ok(next) => ok = dispatch(&state, user, &mut sink, &mut positions, &mut held, next).await,
                        Err(_) => break,
                    }
                }
                if !ok || sink.flush().await.is_err() {
                    kill.close(1006, "write failed");
                    break;
                }
            }
        }
    }
    let (code, reason) = kill.reason();
    let _ = sink
        .send(Message::Close(Some((
            CloseCode::from(code),
            reason.to_owned(),
        ))))
        .await;
    let _ = sink.close().await;
}

/// Holds live conversation frames while waiting for `resume`; otherwise handles the item.
async fn dispatch(
    state: &AppState,
    user: Uuid,
    sink: &mut Sink,
    positions: &mut HashMap<Uuid, Sent>,
    held: &mut Option<Vec<Outgoing>>,
    item: Outgoing,
) -> bool {
    match (held.as_mut(), item) {
        (Some(list), item @ Outgoing::Frame { event: Some(_), .. }) if list.len() < HOLD_LIMIT => {
            list.push(item);
            true
        }
        (Some(_), Outgoing::Resume(known)) => {
            Box::pin(resume(state, user, sink, positions, known)).await
                && release(state, user, sink, positions, held).await
        }
        (Some(_), Outgoing::Live) => release(state, user, sink, positions, held).await,
        (_, Outgoing::Live) => true,
        (_, item) => handle(state, user, sink, positions, item).await,
    }
}

/// Sends the held live frames (duplicates of replayed ones are dropped) and stops holding.
async fn release(
    state: &AppState,
    user: Uuid,
    sink: &mut Sink,
    positions: &mut HashMap<Uuid, Sent>,
    held: &mut Option<Vec<Outgoing>>,
) -> bool {
    for item in held.take().unwrap_or_default() {
        if !handle(state, user, sink, positions, item).await {
            return false;
        }
    }
    true
}

/// Feeds one queued item; `false` when the socket is gone.
async fn handle(
    state: &AppState,
    user: Uuid,
    sink: &mut Sink,
    positions: &mut HashMap<Uuid, Sent>,
    item: Outgoing,
) -> bool {
    match item {
        Outgoing::Frame { event: None, text } => {
            sink.feed(Message::Text(text.to_string())).await.is_ok()
        }
        Outgoing::Frame {
            event: Some((conversation, seq)),
            text,
        } => match positions.get(&conversation).copied() {
            Some(sent) if seq <= sent.last => true,
            Some(sent) if seq > sent.last + 1 => {
                Box::pin(catch_up(state, sink, positions, conversation, sent.last)).await
            }
            _ => {
                positions
                    .entry(conversation)
                    .and_modify(|s| s.last = seq)
                    .or_insert(Sent {
                        first: seq,
                        last: seq,
                    });
                sink.feed(Message::Text(text.to_string())).await.is_ok()
            }
        },
        Outgoing::Resume(known) => Box::pin(resume(state, user, sink, positions, known)).await,
        Outgoing::Live => true,
    }
}

/// A frame arrived past a gap (a lost bus message): fetch the missing ones, in order.
async fn catch_up(
    state: &AppState,
    sink: &mut Sink,
    positions: &mut HashMap<Uuid, Sent>,
    conversation: Uuid,
    after: i64,
) -> bool {
    replay(state, sink, positions, conversation, after, None)
        .await
        .is_some()
}

/// Sends the stored frames after `after` (and before `until`, when given); `None` if the
/// socket is gone.
async fn replay(
    state: &AppState,
    sink: &mut Sink,
    positions: &mut HashMap<Uuid, Sent>,
    conversation: Uuid,
    after: i64,
    until: Option<i64>,
) -> Option<u64> {
    let stored = state
        .with_socket_db(store::events_after(
            &state.db,
            conversation,
            after,
            REPLAY_LIMIT,
        ))
        .await;
    let frames = match stored {
        Ok(f) => f,
        Err(_) => {
            let frame = ServerFrame::ResyncRequired {
                conversation_id: Some(conversation),
                reason: "history unavailable right now; refetch over REST".into(),
            };
            return sink
                .feed(Message::Text(text(&frame)?))
                .await
                .ok()
                .map(|()| 0);
        }
    };
    let mut sent = 0;
    for frame in frames {
        let seq = frame["seq"].as_i64().unwrap_or(after);
        if until.is_some_and(|u| seq >= u) {
            break;
        }
        let range = positions.entry(conversation).or_insert(Sent {
            first: seq,
            last: seq,
        });
        range.first = range.first.min(seq);
        range.last = range.last.max(seq);
        sink.feed(Message::Text(frame.to_string())).await.ok()?;
        sent += 1;
    }
    Some(sent)
}

async fn resume(
    state: &AppState,
    user: Uuid,
    sink: &mut Sink,
    positions: &mut HashMap<Uuid, Sent>,
    known: HashMap<Uuid, i64>,
) -> bool {
    let known_memberships = state
        .with_socket_db(store::memberships(&state.db, user))
        .await;
    let memberships = match known_memberships {
        Ok(m) => m,
        Err(_) => {
            let frame = ServerFrame::ResyncRequired {
                conversation_id: None,
                reason: "resume unavailable right now; refetch over REST".into(),
            };
            return match text(&frame) {
                Some(t) => sink.feed(Message::Text(t)).await.is_ok(),
                None => false,
            };
        }
    };
    let mut replayed = 0;
    for (conversation, last) in memberships {
        let from = known.get(&conversation).copied().unwrap_or(0);
        // Live frames may already have been sent on this connection before the client
        // asked to resume: replay only the part before them.
        let (until, end) = match positions.get(&conversation) {
            Some(sent) if from >= sent.first - 1 => continue,
            Some(sent) => (Some(sent.first), sent.first - 1),
            None => (None, last),
        };
        if from >= end {
            continue;
        }
        if end - from > REPLAY_LIMIT {
            let frame = ServerFrame::ResyncRequired {
                conversation_id: Some(conversation),
                reason: format!("more than {REPLAY_LIMIT} events missed; refetch over REST"),
            };
            let Some(t) = text(&frame) else { return false };
            if sink.feed(Message::Text(t)).await.is_err() {
                return false;
            }
            positions
                .entry(conversation)
                .or_insert(Sent { first: last, last });
            continue;
        }
        match replay(state, sink, positions, conversation, from, until).await {
            Some(n) => replayed += n,
            None => return false,
        }
    }
    match text(&ServerFrame::Resumed { replayed }) {
        Some(t) => sink.feed(Message::Text(t)).await.is_ok(),
        None => false,
    }
}
