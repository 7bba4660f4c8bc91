-- A datalab shared with named users: they may open it (the proxy) and see it; only its owner
-- (or an admin) stops, removes or shares it.
CREATE TABLE lab_shares (
    lab_id   TEXT    NOT NULL REFERENCES labs(id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (lab_id, user_id)
);
