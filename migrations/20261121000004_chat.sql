-- Conversations, members, messages, and the per-conversation event log behind live
-- delivery and resume.

CREATE TYPE conversation_kind AS ENUM ('direct', 'group');

CREATE TABLE conversations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind            conversation_kind NOT NULL,
    title           text,
    -- For direct conversations: both member ids in order, so a pair has at most one.
    direct_key      text UNIQUE,
    created_by      uuid NOT NULL REFERENCES users (id),
    -- Message numbers: 1, 2, 3… with no gap; the order of the conversation.
    last_message_seq bigint NOT NULL DEFAULT 0,
    -- Event numbers: every change (message sent, edited, deleted, read marker moved,
    -- member joined or left, renamed) takes the next one. Resume replays them in order.
    last_event_seq  bigint NOT NULL DEFAULT 0,
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conversations_direct_has_key CHECK ((kind = 'direct') = (direct_key IS NOT NULL))
);

CREATE TABLE conversation_members (
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at       timestamptz NOT NULL DEFAULT now(),
    -- NULL while a member. A member who left and is added back gets the row reset.
    left_at         timestamptz,
    -- Messages up to this number are read; only moves forward.
    last_read_seq   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_members_by_user ON conversation_members (user_id, conversation_id)
    WHERE left_at IS NULL;

CREATE TABLE messages (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             bigint NOT NULL,
    author_id       uuid NOT NULL REFERENCES users (id),
    -- NULL once deleted: the row stays as a tombstone in history.
    body            text,
    -- The sender's idempotency key: a retry with the same key returns the first message.
    client_msg_id   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    edited_at       timestamptz,
    deleted_at      timestamptz,
    CONSTRAINT messages_seq_key UNIQUE (conversation_id, seq),
    CONSTRAINT messages_client_msg_id_key UNIQUE (conversation_id, author_id, client_msg_id)
);

-- Each change to a conversation, as the frame that told it, numbered in the conversation.
CREATE TABLE conversation_events (
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             bigint NOT NULL,
    frame           jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, seq)
);

-- Presence: live connections per user and per server instance. An instance refreshes its
-- heartbeat; rows of an instance that stopped refreshing (crashed) are ignored and purged.
CREATE TABLE instances (
    id           uuid PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE presence (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    instance_id uuid NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    connections integer NOT NULL CHECK (connections >= 0),
    PRIMARY KEY (user_id, instance_id)
);

-- `online_announced` makes presence announcements alternate (online, offline, online…), so
-- a client reconnecting in a loop announces nothing new.
ALTER TABLE users ADD COLUMN last_seen_at timestamptz,
                  ADD COLUMN online_announced boolean NOT NULL DEFAULT false;
