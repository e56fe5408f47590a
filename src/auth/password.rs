//! argon2id password hashing, off the async runtime and with bounded concurrency.
//!
//! Each hash takes ~19 MiB and ~20 ms of a core (OWASP parameters). Hashing runs in
//! `spawn_blocking` behind a semaphore, so a login storm queues here instead of starving the
//! runtime; a request that waits too long gets a 503 instead of piling up.

use std::{sync::Arc, time::Duration};

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHash, PasswordVerifier, SaltString, rand_core::OsRng},
};
use tokio::sync::Semaphore;

use crate::{domain::Password, error::ApiError};

/// How long a request may queue for a hashing slot before it is told to retry.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Verified against when the account does not exist, so that an unknown login takes as
    /// long as a wrong password.
    dummy_hash: Arc<str>,
}

fn argon2() -> Argon2<'static> {
    // OWASP: argon2id, m = 19 MiB, t = 2, p = 1. These constants are valid, so `new` cannot
    // fail; fall back to the crate default (also argon2id) rather than panic regardless.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::PasswordHasher as _;
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

fn verify_blocking(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

impl PasswordHasher {
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        let dummy_hash = hash_blocking("tunelink-dummy-password")
            .map_err(|err| anyhow::anyhow!("cannot compute the dummy hash: {err}"))?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy_hash.into(),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(QUEUE_TIMEOUT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| ApiError::unavailable("The server is busy; please retry shortly."))?
            .map_err(ApiError::internal)?;
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(ApiError::internal)?;
        Ok(result)
    }

    pub async fn hash(&self, password: &Password) -> Result<String, ApiError> {
        let password = password.expose().to_owned();
        self.run(move || hash_blocking(&password))
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
        let matches = self.run(move || verify_blocking(&password, &hash)).await?;
        Ok(real && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_and_verifies() -> anyhow::Result<()> {
        let hasher = PasswordHasher::new(2)?;
        let pw = Password::parse("p", "correct horse battery")
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let hash = hasher
            .hash(&pw)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            hasher
                .verify(&pw, Some(&hash))
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?
        );
        let wrong =
            Password::parse("p", "wrong horse battery").map_err(|e| anyhow::anyhow!(e.message))?;
        assert!(
            !hasher
                .verify(&wrong, Some(&hash))
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?
        );
        // No stored hash: the dummy is checked and the answer is always "no".
        assert!(
            !hasher
                .verify(&pw, None)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?
        );
        Ok(())
    }
}
