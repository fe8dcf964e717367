-- Reports: API tokens, saved cohorts, and the per-project settings the
-- report engines need.

-- The scopes a token may carry. A table rather than a CHECK constraint so
-- that a later scope ('write', 'export', 'admin') is one INSERT in a
-- migration instead of a rebuild of the tokens table.
CREATE TABLE token_scopes (
    name TEXT PRIMARY KEY
) STRICT;

INSERT INTO token_scopes (name) VALUES ('read');

-- API tokens: bearer credentials for /api/v1, each bound to one project and
-- one scope. Of the secret only its SHA-256 is kept. A revoked token stays
-- (revoked_at set) so listings show what existed and when it was revoked.
CREATE TABLE tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id    INTEGER NOT NULL REFERENCES projects (id),
    name          TEXT NOT NULL DEFAULT '',
    scope         TEXT NOT NULL REFERENCES token_scopes (name),
    secret_sha256 BLOB NOT NULL CHECK (length(secret_sha256) = 32),
    created_at    TEXT NOT NULL, -- RFC 3339, UTC
    revoked_at    TEXT,          -- RFC 3339, UTC; NULL while the token is active
    last_used_at  TEXT           -- RFC 3339, UTC; updated at most once a minute
) STRICT;

CREATE UNIQUE INDEX tokens_secret_sha256 ON tokens (secret_sha256);
CREATE INDEX tokens_project ON tokens (project_id);

-- Saved cohorts. definition is JSON that the report engines parse and
-- validate; to this database it is opaque text.
CREATE TABLE cohorts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL REFERENCES projects (id),
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL, -- case-folded name, unique per project
    description TEXT NOT NULL DEFAULT '',
    definition  TEXT NOT NULL,
    created_at  TEXT NOT NULL, -- RFC 3339, UTC
    updated_at  TEXT NOT NULL  -- RFC 3339, UTC
) STRICT;

CREATE UNIQUE INDEX cohorts_project_name_key ON cohorts (project_id, name_key);

-- Report settings: the IANA time zone that days, weeks and months are cut
-- in, and the privacy threshold k: report groups of fewer than k people are
-- suppressed.
ALTER TABLE projects ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC' CHECK (timezone <> '');
ALTER TABLE projects ADD COLUMN min_group_size INTEGER NOT NULL DEFAULT 1 CHECK (min_group_size >= 1);
