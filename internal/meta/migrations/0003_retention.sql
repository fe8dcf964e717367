-- Retention: how many days of events a project keeps; 0 keeps them all.
-- The event store drops whole day partitions older than that.
ALTER TABLE projects ADD COLUMN retention_days INTEGER NOT NULL DEFAULT 0 CHECK (retention_days >= 0);
