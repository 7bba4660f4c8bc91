-- Selection volumes: a user's read-only view of chosen archive files ("add the selected to a data
-- volume"). The files are remembered, not copied; the query that chose them is kept to show.
CREATE TABLE selections (
    id             INTEGER PRIMARY KEY,
    owner_user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name           TEXT    NOT NULL,
    query          TEXT    NOT NULL,
    volume         TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    UNIQUE (owner_user_id, name)
);

CREATE TABLE selection_files (
    selection_id  INTEGER NOT NULL REFERENCES selections(id) ON DELETE CASCADE,
    path          TEXT    NOT NULL,
    did           TEXT    NOT NULL,
    PRIMARY KEY (selection_id, path)
);
