-- Shared by every projection: the newest watermark the domain has applied ("complete through"):
-- every change the consent service committed before `through` is in this schema's tables. One
-- row; written in the transaction of the batch that reached it (or, on a quiet topic, alone), and
-- never moved back (several projector instances share the domain). Readers that must not act on
-- an old view compare `now() - through` with their own bound.
CREATE TABLE IF NOT EXISTS {schema}.completeness (
    domain     boolean PRIMARY KEY DEFAULT true CHECK (domain),
    through    timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
