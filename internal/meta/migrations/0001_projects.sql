-- Projects: one per tracked product. token is the public ingest token that
-- SDKs send; of the /import secret only its SHA-256 is kept.
--
-- AUTOINCREMENT so that an id is never reused after a delete: event data
-- refers to projects by id.
CREATE TABLE projects (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL, -- case-folded name, enforces case-insensitive uniqueness
    token         TEXT NOT NULL CHECK (length(token) = 32),
    secret_sha256 BLOB NOT NULL CHECK (length(secret_sha256) = 32),
    created_at    TEXT NOT NULL  -- RFC 3339, UTC
) STRICT;

CREATE UNIQUE INDEX projects_name_key ON projects (name_key);
CREATE UNIQUE INDEX projects_token ON projects (token);
CREATE UNIQUE INDEX projects_secret_sha256 ON projects (secret_sha256);
