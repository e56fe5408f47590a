//! Group commit of messages: one writer per process stores every send waiting for it in
//! one transaction, and answers each sender when that transaction commits.
//!
//! Sends from REST and the socket queue here (bounded). The writer takes everything
//! waiting (up to [`SendSettings::batch`]) as soon as it is free, so a send alone is
//! stored at once and a busy minute costs one commit per batch rather than one per
//! message. In one transaction it locks the batch's conversations in id order (two
//! instances never deadlock), reads who is a member once the locks are held, numbers the
//! messages per conversation in queue order, and writes the messages, their event-log
//! frames, the counters and the senders' read markers with one set-based statement. After
//! commit it publishes every frame of the batch in one bus message.
//!
//! When the queue is full, a send is refused at once with `overloaded` and a retry delay
//! (nothing stored): accepted messages keep their latency instead of every message
//! waiting for seconds.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    batch::{Request, Stored, copy, store_in},
    store::{CLIENT_MSG_ID_MAX, not_found, parse_body},
};
use crate::{
    bus::Bus,
    config::SendSettings,
    error::{ApiError, ErrorCode},
    frames::StreamId,
    hub::{self, Delivery},
    metrics::Metrics,
};

pub use super::batch::Sent;

/// Seconds a refused sender is told to wait.
const RETRY_AFTER_SECS: u64 = 1;

/// A queued send: what to store, and where its answer goes.
struct Job {
    request: Request,
    answer: oneshot::Sender<Result<Sent, ApiError>>,
}

/// The handle to this process's message writer.
#[derive(Clone)]
pub struct Sender {
    queue: mpsc::Sender<Job>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl Sender {
    /// Starts the writer task. It shares the runtime with the sockets on purpose: after
    /// each commit it hands the frames to local sockets itself, and waking their tasks
    /// from a runtime thread is cheap, while a thread of its own paid a cross-thread wake
    /// per socket (measured: BENCHMARKS.md, issue 13).
    pub fn start(db: &PgPool, bus: Bus, metrics: Arc<Metrics>, settings: SendSettings) -> Self {
        let capacity = settings.queue.max(1);
        let (queue, jobs) = mpsc::channel(capacity);
        let writer = Writer {
            db: db.clone(),
            bus,
            metrics: metrics.clone(),
        };
        tokio::spawn(writer.run(jobs, settings.batch.max(1)));
        Self {
            queue,
            capacity,
            metrics,
        }
    }

    /// Sends a message. A retry with the same `client_msg_id` answers the first message
    /// (`false`), never a twin. Refused with `overloaded` (503) when the writer is full.
    pub async fn send(
        &self,
        author: Uuid,
        conversation: Uuid,
        body: &str,
        client_msg_id: Option<&str>,
    ) -> Result<Sent, ApiError> {
        self.submit(author, conversation, body, client_msg_id)?
            .await
    }

    /// Queues a send and returns at once: checked and queued (its answer comes when its
    /// batch commits), or refused (`overloaded` when the writer is full, or a bad field).
    /// Sends are stored in the order they were submitted, so a socket can submit its
    /// client's sends one after another without waiting for each answer.
    pub fn submit(
        &self,
        author: Uuid,
        conversation: Uuid,
        body: &str,
        client_msg_id: Option<&str>,
    ) -> Result<impl Future<Output = Result<Sent, ApiError>> + Send + 'static, ApiError> {
        // Everything that could fail one row is checked here, before the batch: a bad
        // input must never roll back other people's messages.
        let body = parse_body(body).map_err(|e| ApiError::validation(vec![e]))?;
        let client_msg_id = client_msg_id.map(str::trim).filter(|c| !c.is_empty());
        if let Some(c) = client_msg_id {
            if c.len() > CLIENT_MSG_ID_MAX {
                return Err(ApiError::field(
                    "client_msg_id",
                    "too_long",
                    format!("client_msg_id must be at most {CLIENT_MSG_ID_MAX} bytes"),
                ));
            }
            if c.contains('\0') {
                return Err(ApiError::field(
                    "client_msg_id",
                    "invalid_characters",
                    "client_msg_id must not contain NUL (\\u0000) characters",
                ));
            }
        }
        let (answer, answered) = oneshot::channel();
        let job = Job {
            request: Request {
                author,
                conversation,
                body,
                client_msg_id: client_msg_id.map(str::to_owned),
            },
            answer,
        };
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.sends_overloaded.increment(1);
                return Err(overloaded());
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(ApiError::unavailable("The server is shutting down."));
            }
        }
        Ok(async move {
            answered
                .await
                .unwrap_or_else(|_| Err(ApiError::unavailable("The message writer stopped.")))
        })
    }

    /// How full the queue is, from 0 to 1: ephemeral work (typing, presence) is shed
    /// before messages when it passes one half.
    fn pressure(&self) -> f64 {
        let waiting = self.capacity.saturating_sub(self.queue.capacity());
        waiting as f64 / self.capacity as f64
    }

    /// Whether ephemeral work should be shed now.
    pub fn shedding(&self) -> bool {
        self.pressure() >= 0.5
    }
}

/// The refusal of a send that would have waited too long.
pub fn overloaded() -> ApiError {
    ApiError::overloaded(RETRY_AFTER_SECS)
}

/// The writer task's dependencies.
struct Writer {
    db: PgPool,
    bus: Bus,
    metrics: Arc<Metrics>,
}

impl Writer {
    async fn run(self, mut jobs: mpsc::Receiver<Job>, batch: usize) {
        let mut waiting = Vec::with_capacity(batch);
        // Everything waiting, as soon as the last batch is done: no fixed delay.
        while jobs.recv_many(&mut waiting, batch).await > 0 {
            let taken = std::mem::take(&mut waiting);
            self.store_batch(taken).await;
        }
    }

    /// Stores a batch and answers its senders. If the batch fails for a reason other than
    /// an unavailable database, each send is retried alone, so that one cannot fail the
    /// others.
    async fn store_batch(&self, jobs: Vec<Job>) {
        let (requests, answers): (Vec<Request>, Vec<_>) =
            jobs.into_iter().map(|j| (j.request, j.answer)).unzip();
        match self.store(&requests).await {
            Ok(stored) => {
                publish(&self.bus, &stored).await;
                for (answer, outcome) in answers.into_iter().zip(stored.outcomes) {
                    let _ = answer.send(outcome);
                }
            }
            Err(err) if requests.len() > 1 && err.code != ErrorCode::ServiceUnavailable => {
                self.metrics.send_batch_failures.increment(1);
                tracing::warn!(error = %err, sends = requests.len(), "a batch of sends failed; storing each alone");
                for (request, answer) in requests.iter().zip(answers) {
                    let outcome = match self.store(std::slice::from_ref(request)).await {
                        Ok(mut stored) => {
                            publish(&self.bus, &stored).await;
                            stored.outcomes.pop().unwrap_or_else(|| Err(not_found()))
                        }
                        Err(err) => Err(err),
                    };
                    let _ = answer.send(outcome);
                }
            }
            Err(err) => {
                for answer in answers {
                    let _ = answer.send(Err(copy(&err)));
                }
            }
        }
    }

    async fn store(&self, requests: &[Request]) -> Result<Stored, ApiError> {
        let started = std::time::Instant::now();
        let mut tx = self.db.begin().await?;
        let stored = store_in(&mut tx, requests).await?;
        tx.commit().await?;
        self.metrics.send_batch_time.record(started.elapsed());
        self.metrics.send_batches.increment(1);
        self.metrics
            .messages_stored
            .increment(stored.frames.len() as u64);
        Ok(stored)
    }
}

/// Publishes the batch's frames, in order, in one bus message.
async fn publish(bus: &Bus, stored: &Stored) {
    if stored.frames.is_empty() {
        return;
    }
    let deliveries: Vec<Delivery<'_>> = stored
        .frames
        .iter()
        .chain(&stored.withheld)
        .map(|(users, conversation, seq, text)| Delivery {
            users,
            event: Some((StreamId::Conversation(*conversation), *seq)),
            text,
        })
        .collect();
    hub::publish(bus, &deliveries).await;
}
