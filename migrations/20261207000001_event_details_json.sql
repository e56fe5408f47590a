-- An event's genres and needed instruments as JSON arrays sorted by name: one definition
-- for every statement that answers events with them (details, search pages).
CREATE FUNCTION event_genres_json(event uuid) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT COALESCE(json_agg(json_build_object(
               'event_id', eg.event_id, 'genre_id', eg.genre_id, 'name', g.name)
           ORDER BY lower(g.name), g.id), '[]')
    FROM event_genres eg JOIN genres g ON g.id = eg.genre_id
    WHERE eg.event_id = event
$$;

CREATE FUNCTION event_needed_json(event uuid) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT COALESCE(json_agg(json_build_object(
               'event_id', ei.event_id, 'instrument_id', ei.instrument_id,
               'name', i.name, 'category', i.category,
               'quantity', ei.quantity, 'filled', ei.filled)
           ORDER BY lower(i.name), i.id), '[]')
    FROM event_instruments ei JOIN instruments i ON i.id = ei.instrument_id
    WHERE ei.event_id = event
$$;
