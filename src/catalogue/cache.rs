//! The catalogue read cache: the whole list of each kind in memory, with an ETag.
//!
//! Reads never touch PostgreSQL while the snapshot is fresh. A write drops the snapshot on
//! its instance at once and publishes `catalogue` on the bus, so the other instances drop
//! theirs within milliseconds; since Redis may lose a message, snapshots also expire after
//! [`MAX_AGE`], and every snapshot is dropped when the bus resyncs.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, RwLock};

use super::{GenreRow, InstrumentRow, Versioned};
use crate::{
    bus::{Bus, BusEvent},
    error::ApiError,
};

pub const BUS_TOPIC: &str = "catalogue";
const MAX_AGE: Duration = Duration::from_secs(60);

/// The catalogue of one kind, sorted by name.
pub struct Snapshot<T> {
    pub items: Vec<T>,
    /// Changes whenever any entry is added, changed or removed.
    pub etag: String,
    loaded: Instant,
}

impl<T: Versioned> Snapshot<T> {
    fn new(items: Vec<T>) -> Self {
        let mut hash = Sha256::new();
        for item in &items {
            hash.update(item.id().as_bytes());
            hash.update(item.version().timestamp_micros().to_le_bytes());
        }
        hash.update((items.len() as u64).to_le_bytes());
        Self {
            items,
            etag: hex(&hash.finalize()[..12]),
            loaded: Instant::now(),
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Slot<T> {
    current: RwLock<Option<Arc<Snapshot<T>>>>,
    /// Only one reload at a time: concurrent misses wait for it instead of all querying.
    loading: Mutex<()>,
}

impl<T: Versioned> Slot<T> {
    fn new() -> Self {
        Self {
            current: RwLock::new(None),
            loading: Mutex::new(()),
        }
    }

    async fn fresh(&self) -> Option<Arc<Snapshot<T>>> {
        self.current
            .read()
            .await
            .as_ref()
            .filter(|s| s.loaded.elapsed() < MAX_AGE)
            .cloned()
    }

    async fn get(
        &self,
        load: impl Future<Output = Result<Vec<T>, ApiError>>,
    ) -> Result<Arc<Snapshot<T>>, ApiError> {
        if let Some(snapshot) = self.fresh().await {
            return Ok(snapshot);
        }
        let _loading = self.loading.lock().await;
        if let Some(snapshot) = self.fresh().await {
            return Ok(snapshot);
        }
        let mut items = load.await?;
        // Sorted here rather than by the database's collation, so that paging compares
        // exactly as this sort does.
        items.sort_by_cached_key(|item| (item.sort_name().to_lowercase(), item.id()));
        let snapshot = Arc::new(Snapshot::new(items));
        *self.current.write().await = Some(snapshot.clone());
        Ok(snapshot)
    }

    async fn invalidate(&self) {
        *self.current.write().await = None;
    }
}

pub struct CatalogueCache {
    instruments: Slot<InstrumentRow>,
    genres: Slot<GenreRow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Instruments,
    Genres,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Instruments => "instruments",
            Self::Genres => "genres",
        }
    }
}

impl CatalogueCache {
    /// A cache that listens to the bus for invalidations.
    pub fn start(bus: &Bus) -> Arc<Self> {
        let cache = Arc::new(Self {
            instruments: Slot::new(),
            genres: Slot::new(),
        });
        let mut events = bus.subscribe();
        let weak = Arc::downgrade(&cache);
        tokio::spawn(async move {
            loop {
                let event = events.recv().await;
                let Some(cache) = weak.upgrade() else { return };
                match event {
                    Ok(BusEvent::Message { topic, payload }) if &*topic == BUS_TOPIC => {
                        match &*payload {
                            "instruments" => cache.instruments.invalidate().await,
                            "genres" => cache.genres.invalidate().await,
                            _ => {}
                        }
                    }
                    Ok(BusEvent::Message { .. }) => {}
                    // Missed messages (lagging, or Redis reconnected): drop everything.
                    Ok(BusEvent::Resync)
                    | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        cache.instruments.invalidate().await;
                        cache.genres.invalidate().await;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        cache
    }

    pub async fn instruments(
        &self,
        load: impl Future<Output = Result<Vec<InstrumentRow>, ApiError>>,
    ) -> Result<Arc<Snapshot<InstrumentRow>>, ApiError> {
        self.instruments.get(load).await
    }

    pub async fn genres(
        &self,
        load: impl Future<Output = Result<Vec<GenreRow>, ApiError>>,
    ) -> Result<Arc<Snapshot<GenreRow>>, ApiError> {
        self.genres.get(load).await
    }

    /// After a write: drop the local snapshot now, and tell the other instances.
    pub async fn changed(&self, bus: &Bus, kind: Kind) {
        match kind {
            Kind::Instruments => self.instruments.invalidate().await,
            Kind::Genres => self.genres.invalidate().await,
        }
        bus.publish(BUS_TOPIC, kind.as_str()).await;
    }
}
