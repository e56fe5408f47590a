-- Events, the instruments they need, participations, and notifications.

CREATE TYPE event_type AS ENUM ('jam', 'concert', 'rehearsal', 'open_mic', 'workshop', 'other');
-- `finished` is not stored: a scheduled event whose end has passed is finished.
CREATE TYPE event_status AS ENUM ('scheduled', 'cancelled');

CREATE TABLE events (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    creator_id         uuid NOT NULL REFERENCES users (id),
    title              text NOT NULL,
    description        text,
    type               event_type NOT NULL,
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz NOT NULL,
    address            text NOT NULL,
    latitude           double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude          double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    -- NULL: no limit on the number of participants.
    capacity           integer CHECK (capacity > 0),
    image_url          text,
    status             event_status NOT NULL DEFAULT 'scheduled',
    cancelled_at       timestamptz,
    -- Active participations (pending or accepted); kept in step, under the event's row
    -- lock, by the code that changes participations.
    participants_count integer NOT NULL DEFAULT 0 CHECK (participants_count >= 0),
    -- The point on the earth (earthdistance), computed once per write rather than once per
    -- row and search.
    location           earth GENERATED ALWAYS AS (ll_to_earth(latitude, longitude)) STORED,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_ends_after_start CHECK (ends_at > starts_at),
    CONSTRAINT events_within_capacity CHECK (capacity IS NULL OR participants_count <= capacity)
);

-- Seconds since the epoch, for the space-time index below. Immutable in truth (an instant's
-- epoch does not depend on the time zone), though `extract` is only declared stable.
CREATE FUNCTION event_epoch(timestamptz) RETURNS float8
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT extract(epoch FROM $1)::float8 $$;

-- Search. The common one, "within R km of a point, starting in a date window", is answered
-- by one GiST scan over 4-D cubes (x, y, z on the earth, and start time): space and time
-- narrow together, so a dense city does not mean thousands of candidates. Also indexed:
-- dates alone, text, and the creator's own events.
CREATE INDEX events_place_time ON events USING gist (cube(location, event_epoch(starts_at)));
CREATE INDEX events_by_start ON events (starts_at, id);
CREATE INDEX events_search_trgm ON events
    USING gin ((title || ' ' || coalesce(description, '') || ' ' || address) gin_trgm_ops);
CREATE INDEX events_by_creator ON events (creator_id, starts_at);

CREATE TABLE event_genres (
    event_id uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    genre_id uuid NOT NULL,
    PRIMARY KEY (event_id, genre_id),
    CONSTRAINT event_genres_genre_fkey FOREIGN KEY (genre_id) REFERENCES genres (id) ON DELETE RESTRICT
);
CREATE INDEX event_genres_by_genre ON event_genres (genre_id, event_id);

-- Instruments an event needs. An event with none is open to any instrument.
CREATE TABLE event_instruments (
    event_id      uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    instrument_id uuid NOT NULL,
    quantity      integer NOT NULL CHECK (quantity > 0),
    -- Active participations with this instrument; kept in step like participants_count.
    filled        integer NOT NULL DEFAULT 0 CHECK (filled >= 0),
    PRIMARY KEY (event_id, instrument_id),
    CONSTRAINT event_instruments_instrument_fkey FOREIGN KEY (instrument_id)
        REFERENCES instruments (id) ON DELETE RESTRICT,
    CONSTRAINT event_instruments_within_quantity CHECK (filled <= quantity)
);
CREATE INDEX event_instruments_by_instrument ON event_instruments (instrument_id, event_id);

-- pending → accepted | declined (by the creator); pending | accepted → withdrawn (by the
-- participant); accepted → declined (by the creator). Changing instrument puts an accepted
-- participation back to pending.
CREATE TYPE participation_status AS ENUM ('pending', 'accepted', 'declined', 'withdrawn');

CREATE TABLE participations (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id      uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    instrument_id uuid NOT NULL,
    status        participation_status NOT NULL DEFAULT 'pending',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT participations_instrument_fkey FOREIGN KEY (instrument_id)
        REFERENCES instruments (id) ON DELETE RESTRICT
);
-- One active participation per musician per event.
CREATE UNIQUE INDEX participations_one_active ON participations (event_id, user_id)
    WHERE status IN ('pending', 'accepted');
CREATE INDEX participations_by_event ON participations (event_id, created_at, id);
CREATE INDEX participations_by_user ON participations (user_id, created_at DESC, id DESC);

CREATE TABLE notifications (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- participation_created, participation_withdrawn, participation_instrument_changed,
    -- participation_accepted, participation_declined, event_updated, event_cancelled,
    -- announcement, …
    type       text NOT NULL,
    title      text NOT NULL,
    body       text NOT NULL,
    -- The API path of what it is about, e.g. /api/v1/events/{id}.
    link       text,
    event_id   uuid REFERENCES events (id) ON DELETE CASCADE,
    read_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_by_user ON notifications (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_unread ON notifications (user_id) WHERE read_at IS NULL;
