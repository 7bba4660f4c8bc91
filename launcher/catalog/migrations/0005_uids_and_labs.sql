-- Each user's account on this machine: their datalabs run as it and their folder in the mount
-- shows their files as theirs. Default: 100000 + id (clear of Debian's login and system ranges);
-- the operator sets it to match a directory service with `colo user add --uid`.
ALTER TABLE users ADD COLUMN uid INTEGER;
UPDATE users SET uid = 100000 + id WHERE uid IS NULL;
CREATE UNIQUE INDEX users_uid ON users (uid);

-- Datalabs: who launched which image with what. Their lifecycle events live with the backend.
CREATE TABLE labs (
    id             TEXT    PRIMARY KEY,
    owner_user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name           TEXT    NOT NULL,
    image          TEXT    NOT NULL,
    spec           TEXT    NOT NULL,
    created_at     INTEGER NOT NULL
);
