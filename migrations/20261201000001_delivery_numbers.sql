-- Numbers that make every live event recoverable.
--
-- Conversations: where each member's view of the event log starts (the event that added
-- them; 1 for the founders) and ends (the event that removed them), so that a replay shows
-- a member exactly the events of their membership.
ALTER TABLE conversation_members
    ADD COLUMN joined_event_seq bigint NOT NULL DEFAULT 1,
    ADD COLUMN left_event_seq   bigint;

UPDATE conversation_members m
SET left_event_seq = COALESCE(
        (SELECT max(e.seq) FROM conversation_events e
         WHERE e.conversation_id = m.conversation_id
           AND e.frame ->> 'type' = 'member.left'
           AND e.frame ->> 'user_id' = m.user_id::text),
        (SELECT c.last_event_seq FROM conversations c WHERE c.id = m.conversation_id))
WHERE m.left_at IS NOT NULL;

-- Notifications: every change to a user's notifications (created, read, deleted) takes the
-- user's next number, 1, 2, 3… with no gap, so a device resumes from the last it processed.
-- `seq` is the number of the creation, `changed_seq` of the last change; a deleted
-- notification stays as a tombstone (`deleted_at`) so that the deletion can be replayed.
-- `batch_id` groups the rows of one announcement to everyone: it crosses the bus once.
ALTER TABLE users ADD COLUMN last_notification_seq bigint NOT NULL DEFAULT 0;

ALTER TABLE notifications
    ADD COLUMN seq         bigint,
    ADD COLUMN changed_seq bigint,
    ADD COLUMN deleted_at  timestamptz,
    ADD COLUMN batch_id    uuid;

WITH numbered AS (
    SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY created_at, id) AS n
    FROM notifications)
UPDATE notifications n SET seq = numbered.n FROM numbered WHERE numbered.id = n.id;

UPDATE users u SET last_notification_seq = s.last
FROM (SELECT user_id, max(seq) AS last FROM notifications GROUP BY user_id) s
WHERE s.user_id = u.id;

ALTER TABLE notifications ALTER COLUMN seq SET NOT NULL;
CREATE UNIQUE INDEX notifications_by_seq ON notifications (user_id, seq);
CREATE INDEX notifications_by_change ON notifications (user_id, changed_seq)
    WHERE changed_seq IS NOT NULL;
CREATE INDEX notifications_by_batch ON notifications (batch_id) WHERE batch_id IS NOT NULL;
