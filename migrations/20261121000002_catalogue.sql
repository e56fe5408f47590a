-- The catalogue (instruments, genres), what each musician plays and likes, and the indexes
-- behind finding musicians (text, instrument level, genre, distance).

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS cube;
CREATE EXTENSION IF NOT EXISTS earthdistance;

CREATE TYPE instrument_category AS ENUM
    ('strings', 'keys', 'percussion', 'brass', 'woodwind', 'voice', 'electronic', 'other');

-- Declaration order is skill order: `level >= 'advanced'` means advanced or better.
CREATE TYPE skill_level AS ENUM
    ('beginner', 'intermediate', 'advanced', 'expert', 'professional');

CREATE TABLE instruments (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL,
    category   instrument_category NOT NULL,
    icon_url   text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX instruments_name_key ON instruments (lower(name));

CREATE TABLE genres (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX genres_name_key ON genres (lower(name));

-- RESTRICT: an instrument or genre in use cannot be deleted (the API answers 409).
CREATE TABLE user_instruments (
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    instrument_id uuid NOT NULL,
    level         skill_level NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, instrument_id),
    CONSTRAINT user_instruments_instrument_fkey FOREIGN KEY (instrument_id)
        REFERENCES instruments (id) ON DELETE RESTRICT
);
CREATE INDEX user_instruments_by_instrument ON user_instruments (instrument_id, level, user_id);

CREATE TABLE user_genres (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    genre_id   uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, genre_id),
    CONSTRAINT user_genres_genre_fkey FOREIGN KEY (genre_id)
        REFERENCES genres (id) ON DELETE RESTRICT
);
CREATE INDEX user_genres_by_genre ON user_genres (genre_id, user_id);

-- Finding musicians: text in username or city (one trigram index on both, so that one
-- index scan answers `ILIKE '%…%'`), and distance from a point.
CREATE INDEX users_search_trgm ON users USING gin ((username || ' ' || coalesce(city, '')) gin_trgm_ops)
    WHERE deactivated_at IS NULL;
CREATE INDEX users_location ON users USING gist (ll_to_earth(latitude, longitude))
    WHERE deactivated_at IS NULL AND latitude IS NOT NULL;
CREATE INDEX users_active_by_name ON users (lower(username), id) WHERE deactivated_at IS NULL;

-- The starting catalogue. Administrators edit it through the API afterwards.
INSERT INTO instruments (name, category) VALUES
    ('Acoustic Guitar', 'strings'), ('Electric Guitar', 'strings'), ('Bass Guitar', 'strings'),
    ('Double Bass', 'strings'), ('Violin', 'strings'), ('Viola', 'strings'),
    ('Cello', 'strings'), ('Harp', 'strings'), ('Banjo', 'strings'), ('Mandolin', 'strings'),
    ('Ukulele', 'strings'), ('Sitar', 'strings'),
    ('Piano', 'keys'), ('Electric Piano', 'keys'), ('Hammond Organ', 'keys'),
    ('Keyboard', 'keys'), ('Accordion', 'keys'), ('Harpsichord', 'keys'),
    ('Drum Kit', 'percussion'), ('Cajón', 'percussion'), ('Congas', 'percussion'),
    ('Bongos', 'percussion'), ('Djembe', 'percussion'), ('Tabla', 'percussion'),
    ('Timpani', 'percussion'), ('Vibraphone', 'percussion'), ('Marimba', 'percussion'),
    ('Steel Pan', 'percussion'), ('Hand Percussion', 'percussion'),
    ('Trumpet', 'brass'), ('Trombone', 'brass'), ('French Horn', 'brass'), ('Tuba', 'brass'),
    ('Flugelhorn', 'brass'), ('Euphonium', 'brass'),
    ('Flute', 'woodwind'), ('Clarinet', 'woodwind'), ('Soprano Saxophone', 'woodwind'),
    ('Alto Saxophone', 'woodwind'), ('Tenor Saxophone', 'woodwind'),
    ('Baritone Saxophone', 'woodwind'), ('Oboe', 'woodwind'), ('Bassoon', 'woodwind'),
    ('Harmonica', 'woodwind'), ('Recorder', 'woodwind'),
    ('Lead Vocals', 'voice'), ('Backing Vocals', 'voice'), ('Soprano Voice', 'voice'),
    ('Alto Voice', 'voice'), ('Tenor Voice', 'voice'), ('Baritone Voice', 'voice'),
    ('Beatbox', 'voice'), ('Rap', 'voice'),
    ('Synthesizer', 'electronic'), ('DJ Turntables', 'electronic'),
    ('Drum Machine', 'electronic'), ('Sampler', 'electronic'), ('Laptop / DAW', 'electronic'),
    ('Theremin', 'electronic');

INSERT INTO genres (name, description) VALUES
    ('Rock', 'Guitar-driven popular music, from rock''n''roll to arena rock.'),
    ('Pop', 'Catchy, song-oriented popular music.'),
    ('Jazz', 'Improvisation, swing and extended harmony.'),
    ('Blues', 'Twelve bars, blue notes and call and response.'),
    ('Funk', 'Syncopated grooves on the one.'),
    ('Soul', 'Gospel-rooted rhythm and blues singing.'),
    ('R&B', 'Contemporary rhythm and blues.'),
    ('Hip-Hop', 'Beats, samples and rap.'),
    ('Electronic', 'Music made with synthesizers, samplers and computers.'),
    ('House', 'Four-on-the-floor dance music from Chicago.'),
    ('Techno', 'Repetitive, machine-driven dance music from Detroit.'),
    ('Drum and Bass', 'Fast breakbeats and heavy bass lines.'),
    ('Reggae', 'Jamaican offbeat rhythms.'),
    ('Ska', 'Upbeat Jamaican precursor of reggae, with horns.'),
    ('Punk', 'Fast, short, loud and do-it-yourself.'),
    ('Metal', 'Distorted guitars, power and speed.'),
    ('Indie', 'Independent rock and pop.'),
    ('Folk', 'Traditional and acoustic songs.'),
    ('Country', 'American roots music with twang.'),
    ('Bluegrass', 'Acoustic string bands: banjo, fiddle, mandolin.'),
    ('Classical', 'Western art music from the Baroque to today.'),
    ('Baroque', 'Music from about 1600 to 1750: Bach, Vivaldi, Handel.'),
    ('Opera', 'Staged drama set to music.'),
    ('Gospel', 'Christian choral and soul music.'),
    ('Latin', 'Music from Latin America.'),
    ('Salsa', 'Afro-Cuban dance music with clave.'),
    ('Bossa Nova', 'Brazilian blend of samba and jazz.'),
    ('Samba', 'Brazilian carnival rhythms.'),
    ('Afrobeat', 'West African rhythms with jazz and funk.'),
    ('Flamenco', 'Andalusian guitar, song and dance.'),
    ('Chanson', 'French song, lyrics first.'),
    ('World', 'Traditional music from around the world.'),
    ('Disco', 'Dance music of the late seventies.'),
    ('Ambient', 'Atmospheric, textural music.'),
    ('Fusion', 'Jazz meets rock and funk.'),
    ('Swing', 'Big-band dance jazz.'),
    ('Lo-fi', 'Warm, low-fidelity beats.'),
    ('Experimental', 'Music that breaks the rules on purpose.');
