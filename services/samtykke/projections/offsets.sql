-- Shared by every projection: the consumed position, written in the same transaction as the
-- rows (the source of truth the projector resumes from). `{schema}` is the domain's schema.
CREATE TABLE IF NOT EXISTS {schema}.consumer_offsets (
    topic       text NOT NULL,
    partition   integer NOT NULL,
    last_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
