-- The catalogue: datasets, data volumes and datalab images, searched by free text (FTS5) and
-- facets (type, domain, mission, instrument, wavelength).

CREATE TABLE catalog_items (
    id           INTEGER PRIMARY KEY,
    kind         TEXT    NOT NULL CHECK (kind IN ('dataset', 'volume', 'datalab-image')),
    key          TEXT    NOT NULL,
    title        TEXT    NOT NULL,
    description  TEXT    NOT NULL DEFAULT '',
    mission      TEXT    NOT NULL DEFAULT '',
    instrument   TEXT    NOT NULL DEFAULT '',
    domain       TEXT    NOT NULL DEFAULT '',
    wavelength   TEXT    NOT NULL DEFAULT '',
    -- Further properties as a JSON object of strings.
    properties   TEXT    NOT NULL DEFAULT '{}',
    -- Where the item came from: 'toml:<file name>', 'published' (colo ingest), ...
    source       TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (kind, key)
);
CREATE INDEX catalog_items_source ON catalog_items(source);

CREATE VIRTUAL TABLE catalog_fts USING fts5(
    title, description, mission, instrument, domain, wavelength, key,
    content = 'catalog_items', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER catalog_items_ai AFTER INSERT ON catalog_items BEGIN
    INSERT INTO catalog_fts (rowid, title, description, mission, instrument, domain, wavelength, key)
    VALUES (new.id, new.title, new.description, new.mission, new.instrument, new.domain, new.wavelength, new.key);
END;
CREATE TRIGGER catalog_items_ad AFTER DELETE ON catalog_items BEGIN
    INSERT INTO catalog_fts (catalog_fts, rowid, title, description, mission, instrument, domain, wavelength, key)
    VALUES ('delete', old.id, old.title, old.description, old.mission, old.instrument, old.domain, old.wavelength, old.key);
END;
CREATE TRIGGER catalog_items_au AFTER UPDATE ON catalog_items BEGIN
    INSERT INTO catalog_fts (catalog_fts, rowid, title, description, mission, instrument, domain, wavelength, key)
    VALUES ('delete', old.id, old.title, old.description, old.mission, old.instrument, old.domain, old.wavelength, old.key);
    INSERT INTO catalog_fts (rowid, title, description, mission, instrument, domain, wavelength, key)
    VALUES (new.id, new.title, new.description, new.mission, new.instrument, new.domain, new.wavelength, new.key);
END;
