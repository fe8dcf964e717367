-- Privacy policy per project, as the JSON that the privacy package parses;
-- a project without a row uses the strict default policy.
CREATE TABLE privacy_policies (
    project_id INTEGER PRIMARY KEY REFERENCES projects (id),
    policy     TEXT NOT NULL,
    updated_at TEXT NOT NULL -- RFC 3339, UTC
) STRICT;

-- What the privacy stage changed, counted per (project, event, property,
-- reason). Counts only: never a value.
CREATE TABLE privacy_changes (
    project_id INTEGER NOT NULL REFERENCES projects (id),
    event      TEXT NOT NULL,
    property   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    count      INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    PRIMARY KEY (project_id, event, property, reason)
) STRICT;
