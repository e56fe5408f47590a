use std::{collections::HashSet, sync::Mutex};

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

use super::*;

fn password(text: &str) -> anyhow::Result<Password> {
    Password::parse("p", text).map_err(|e| anyhow::anyhow!(e.message))
}

fn api<T>(result: Result<T, ApiError>) -> anyhow::Result<T> {
    result.map_err(|e| anyhow::anyhow!(e.message))
}

/// How hashes were made before the memory pool: `Argon2::hash_password`, which allocates.
fn hash_allocating(password: &str, salt: &SaltString) -> anyhow::Result<String> {
    Ok(argon2()
        .hash_password(password.as_bytes(), salt)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string())
}

/// How hashes were verified before the memory pool.
fn verify_allocating(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// `password_hash::Error` is not a `std::error::Error` (no `std` feature).
fn phc<T>(result: password_hash::Result<T>) -> anyhow::Result<T> {
    result.map_err(|e| anyhow::anyhow!("{e}"))
}

fn buffer() -> Vec<Block> {
    vec![Block::default(); params().block_count()]
}

#[tokio::test]
async fn hashes_and_verifies() -> anyhow::Result<()> {
    let hasher = PasswordHasher::new(2)?;
    let pw = password("correct horse battery")?;
    let hash = api(hasher.hash(&pw).await)?;
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert!(api(hasher.verify(&pw, Some(&hash)).await)?);
    let wrong = password("wrong horse battery")?;
    assert!(!api(hasher.verify(&wrong, Some(&hash)).await)?);
    // No stored hash: the dummy is checked and the answer is always "no".
    assert!(!api(hasher.verify(&pw, None).await)?);
    Ok(())
}

#[test]
fn same_phc_string_as_hash_password() -> anyhow::Result<()> {
    let mut memory = buffer();
    for text in ["correct horse battery", "", "élan vital ♪", "x"] {
        let salt = SaltString::generate(&mut OsRng);
        // The buffer is reused (dirty) from the second round on: no difference.
        let pooled = phc(hash_with(text.as_bytes(), &salt, &mut memory))?;
        assert_eq!(pooled, hash_allocating(text, &salt)?);
        let (_, rest) = pooled
            .split_once("$argon2id$v=19$m=19456,t=2,p=1$")
            .ok_or_else(|| anyhow::anyhow!("unexpected prefix: {pooled}"))?;
        let (salt_b64, hash_b64) = rest
            .split_once('$')
            .ok_or_else(|| anyhow::anyhow!("no hash: {pooled}"))?;
        assert_eq!((salt_b64.len(), hash_b64.len()), (22, 43), "{pooled}");
    }
    Ok(())
}

#[test]
fn old_hashes_verify_with_the_pool_and_new_ones_without() -> anyhow::Result<()> {
    let mut memory = buffer();
    let old = hash_allocating("correct horse battery", &SaltString::generate(&mut OsRng))?;
    assert!(verify_blocking("correct horse battery", &old, &mut memory));
    assert!(!verify_blocking(
        "correct horse battery!",
        &old,
        &mut memory
    ));

    let new = phc(hash_blocking("correct horse battery", &mut memory))?;
    assert!(verify_allocating("correct horse battery", &new));
    assert!(!verify_allocating("wrong horse battery", &new));
    Ok(())
}

#[test]
fn wrong_passwords_and_malformed_hashes_fail() -> anyhow::Result<()> {
    let mut memory = buffer();
    let hash = phc(hash_blocking("correct horse battery", &mut memory))?;
    assert!(verify_blocking("correct horse battery", &hash, &mut memory));
    for wrong in ["", "correct horse batter", "Correct horse battery"] {
        assert!(!verify_blocking(wrong, &hash, &mut memory), "{wrong:?}");
    }
    let truncated = &hash[..hash.len() - 4];
    for bad in [
        "",
        "not a hash",
        truncated,
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
        &hash.replace("$argon2id$", "$scrypt$"),
        &hash.replace("$v=19$", "$v=7$"),
        &hash.replace("t=2", "t=0"),
    ] {
        assert!(
            !verify_blocking("correct horse battery", bad, &mut memory),
            "{bad:?}"
        );
    }
    Ok(())
}

#[test]
fn other_parameters_verify_in_the_buffer_or_beside_it() -> anyhow::Result<()> {
    let mut memory = buffer();
    let salt = SaltString::generate(&mut OsRng);
    let cases = [
        // Less memory than a buffer: a prefix of it is used.
        (Algorithm::Argon2id, Params::new(8 * 1024, 1, 1, None)),
        (Algorithm::Argon2i, Params::new(4 * 1024, 3, 2, Some(16))),
        // The argon2 crate's default before OWASP's numbers were ours: the same size.
        (Algorithm::Argon2id, Ok(Params::DEFAULT)),
        // More than a buffer: computed in memory of its own.
        (Algorithm::Argon2id, Params::new(32 * 1024, 1, 1, None)),
    ];
    for (algorithm, params) in cases {
        let params = params.map_err(|e| anyhow::anyhow!("{e}"))?;
        let hash = Argon2::new(algorithm, Version::V0x13, params)
            .hash_password(b"correct horse battery", &salt)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_string();
        assert!(
            verify_blocking("correct horse battery", &hash, &mut memory),
            "{hash}"
        );
        assert!(
            !verify_blocking("wrong horse battery", &hash, &mut memory),
            "{hash}"
        );
    }
    assert_eq!(
        memory.len(),
        params().block_count(),
        "the buffer stays as it was"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_hashes_never_share_a_buffer() -> anyhow::Result<()> {
    let hasher = PasswordHasher::new(3)?;
    let in_use = Arc::new(Mutex::new(HashSet::new()));
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let (hasher, in_use, seen) = (hasher.clone(), in_use.clone(), seen.clone());
        tasks.spawn(async move {
            hasher
                .run(move |memory| {
                    let at = memory.as_ptr() as usize;
                    let fresh = in_use.lock().is_ok_and(|mut set| set.insert(at));
                    let _ = seen.lock().map(|mut set| set.insert(at));
                    std::thread::sleep(Duration::from_millis(15));
                    let _ = in_use.lock().map(|mut set| set.remove(&at));
                    (fresh, memory.len())
                })
                .await
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (fresh, len) = api(done?)?;
        assert!(fresh, "a buffer was handed out twice at once");
        assert_eq!(len, params().block_count());
    }
    let seen = seen.lock().map(|set| set.len()).unwrap_or(usize::MAX);
    assert!((1..=3).contains(&seen), "{seen} buffers for 3 permits");
    assert_eq!(hasher.memory.made.load(Ordering::Relaxed), seen);
    Ok(())
}

#[tokio::test]
async fn a_hash_waiting_too_long_is_told_to_retry() -> anyhow::Result<()> {
    let hasher = PasswordHasher::new(1)?;
    let held = hasher.permits.clone().acquire_owned().await?;
    // QUEUE_TIMEOUT (5 s) of real time: tokio's clock cannot be paused in this build.
    let answer = hasher.hash(&password("correct horse battery")?).await;
    assert!(matches!(answer, Err(e) if e.status.as_u16() == 503 && e.retry_after.is_some()));
    drop(held);
    assert!(api(hasher.hash(&password("correct horse battery")?).await).is_ok());
    assert_eq!(hasher.memory.made.load(Ordering::Relaxed), 1);
    Ok(())
}
