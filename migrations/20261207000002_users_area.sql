-- Location privacy (musician search). A musician's exact coordinates never leave the
-- server, but a search that filtered and sorted on them answered where they are: three
-- searches from different points (trilateration) or bisecting `radius_km` located a
-- person to a few metres. Searches now use only `area`: the point rounded to 0.01° (a cell
-- of about 1.1 km north–south and 0.7–0.8 km east–west in France), so that everyone in a
-- cell is the same to every query, whatever its point, radius or order; distances are
-- answered in whole kilometres (`api::musicians`).
ALTER TABLE users
    ADD COLUMN area earth GENERATED ALWAYS AS (
        CASE WHEN latitude IS NULL OR longitude IS NULL THEN NULL
             ELSE ll_to_earth(round(latitude::numeric, 2)::float8, round(longitude::numeric, 2)::float8)
        END) STORED;
CREATE INDEX users_area ON users USING gist (area)
    WHERE deactivated_at IS NULL AND area IS NOT NULL;
DROP INDEX users_location;
