-- Search around a point in start-time order ("what is on near me"), the app's first screen.
-- The space-time GiST index must read every event in the circle's box and window, in no
-- particular order, before the first page can be sorted: tens of milliseconds around a
-- big city with 100,000 events. Instead, a grid of half-degree cells (about 55 × 37 km in
-- France) and a btree per cell in start order: the search reads the first page's worth of
-- each of the few cells that cover the circle from the index alone (it includes the point
-- and what the usual filters read) and the heap only for the events it answers.
-- `events::search::cells_around` computes the cells with the same formula.
ALTER TABLE events
    ADD COLUMN cell integer NOT NULL
        GENERATED ALWAYS AS ((floor((latitude + 90) * 2) * 1000 + floor((longitude + 180) * 2))::integer) STORED;
CREATE INDEX events_by_cell ON events (cell, starts_at, id) INCLUDE (location, ends_at, status, type);

-- The API has always refused events longer than 31 days (`events::MAX_DURATION_DAYS`); as a
-- constraint, it lets a search for events not yet over start at now() - 31 days.
ALTER TABLE events ADD CONSTRAINT events_last_at_most_31_days
    CHECK (ends_at - starts_at <= interval '31 days');
