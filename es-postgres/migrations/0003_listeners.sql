-- Processes whose readers listen for this schema's commits (`LISTEN`). A store announces its
-- commits (`NOTIFY`) only while another process has a row here that has not expired: a
-- `NOTIFY` costs every commit that carries it, and nobody may be listening. A listening store
-- renews its row well before `expires_at`; a crashed one's row expires by itself.
CREATE TABLE listeners (
    instance    TEXT PRIMARY KEY,
    expires_at  TIMESTAMPTZ NOT NULL
);
