-- Accounts, login sessions and their refresh tokens.
--
-- Migrations are never edited once landed: add a new file instead.

CREATE TYPE user_role AS ENUM ('user', 'admin');

CREATE TABLE users (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username       text NOT NULL,
    -- NULL once the account has been erased.
    email          text,
    -- argon2id PHC string; NULL once the account has been erased.
    password_hash  text,
    role           user_role NOT NULL DEFAULT 'user',
    bio            text,
    photo_url      text,
    city           text,
    latitude       double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude      double precision CHECK (longitude BETWEEN -180 AND 180),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- A deactivated account cannot log in and is hidden from other musicians.
    deactivated_at timestamptz,
    -- Set when personal data was erased on request (implies deactivated).
    erased_at      timestamptz,
    CONSTRAINT users_coordinates_together CHECK ((latitude IS NULL) = (longitude IS NULL)),
    CONSTRAINT users_erased_is_deactivated CHECK (erased_at IS NULL OR deactivated_at IS NOT NULL)
);

-- Unique ignoring case; the names are mapped to 409 answers in the code.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- One login on one device. Access tokens name their session, so revoking it here stops
-- them on every instance at once. A session is also a refresh-token family.
CREATE TABLE sessions (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz NOT NULL DEFAULT now(),
    -- The refresh token's lifetime, extended on each rotation.
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    -- logout, password_change, deactivated, refresh_token_reused
    revoked_reason text
);

CREATE INDEX sessions_active_by_user ON sessions (user_id) WHERE revoked_at IS NULL;

-- Refresh tokens, stored as SHA-256 hashes. Each is good for one use: using one marks it
-- used and issues the next; presenting a used one again revokes the whole session.
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz
);

CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
