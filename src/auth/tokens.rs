//! Short-lived JWT access tokens (HS256).
//!
//! A token names its session (`sid`): revoking the session in PostgreSQL stops the token on
//! every instance at once, and after a restart, without waiting for `exp`.

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Role;
use crate::error::{ApiError, ErrorCode};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    pub role: Role,
    /// The session this token belongs to.
    pub sid: Uuid,
    /// A unique token id.
    pub jti: Uuid,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
}

/// Signing and verification keys, built once from `JWT_SECRET`.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &str, access_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            access_ttl,
        }
    }

    /// Issues an access token; returns it with its lifetime in seconds.
    pub fn issue(
        &self,
        user_id: Uuid,
        role: Role,
        session_id: Uuid,
    ) -> Result<(String, i64), ApiError> {
        let now = Utc::now().timestamp();
        let ttl = i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: user_id,
            role,
            sid: session_id,
            jti: Uuid::new_v4(),
            iat: now,
            exp: now.saturating_add(ttl),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok((token, ttl))
    }

    /// Checks the signature and expiry; the session check happens in the guard.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => ApiError::unauthorized(
                    ErrorCode::TokenExpired,
                    "The access token has expired; refresh it.",
                ),
                _ => {
                    ApiError::unauthorized(ErrorCode::InvalidToken, "The access token is invalid.")
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tampering() -> Result<(), ApiError> {
        let keys = TokenKeys::new("hetic", Duration::from_secs(60));
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let (token, ttl) = keys.issue(user, Role::Admin, session)?;
        assert_eq!(ttl, 60);
        let claims = keys.verify(&token)?;
        assert_eq!(
            (claims.sub, claims.sid, claims.role),
            (user, session, Role::Admin)
        );

        let other = TokenKeys::new("another-secret", Duration::from_secs(60));
        assert_eq!(
            other.verify(&token).err().map(|e| e.code),
            Some(ErrorCode::InvalidToken)
        );
        let mut tampered = token.clone();
        tampered.insert(tampered.len() - 3, 'x');
        assert_eq!(
            keys.verify(&tampered).err().map(|e| e.code),
            Some(ErrorCode::InvalidToken)
        );
        Ok(())
    }

    #[test]
    fn expired_tokens_are_refused() -> Result<(), ApiError> {
        let keys = TokenKeys::new("hetic", Duration::from_secs(60));
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::new_v4(),
            role: Role::User,
            sid: Uuid::new_v4(),
            jti: Uuid::new_v4(),
            iat: now - 120,
            exp: now - 60,
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &keys.encoding)
            .map_err(ApiError::internal)?;
        assert_eq!(
            keys.verify(&token).err().map(|e| e.code),
            Some(ErrorCode::TokenExpired)
        );
        Ok(())
    }
}
