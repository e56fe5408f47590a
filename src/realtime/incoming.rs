//! A connection's client frames, handled in the order they arrive. A frame that needs
//! no waiting is handled at once; one that does (a rate limit through Redis, the
//! database) becomes the connection's `busy` work, and the next frame is read when it is
//! done, while frames queued for the client keep being written.

use poem::web::websocket::Message;
use tokio::time::Instant;
use uuid::Uuid;

use super::connection::{Busy, Connection, error_frame, reply};
use crate::{
    chat::{self, store},
    error::ApiError,
    frames::{ClientFrame, MAX_REF_BYTES, ServerFrame},
    hub::{Outgoing, Resume},
    limits::{Key, Limit},
};

const TYPING_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl Connection {
    /// Handles a message from the client; `false` when it closed the connection.
    pub(super) fn on_message(&mut self, message: Message) -> bool {
        self.state.metrics.frames_in.increment(1);
        let raw = match message {
            Message::Text(t) => t,
            Message::Close(_) => return false,
            // Pings are answered by the library; any frame proves the peer alive.
            Message::Ping(_) | Message::Pong(_) => return true,
            Message::Binary(_) => {
                self.invalid("invalid_frame", "frames are JSON text".into());
                return true;
            }
        };
        let frame = match ClientFrame::parse(&raw) {
            Ok(f) => f,
            Err(err) => {
                self.invalid("invalid_frame", format!("not a protocol frame: {err}"));
                return true;
            }
        };
        drop(raw);
        if frame.reference().is_some_and(|r| r.len() > MAX_REF_BYTES) {
            let message = format!("ref must be at most {MAX_REF_BYTES} bytes");
            self.invalid("invalid_frame", message);
            return true;
        }
        if let Some(field) = frame.negative_number() {
            let message = format!("{field}: event numbers are 0 or more");
            self.invalid("validation_failed", message);
            return true;
        }
        if std::mem::take(&mut self.first) && !matches!(frame, ClientFrame::Resume { .. }) {
            self.queue(Outgoing::Live);
        }
        self.busy = self.on_frame(frame);
        true
    }

    /// Handles a client frame; the work still to wait for, if any.
    fn on_frame(&mut self, frame: ClientFrame) -> Option<Busy> {
        let (state, user, conn) = (self.state.clone(), self.user, self.id);
        match frame {
            ClientFrame::Auth { .. } => {
                let frame = ServerFrame::Error {
                    reference: None,
                    code: "already_authenticated".into(),
                    message: "this connection is already authenticated".into(),
                    retry_after: None,
                };
                reply(&state, user, conn, &frame);
                None
            }
            ClientFrame::Ping { reference } => {
                reply(&state, user, conn, &ServerFrame::Pong { reference });
                None
            }
            ClientFrame::Send {
                reference,
                conversation_id,
                body,
                client_msg_id,
            } => Some(Box::pin(async move {
                // Shared with REST sends, so through Redis when configured: a send costs a
                // PostgreSQL transaction anyway, one more round trip is small beside it.
                if let Err(err) = state.limits.check(Limit::Messages, Key::user(user)).await {
                    reply(&state, user, conn, &error_frame(Some(reference), &err));
                    return;
                }
                // Queued for the message writer (its own bounded queue: a full one refuses
                // at once), and answered when its batch commits, while this connection
                // goes on with the client's next frames: sends are stored in the order
                // queued.
                let submitted =
                    state
                        .sends
                        .submit(user, conversation_id, &body, client_msg_id.as_deref());
                match submitted {
                    Ok(answer) => {
                        tokio::spawn(async move {
                            let frame = match answer.await {
                                Ok((message, _)) => ServerFrame::Ack { reference, message },
                                Err(err) => error_frame(Some(reference), &err),
                            };
                            reply(&state, user, conn, &frame);
                        });
                    }
                    Err(err) => reply(&state, user, conn, &error_frame(Some(reference), &err)),
                }
            })),
            ClientFrame::Read {
                conversation_id,
                seq,
            } => Some(Box::pin(async move {
                let marked = state
                    .with_socket_db(store::mark_read(
                        &state.db,
                        &state.bus,
                        user,
                        conversation_id,
                        seq,
                    ))
                    .await;
                if let Err(err) = marked {
                    reply(&state, user, conn, &error_frame(None, &err));
                }
            })),
            ClientFrame::Typing { conversation_id } => self.typing(conversation_id),
            ClientFrame::Resume {
                conversations,
                notifications,
            } => {
                self.queue(Outgoing::Resume(Box::new(Resume {
                    conversations,
                    notifications,
                })));
                None
            }
        }
    }

    fn typing(&mut self, conversation_id: Uuid) -> Option<Busy> {
        let (state, user, conn) = (self.state.clone(), self.user, self.id);
        let now = Instant::now();
        if self
            .typing_at
            .get(&conversation_id)
            .is_some_and(|t| now.duration_since(*t) < TYPING_EVERY)
        {
            return None;
        }
        // Per process only, no Redis round trip per typing frame (README, "Rate limits"):
        // typing is ephemeral and cheap to drop.
        if let Err(err) = state.limits.check_local(Limit::Typing, Key::user(user)) {
            reply(&state, user, conn, &error_frame(None, &err));
            return None;
        }
        // Typing is shed first when messages are queueing up.
        if state.sends.shedding() {
            let err = chat::sender::overloaded();
            reply(&state, user, conn, &error_frame(None, &err));
            return None;
        }
        self.typing_at.insert(conversation_id, now);
        Some(Box::pin(async move {
            let members = state
                .with_socket_db(store::members(&state.db, conversation_id))
                .await;
            match members {
                Ok(members) if members.iter().any(|m| m.user_id == user) => {
                    let others = members
                        .into_iter()
                        .map(|m| m.user_id)
                        .filter(|u| *u != user)
                        .collect();
                    let frame = ServerFrame::Typing {
                        conversation_id,
                        user_id: user,
                    };
                    chat::deliver(&state.bus, others, frame).await;
                }
                Ok(_) => {
                    let err = ApiError::not_found("Conversation");
                    reply(&state, user, conn, &error_frame(None, &err));
                }
                Err(err) => reply(&state, user, conn, &error_frame(None, &err)),
            }
        }))
    }

    /// Queues an item for this connection behind what is already queued.
    fn queue(&self, item: Outgoing) {
        self.state.hub.send_to_connection(self.user, self.id, item);
    }

    /// Refuses a client frame.
    fn invalid(&self, code: &str, message: String) {
        let frame = ServerFrame::Error {
            reference: None,
            code: code.into(),
            message,
            retry_after: None,
        };
        reply(&self.state, self.user, self.id, &frame);
    }
}
