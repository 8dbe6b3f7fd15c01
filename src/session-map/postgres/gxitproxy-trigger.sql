-- galaxy-gie-proxy: change notification for Galaxy's Interactive Tools map in PostgreSQL.
--
-- Applied by `galaxy-gie-proxy --sessions postgresql://… --install-trigger` (or by hand:
-- `psql "postgresql://…" -v ON_ERROR_STOP=1 -f gxitproxy-trigger.sql`), by a role that may create
-- tables and functions in the map's schema. Idempotent: running it again changes nothing but the
-- function body. It never touches Galaxy's rows.
--
-- What it adds, beside Galaxy's table `gxitproxy`:
--   * `gxitproxy_version`, one row: a counter bumped once per statement that changes `gxitproxy`.
--     A proxy polls this one row instead of reading the whole map.
--   * a statement-level trigger that bumps it and sends `NOTIFY gxitproxy` with the same payload as
--     gx-it-proxy's README trigger. PostgreSQL merges identical notifications of one transaction,
--     so a Galaxy save (DELETE + INSERT + COMMIT) gives one notification, whatever the row count,
--     and the README's row-level trigger, if also installed, adds none.
--
-- Galaxy creates `gxitproxy` at its first Interactive Tool launch; the table is created here,
-- with the exact columns Galaxy declares, when it does not exist yet, so that the trigger can be
-- attached before then. Galaxy's `create(checkfirst=True)` then finds it and leaves it alone.

BEGIN;

CREATE TABLE IF NOT EXISTS gxitproxy (
  key VARCHAR(16) NOT NULL,
  key_type TEXT NOT NULL,
  token VARCHAR(32),
  host TEXT,
  port INTEGER,
  info TEXT,
  PRIMARY KEY (key, key_type)
);

CREATE TABLE IF NOT EXISTS gxitproxy_version (
  id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
  version BIGINT NOT NULL DEFAULT 0
);
INSERT INTO gxitproxy_version (id, version) VALUES (TRUE, 0) ON CONFLICT (id) DO NOTHING;

-- SECURITY DEFINER: Galaxy's role needs no right on gxitproxy_version; the search path is pinned
-- to the one in force now, so that the function finds the counter whoever triggers it.
CREATE OR REPLACE FUNCTION gxitproxy_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
  UPDATE gxitproxy_version SET version = version + 1 WHERE id;
  PERFORM pg_notify('gxitproxy', 'Table "gxitproxy" changed');
  RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS gxitproxy_changed ON gxitproxy;
CREATE TRIGGER gxitproxy_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON gxitproxy
FOR EACH STATEMENT EXECUTE FUNCTION gxitproxy_changed();

COMMIT;
