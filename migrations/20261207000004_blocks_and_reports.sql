-- Safety between strangers: blocks, reports, and who sees whose presence.

-- `blocker` blocked `blocked`: no direct conversation between them (neither starts one, no
-- message goes through one they already have), neither adds the other to a group, neither
-- sees the other's presence or finds the other in musician search.
CREATE TABLE blocks (
    blocker_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id),
    CONSTRAINT blocks_not_self CHECK (blocker_id <> blocked_id)
);
CREATE INDEX blocks_by_blocked ON blocks (blocked_id, blocker_id);

-- A direct conversation between two people, one of whom blocked the other: sends are
-- refused. Kept on the row that the send path locks anyway, so that checking costs nothing.
ALTER TABLE conversations ADD COLUMN blocked boolean NOT NULL DEFAULT false;

-- Reports, to the administrators' queue.
CREATE TYPE report_target AS ENUM ('user', 'message', 'event', 'conversation');
CREATE TYPE report_status AS ENUM ('open', 'resolved');
CREATE TABLE reports (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    reporter_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    target_type report_target NOT NULL,
    target_id   uuid NOT NULL,
    reason      text NOT NULL,
    status      report_status NOT NULL DEFAULT 'open',
    -- What the administrator did: `dismissed`, `user_suspended`, `content_deleted`.
    resolution  text,
    note        text,
    resolved_by uuid REFERENCES users (id),
    resolved_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reports_resolved CHECK ((status = 'resolved') = (resolution IS NOT NULL))
);
-- One open report per reporter and target: reporting again answers the open one.
CREATE UNIQUE INDEX reports_one_open ON reports (reporter_id, target_type, target_id)
    WHERE status = 'open';
CREATE INDEX reports_queue ON reports (status, created_at, id);

-- A user may hide their presence (online, offline, last seen) from everyone.
ALTER TABLE users ADD COLUMN share_presence boolean NOT NULL DEFAULT true;
