-- Archive volumes that mirror the operator's config (`colo.toml`): listed through the API and
-- seen by every user, mounted from the config (their secrets stay in the config, not here).
ALTER TABLE volumes ADD COLUMN from_config INTEGER NOT NULL DEFAULT 0 CHECK (from_config IN (0, 1));
