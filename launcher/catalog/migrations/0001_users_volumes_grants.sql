-- Users, their tokens, teams, volumes as data and grants. Times are Unix seconds (UTC).

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    admin       INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
    created_at  INTEGER NOT NULL
);

-- Only the SHA-256 of a token is kept. `kind` is 'api' (sent as `Authorization: Bearer`) or
-- 'session' (the web pages' HttpOnly cookie; mutations with it also need the CSRF token whose
-- hash is `csrf_hash`).
CREATE TABLE tokens (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind          TEXT    NOT NULL DEFAULT 'api' CHECK (kind IN ('api', 'session')),
    hash          BLOB    NOT NULL UNIQUE,
    csrf_hash     BLOB,
    scopes        TEXT    NOT NULL,
    label         TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER
);
CREATE INDEX tokens_user ON tokens(user_id);

CREATE TABLE teams (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE team_members (
    team_id  INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, user_id)
);

-- `config` is the volume's `[[volume]]` table as TOML without any secret; the secrets are in
-- `sealed_secrets` (ChaCha20-Poly1305 under the operator's key, bound to the row id).
-- Archive volumes have no owner; user volumes one user; team volumes one team.
CREATE TABLE volumes (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('archive', 'user', 'team')),
    owner_user_id   INTEGER REFERENCES users(id) ON DELETE CASCADE,
    owner_team_id   INTEGER REFERENCES teams(id) ON DELETE CASCADE,
    public          INTEGER NOT NULL DEFAULT 0 CHECK (public IN (0, 1)),
    config          TEXT    NOT NULL,
    sealed_secrets  BLOB,
    created_at      INTEGER NOT NULL,
    CHECK ((kind = 'archive' AND owner_user_id IS NULL AND owner_team_id IS NULL)
        OR (kind = 'user' AND owner_user_id IS NOT NULL AND owner_team_id IS NULL)
        OR (kind = 'team' AND owner_team_id IS NOT NULL AND owner_user_id IS NULL))
);
CREATE UNIQUE INDEX volumes_archive_name ON volumes(name) WHERE kind = 'archive';
CREATE UNIQUE INDEX volumes_user_name ON volumes(owner_user_id, name) WHERE kind = 'user';
CREATE UNIQUE INDEX volumes_team_name ON volumes(owner_team_id, name) WHERE kind = 'team';

CREATE TABLE grants (
    id          INTEGER PRIMARY KEY,
    volume_id   INTEGER NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,
    user_id     INTEGER REFERENCES users(id) ON DELETE CASCADE,
    team_id     INTEGER REFERENCES teams(id) ON DELETE CASCADE,
    access      TEXT    NOT NULL CHECK (access IN ('read-only', 'read-write')),
    created_at  INTEGER NOT NULL,
    CHECK ((user_id IS NULL) != (team_id IS NULL))
);
CREATE UNIQUE INDEX grants_user ON grants(volume_id, user_id) WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX grants_team ON grants(volume_id, team_id) WHERE team_id IS NOT NULL;
