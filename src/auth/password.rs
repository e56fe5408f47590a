//! argon2id password hashing, off the async runtime, with bounded concurrency and bounded
//! memory.
//!
//! Each hash takes ~19 MiB and ~20 ms of a core (OWASP parameters). Hashing runs in
//! `spawn_blocking` behind a semaphore, so a login storm queues here instead of starving the
//! runtime; a request that waits too long gets a 503 instead of piling up.
//!
//! The 19 MiB are not allocated per hash. With a fresh block vector per hash (what
//! `Argon2::hash_password` does), glibc served each one from the malloc arena of whichever
//! blocking-pool thread ran it and kept the freed memory in those arenas: one instance went
//! from 23 to 485 MiB during 1,000 logins and stayed there (issue 20). Instead each permit
//! comes with one buffer from a [`MemoryPool`]: a buffer is made only while a permit is held
//! and goes back before the permit does, so there are never more buffers than permits and
//! they are reused from one hash to the next. argon2 writes every block before it reads it,
//! so a reused buffer needs no clearing.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::{self, Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{domain::Password, error::ApiError};

/// How long a request may queue for a hashing slot before it is told to retry.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    memory: Arc<MemoryPool>,
    /// Verified against when the account does not exist, so that an unknown login takes as
    /// long as a wrong password.
    dummy_hash: Arc<str>,
}

/// OWASP: argon2id, m = 19 MiB, t = 2, p = 1. New hashes are made with these; stored hashes
/// are verified with the parameters they carry.
fn params() -> Params {
    // These constants are valid, so `new` cannot fail; fall back to the crate default (the
    // same values) rather than panic regardless.
    Params::new(19 * 1024, 2, 1, None).unwrap_or_default()
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
}

/// Reusable argon2 memory, one buffer per hash running at once.
struct MemoryPool {
    free: Mutex<Vec<Vec<Block>>>,
    /// Blocks in each buffer: what [`params`] needs.
    blocks: usize,
    /// Buffers made so far (they are never dropped).
    made: AtomicUsize,
}

impl MemoryPool {
    fn new() -> Self {
        Self {
            free: Mutex::new(Vec::new()),
            blocks: params().block_count(),
            made: AtomicUsize::new(0),
        }
    }

    /// A free buffer, or a new one when all are out. Called only with a permit held (or by
    /// the constructor before any permit is handed out), so there are at most as many
    /// buffers as permits.
    fn take(self: &Arc<Self>) -> Memory {
        let free = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let blocks = free.unwrap_or_else(|| {
            self.made.fetch_add(1, Ordering::Relaxed);
            vec![Block::default(); self.blocks]
        });
        Memory {
            pool: self.clone(),
            blocks,
        }
    }
}

/// A buffer checked out of the pool; it goes back when dropped.
struct Memory {
    pool: Arc<MemoryPool>,
    blocks: Vec<Block>,
}

impl Drop for Memory {
    fn drop(&mut self) {
        let blocks = std::mem::take(&mut self.blocks);
        if blocks.len() == self.pool.blocks {
            self.pool
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(blocks);
        }
    }
}

/// What a blocking hash holds: the buffer, then the permit. Fields drop in order, so the
/// buffer is back in the pool before the permit lets the next hash take one.
struct Slot {
    memory: Memory,
    _permit: OwnedSemaphorePermit,
}

/// `password` hashed with `salt` and [`params`] in `memory`: the PHC string
/// `Argon2::hash_password` would make (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
fn hash_with(
    password: &[u8],
    salt: &SaltString,
    memory: &mut [Block],
) -> password_hash::Result<String> {
    let argon2 = argon2();
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let output_len = argon2
        .params()
        .output_len()
        .unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(output_len, |out| {
        Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, &mut *memory)?)
    })?;
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params())?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    }
    .to_string())
}

fn hash_blocking(password: &str, memory: &mut [Block]) -> password_hash::Result<String> {
    hash_with(
        password.as_bytes(),
        &SaltString::generate(&mut OsRng),
        memory,
    )
}

/// Whether `password` matches the PHC string `hash`, computed with the algorithm, version
/// and parameters `hash` names (what `PasswordVerifier::verify_password` does) in `memory`,
/// or in memory of its own when `hash` needs more. The outputs are compared in constant
/// time (`Output`'s equality). A hash that cannot be read matches nothing.
fn verify_blocking(password: &str, hash: &str, memory: &mut [Block]) -> bool {
    verify_with(password.as_bytes(), hash, memory).unwrap_or(false)
}

fn verify_with(password: &[u8], hash: &str, memory: &mut [Block]) -> password_hash::Result<bool> {
    let parsed = PasswordHash::new(hash)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Ok(false);
    };
    let algorithm = Algorithm::try_from(parsed.algorithm)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let params = Params::try_from(&parsed)?;
    let fits = params.block_count() <= memory.len();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let computed = Output::init_with(expected.len(), |out| {
        if fits {
            argon2.hash_password_into_with_memory(password, salt_bytes, out, &mut *memory)?;
        } else {
            argon2.hash_password_into(password, salt_bytes, out)?;
        }
        Ok(())
    })?;
    Ok(computed == expected)
}

impl PasswordHasher {
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        let memory = Arc::new(MemoryPool::new());
        // The first buffer, made here and kept for the first login.
        let dummy_hash = hash_blocking("tunelink-dummy-password", &mut memory.take().blocks)
            .map_err(|err| anyhow::anyhow!("cannot compute the dummy hash: {err}"))?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            memory,
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Runs `work` on the blocking pool with a permit and a buffer of its own.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(QUEUE_TIMEOUT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| ApiError::unavailable("The server is busy; please retry shortly."))?
            .map_err(ApiError::internal)?;
        let pool = self.memory.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut slot = Slot {
                memory: pool.take(),
                _permit: permit,
            };
            work(&mut slot.memory.blocks)
        })
        .await
        .map_err(ApiError::internal)?;
        Ok(result)
    }

    pub async fn hash(&self, password: &Password) -> Result<String, ApiError> {
        let password = password.expose().to_owned();
        self.run(move |memory| hash_blocking(&password, memory))
            .await?
            .map_err(|err| ApiError::internal(anyhow::anyhow!("hashing failed: {err}")))
    }

    /// Checks a password against a stored hash, or against the dummy hash when there is
    /// none (unknown or erased account) so that both paths cost the same.
    pub async fn verify(&self, password: &Password, hash: Option<&str>) -> Result<bool, ApiError> {
        let password = password.expose().to_owned();
        let (hash, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy_hash.to_string(), false),
        };
        let matches = self
            .run(move |memory| verify_blocking(&password, &hash, memory))
            .await?;
        Ok(real && matches)
    }
}

#[cfg(test)]
#[path = "password_tests.rs"]
mod tests;
