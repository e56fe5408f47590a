//! The process's message bus: Redis pub/sub between instances, or in-process only.
//!
//! One dedicated Redis subscriber connection per process (pattern `tunelink:*`) feeds a
//! local broadcast channel; the few local consumers (catalogue cache, real-time hub) filter
//! by topic. Publishing goes through the pooled connections. Redis is transport only and may
//! drop messages: after the subscriber reconnects, consumers receive [`BusEvent::Resync`] and
//! must rebuild what they derived from missed messages (from PostgreSQL).

use std::{sync::Arc, time::Duration};

use deadpool_redis::redis::{self, AsyncCommands};
use futures_util::StreamExt;
use tokio::sync::broadcast;

const CHANNEL_PREFIX: &str = "tunelink:";
const LOCAL_CAPACITY: usize = 4096;

#[derive(Debug, Clone)]
pub enum BusEvent {
    Message {
        topic: Arc<str>,
        payload: Arc<str>,
    },
    /// Messages may have been lost (the Redis subscription was re-established).
    Resync,
}

#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    local: broadcast::Sender<BusEvent>,
    redis: Option<deadpool_redis::Pool>,
    subscriber: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = &self.subscriber {
            task.abort();
        }
    }
}

impl Bus {
    /// In-process only: a single instance.
    pub fn local() -> Self {
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                local,
                redis: None,
                subscriber: None,
            }),
        }
    }

    /// Through Redis: starts the process's one subscriber connection.
    pub fn redis(url: &str, pool: deadpool_redis::Pool) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        let subscriber = tokio::spawn(subscribe_forever(client, local.clone()));
        Ok(Self {
            inner: Arc::new(Inner {
                local,
                redis: Some(pool),
                subscriber: Some(subscriber),
            }),
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<BusEvent> {
        self.inner.local.subscribe()
    }

    /// Publishes to every instance (this one included). When Redis fails, this instance
    /// still gets the message; the others will resync from PostgreSQL.
    pub async fn publish(&self, topic: &str, payload: &str) {
        if let Some(pool) = &self.inner.redis {
            let sent = async {
                let mut conn = pool.get().await.map_err(anyhow::Error::from)?;
                let _: i64 = conn
                    .publish(format!("{CHANNEL_PREFIX}{topic}"), payload)
                    .await?;
                Ok::<_, anyhow::Error>(())
            }
            .await;
            match sent {
                Ok(()) => return,
                Err(err) => tracing::warn!(error = %err, topic, "redis publish failed; local only"),
            }
        }
        let _ = self.inner.local.send(BusEvent::Message {
            topic: topic.into(),
            payload: payload.into(),
        });
    }
}

/// Keeps one pattern subscription alive, reconnecting with backoff.
async fn subscribe_forever(client: redis::Client, local: broadcast::Sender<BusEvent>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.psubscribe(format!("{CHANNEL_PREFIX}*")).await {
                Ok(()) => {
                    tracing::info!("redis subscriber connected");
                    backoff = Duration::from_millis(100);
                    // Anything published while we were away is lost: tell consumers.
                    let _ = local.send(BusEvent::Resync);
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        let channel = msg.get_channel_name();
                        let Some(topic) = channel.strip_prefix(CHANNEL_PREFIX) else {
                            continue;
                        };
                        let Ok(payload) = msg.get_payload::<String>() else {
                            continue;
                        };
                        let _ = local.send(BusEvent::Message {
                            topic: topic.into(),
                            payload: payload.into(),
                        });
                    }
                    tracing::warn!("redis subscriber disconnected");
                }
                Err(err) => tracing::warn!(error = %err, "redis psubscribe failed"),
            },
            Err(err) => tracing::warn!(error = %err, "redis subscriber cannot connect"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
