//! The process's message bus: Redis pub/sub between instances, or in-process only.
//!
//! Publishing hands the message to this process's consumers at once (a local broadcast
//! channel) and queues it for Redis; one publisher task sends the queue to Redis in
//! pipelined batches, and one subscriber connection per process feeds the other instances'
//! messages into the same local channel (its own are skipped: every payload on Redis
//! carries its origin). So this instance never depends on Redis to reach its own clients:
//! with Redis down it keeps working as a single instance.
//!
//! Two kinds of channel: `tunelink:{topic}` reaches every instance (pattern subscription;
//! catalogue changes, revoked sessions, resyncs), and `tunelink-to:{instance}` reaches one
//! (deliveries to users: [`Bus::publish_to_users`] sends each to the instances that hold
//! one of its users, found in the presence table, so an instance's work does not grow
//! with the number of instances). With Redis Cluster, the second kind maps one to one onto
//! sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`): each instance's channel lives on one shard.
//!
//! Redis is transport only and may drop messages. Consumers receive [`BusEvent::Resync`]
//! whenever messages from other instances may have been missed (the subscriber
//! reconnected, or another instance could not publish for a while) and rebuild what they
//! derived from them (from PostgreSQL).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use deadpool_redis::redis;
use futures_util::StreamExt;
use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

const CHANNEL_PREFIX: &str = "tunelink:";
/// Prefix of the one channel each instance subscribes to alone (not matched by
/// `tunelink:*`).
const INSTANCE_PREFIX: &str = "tunelink-to:";
/// Bus messages this process's consumers may be behind before they must resync: large,
/// because under a connection storm the dispatcher can wait its turn for a while.
const LOCAL_CAPACITY: usize = 16_384;
/// Messages waiting for Redis; beyond, they are dropped (and the others told to resync).
const OUTBOX_CAPACITY: usize = 8192;
/// Most messages sent to Redis in one pipeline.
const BATCH: usize = 256;
/// Topic telling the other instances that messages from the origin were lost.
const RESYNC_TOPIC: &str = "_resync";
/// The subscriber pings Redis this often, so that a dead connection is noticed even when
/// nothing is published.
const PING_EVERY: Duration = Duration::from_secs(5);
const REDIS_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long a confirmed publish waits for its own echo from Redis.
const ECHO_WAIT: Duration = Duration::from_secs(1);

/// Confirmed publishes waiting for their echo, by number.
type Echoes = Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>>;

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
    /// This process: its channel's name, and the `instance_id` of its presence rows.
    instance: Uuid,
    local: broadcast::Sender<BusEvent>,
    /// `None` for an in-process bus. Items are (channel, payload).
    outbox: Option<mpsc::Sender<(Arc<str>, Arc<str>)>>,
    /// Where to find which instances hold a user (the presence table); `None` for an
    /// in-process bus.
    directory: Option<PgPool>,
    /// Confirmed publishes waiting for their echo, and the next number to give one.
    echoes: Echoes,
    next_echo: AtomicU64,
    /// For [`Bus::publish_confirmed`]: the pool and this process's origin tag.
    direct: Option<(deadpool_redis::Pool, Arc<str>)>,
    /// A message could not be queued for Redis: the publisher announces a resync.
    overflowed: Arc<AtomicBool>,
    /// The subscriber is connected and subscribed.
    subscribed: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Whether Redis is configured and, if so, whether this process is subscribed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisLink {
    Disabled,
    Up,
    Down,
}

impl Bus {
    /// In-process only: a single instance.
    pub fn local() -> Self {
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                instance: Uuid::new_v4(),
                local,
                outbox: None,
                directory: None,
                echoes: Echoes::default(),
                next_echo: AtomicU64::new(0),
                direct: None,
                overflowed: Arc::default(),
                subscribed: Arc::default(),
                tasks: Vec::new(),
            }),
        }
    }

    /// Through Redis: starts the publisher and the process's one subscriber connection.
    /// Connects nothing before returning: start-up never waits for Redis. `directory` is
    /// the database whose presence table tells which instance holds which user.
    pub fn redis(url: &str, pool: deadpool_redis::Pool, directory: PgPool) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let instance = Uuid::new_v4();
        let origin: Arc<str> = instance.simple().to_string().into();
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        let (outbox, queue) = mpsc::channel(OUTBOX_CAPACITY);
        let echoes = Echoes::default();
        let overflowed = Arc::new(AtomicBool::new(false));
        let subscribed = Arc::new(AtomicBool::new(false));
        let tasks = vec![
            tokio::spawn(publish_forever(
                pool.clone(),
                origin.clone(),
                queue,
                overflowed.clone(),
            )),
            tokio::spawn(subscribe_forever(
                client,
                origin.clone(),
                local.clone(),
                subscribed.clone(),
                echoes.clone(),
            )),
        ];
        Ok(Self {
            inner: Arc::new(Inner {
                instance,
                local,
                outbox: Some(outbox),
                directory: Some(directory),
                echoes: echoes.clone(),
                next_echo: AtomicU64::new(0),
                direct: Some((pool, origin)),
                overflowed,
                subscribed,
                tasks,
            }),
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<BusEvent> {
        self.inner.local.subscribe()
    }

    /// The state of the link to Redis, for readiness.
    pub fn redis_link(&self) -> RedisLink {
        match (
            &self.inner.outbox,
            self.inner.subscribed.load(Ordering::Relaxed),
        ) {
            (None, _) => RedisLink::Disabled,
            (Some(_), true) => RedisLink::Up,
            (Some(_), false) => RedisLink::Down,
        }
    }

    /// Publishes to every instance. This one gets the message at once, whatever the state
    /// of Redis; the others get it through Redis, or resync from PostgreSQL if it is lost.
    /// Never waits for Redis.
    pub async fn publish(&self, topic: &str, payload: &str) {
        let (topic, payload): (Arc<str>, Arc<str>) = (topic.into(), payload.into());
        self.queue(format!("{CHANNEL_PREFIX}{topic}").into(), payload.clone());
        let _ = self.inner.local.send(BusEvent::Message { topic, payload });
    }

    /// This process's id: its channel, and the instance of its presence rows.
    pub fn instance(&self) -> Uuid {
        self.inner.instance
    }

    /// Publishes to this instance and to the instances holding a connection of one of
    /// `users`, and no other. Call it after the change it tells is committed: an instance
    /// that records a connection later reads that change from PostgreSQL when the
    /// connection starts. If the presence table cannot be read, every instance gets it.
    pub async fn publish_to_users(&self, users: &[Uuid], topic: &str, payload: &str) {
        let (Some(_), Some(db)) = (&self.inner.outbox, &self.inner.directory) else {
            return self.publish(topic, payload).await;
        };
        let found = sqlx::query_scalar::<_, Uuid>(
            "SELECT DISTINCT instance_id FROM presence
             WHERE user_id = ANY($1) AND instance_id <> $2",
        )
        .bind(users)
        .bind(self.inner.instance)
        .fetch_all(db)
        .await;
        let Ok(instances) = found else {
            return self.publish(topic, payload).await;
        };
        let (topic, payload): (Arc<str>, Arc<str>) = (topic.into(), payload.into());
        if !instances.is_empty() {
            let direct: Arc<str> = format!("{topic}|{payload}").into();
            for instance in instances {
                self.queue(
                    format!("{INSTANCE_PREFIX}{}", instance.simple()).into(),
                    direct.clone(),
                );
            }
        }
        let _ = self.inner.local.send(BusEvent::Message { topic, payload });
    }

    /// Queues a message for Redis (a resync is announced if the queue is full).
    fn queue(&self, channel: Arc<str>, payload: Arc<str>) {
        if let Some(outbox) = &self.inner.outbox
            && outbox.try_send((channel, payload)).is_err()
        {
            self.inner.overflowed.store(true, Ordering::Relaxed);
        }
    }
}

impl Bus {
    /// Publishes like [`Bus::publish`], but when Redis is up, returns only once Redis has
    /// handed the message to every instance's subscription and this instance's own
    /// subscription has read it back (bounded by timeouts): for what must take effect at
    /// once everywhere, such as a revoked session. Redis writes a message to every
    /// subscriber in one pass, so by the time the echo is read here the other instances
    /// hold it too. With Redis down it does not wait (instances then trust no cache built
    /// on the bus).
    pub async fn publish_confirmed(&self, topic: &str, payload: &str) {
        let Some((pool, origin)) = &self.inner.direct else {
            return self.publish(topic, payload).await;
        };
        if self.redis_link() != RedisLink::Up {
            return self.publish(topic, payload).await;
        }
        let number = self.inner.next_echo.fetch_add(1, Ordering::Relaxed);
        let (echo_tx, echo) = oneshot::channel();
        if let Ok(mut waiting) = self.inner.echoes.lock() {
            waiting.insert(number, echo_tx);
        }
        let sent = tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut conn = pool.get().await.map_err(anyhow::Error::from)?;
            redis::cmd("PUBLISH")
                .arg(format!("{CHANNEL_PREFIX}{topic}"))
                .arg(format!("{origin}#{number}|{payload}"))
                .query_async::<i64>(&mut conn)
                .await?;
            Ok::<_, anyhow::Error>(())
        })
        .await;
        if matches!(sent, Ok(Ok(()))) {
            let _ = tokio::time::timeout(ECHO_WAIT, echo).await;
        }
        if let Ok(mut waiting) = self.inner.echoes.lock() {
            waiting.remove(&number);
        }
        match sent {
            Ok(Ok(())) => {
                let (topic, payload): (Arc<str>, Arc<str>) = (topic.into(), payload.into());
                let _ = self.inner.local.send(BusEvent::Message { topic, payload });
            }
            // Not confirmed: through the queue, like any other message (and a resync if
            // that fails too).
            _ => self.publish(topic, payload).await,
        }
    }
}

/// Sends queued messages to Redis in batches, in order. A batch that fails is dropped
/// (the other instances are told to resync once Redis answers again): waiting for Redis
/// would hold up every request that publishes.
async fn publish_forever(
    pool: deadpool_redis::Pool,
    origin: Arc<str>,
    mut queue: mpsc::Receiver<(Arc<str>, Arc<str>)>,
    overflowed: Arc<AtomicBool>,
) {
    let mut lost = false;
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        if lost || overflowed.swap(false, Ordering::Relaxed) {
            pipe.publish(format!("{CHANNEL_PREFIX}{RESYNC_TOPIC}"), &*origin)
                .ignore();
        }
        for (channel, payload) in batch.drain(..) {
            pipe.publish(&*channel, format!("{origin}|{payload}"))
                .ignore();
        }
        let sent = async {
            let mut conn = pool.get().await.map_err(anyhow::Error::from)?;
            tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(&mut conn)).await??;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        match sent {
            Ok(()) if lost => {
                tracing::info!("redis publishing again");
                lost = false;
            }
            Ok(()) => {}
            Err(err) if !lost => {
                tracing::warn!(error = %err, "redis publish failed; other instances will resync");
                lost = true;
            }
            Err(_) => {}
        }
    }
}

/// Keeps one pattern subscription alive, reconnecting with backoff.
async fn subscribe_forever(
    client: redis::Client,
    origin: Arc<str>,
    local: broadcast::Sender<BusEvent>,
    subscribed: Arc<AtomicBool>,
    echoes: Echoes,
) {
    let mut backoff = Duration::from_millis(100);
    let mut logged = false;
    loop {
        match connect(&client, &origin).await {
            Ok(pubsub) => {
                tracing::info!("redis subscriber connected");
                backoff = Duration::from_millis(100);
                logged = false;
                subscribed.store(true, Ordering::Relaxed);
                // Anything published while we were away is lost: tell consumers.
                let _ = local.send(BusEvent::Resync);
                listen(pubsub, &origin, &local, &echoes).await;
                subscribed.store(false, Ordering::Relaxed);
                tracing::warn!("redis subscriber disconnected; this instance serves alone");
            }
            // Logged once per outage, not at every retry.
            Err(err) if !logged => {
                tracing::warn!(error = %err, "redis subscriber cannot connect; retrying");
                logged = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn connect(client: &redis::Client, origin: &str) -> anyhow::Result<redis::aio::PubSub> {
    let mut pubsub = tokio::time::timeout(REDIS_TIMEOUT, client.get_async_pubsub()).await??;
    tokio::time::timeout(
        REDIS_TIMEOUT,
        pubsub.psubscribe(format!("{CHANNEL_PREFIX}*")),
    )
    .await??;
    tokio::time::timeout(
        REDIS_TIMEOUT,
        pubsub.subscribe(format!("{INSTANCE_PREFIX}{origin}")),
    )
    .await??;
    Ok(pubsub)
}

/// Forwards other instances' messages until the connection fails or stops answering pings.
async fn listen(
    pubsub: redis::aio::PubSub,
    origin: &str,
    local: &broadcast::Sender<BusEvent>,
    echoes: &Echoes,
) {
    let (mut sink, mut messages) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(msg) = msg else { return };
                if let Some(event) = decode(&msg, origin, echoes) {
                    let _ = local.send(event);
                }
            }
            _ = ping.tick() => {
                let pong = tokio::time::timeout(REDIS_TIMEOUT, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    return;
                }
            }
        }
    }
}

/// A message from another instance as a local event; `None` for our own (the echo of a
/// confirmed publish is handed to its waiter) or a foreign one.
fn decode(msg: &redis::Msg, origin: &str, echoes: &Echoes) -> Option<BusEvent> {
    let channel = msg.get_channel_name();
    let raw = msg.get_payload::<String>().ok()?;
    if channel.starts_with(INSTANCE_PREFIX) {
        // Sent to this instance alone: `origin|topic|payload`.
        let (from, rest) = raw.split_once('|')?;
        let (topic, payload) = rest.split_once('|')?;
        return (from != origin).then(|| BusEvent::Message {
            topic: topic.into(),
            payload: payload.into(),
        });
    }
    let topic = channel.strip_prefix(CHANNEL_PREFIX)?;
    if topic == RESYNC_TOPIC {
        return (raw != origin).then_some(BusEvent::Resync);
    }
    let (from, payload) = raw.split_once('|')?;
    // `origin` or, for a confirmed publish, `origin#number`.
    let (sender, echo) = match from.split_once('#') {
        Some((sender, number)) => (sender, number.parse::<u64>().ok()),
        None => (from, None),
    };
    if sender == origin {
        if let Some(number) = echo
            && let Some(waiter) = echoes.lock().ok().and_then(|mut w| w.remove(&number))
        {
            let _ = waiter.send(());
        }
        return None;
    }
    Some(BusEvent::Message {
        topic: topic.into(),
        payload: payload.into(),
    })
}
