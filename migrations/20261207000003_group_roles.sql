-- Group roles and consent.
--
-- A group has one owner (its creator, then whoever the owner hands it to), admins the owner
-- names, and members. Owners and admins add and remove members; only the owner names admins.
-- In a direct conversation everyone is a `member` and roles mean nothing.
--
-- `history_from_seq`: a member sees the messages numbered after it. Members added to a group
-- start at the conversation's last message number, unless the owner set
-- `new_members_see_history`; founders start at 0.
CREATE TYPE member_role AS ENUM ('owner', 'admin', 'member');

ALTER TABLE conversation_members
    ADD COLUMN role             member_role NOT NULL DEFAULT 'member',
    ADD COLUMN history_from_seq bigint      NOT NULL DEFAULT 0;

ALTER TABLE conversations
    ADD COLUMN new_members_see_history boolean NOT NULL DEFAULT false;

-- Each group's creator owns it, if still a member; otherwise its longest-standing member.
WITH heirs AS (
    SELECT DISTINCT ON (m.conversation_id) m.conversation_id, m.user_id
    FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id
    WHERE c.kind = 'group' AND m.left_at IS NULL
    ORDER BY m.conversation_id, (m.user_id = c.created_by) DESC, m.joined_at, m.user_id)
UPDATE conversation_members m SET role = 'owner'
FROM heirs h
WHERE m.conversation_id = h.conversation_id AND m.user_id = h.user_id;

-- At most one owner per conversation.
CREATE UNIQUE INDEX conversation_members_one_owner ON conversation_members (conversation_id)
    WHERE role = 'owner' AND left_at IS NULL;
