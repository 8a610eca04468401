"""Database triggers that keep the payout ledger honest whatever writes to it (ORM, raw SQL, a shell).

The model's constraints (valuation/models.py, Payout) already make two active payouts for one owner
in one round impossible *if* every link points within the same (round, owner). These triggers add what a
CHECK or UNIQUE constraint cannot say, on SQLite and PostgreSQL alike:

* an approved entry is never updated or deleted (drafts may be: a re-run replaces them, approval
  updates them once);
* the links of an entry (kind, round, owner, reverses, replaces) never change after insertion;
* a reversal cancels an approved payout entry of the same round and owner, amount for amount;
* a corrected payout follows a reversal of the same round and owner.

A violation is an IntegrityError (SQLite RAISE(ABORT), PostgreSQL SQLSTATE 23514). Installed by
migration valuation/0008_ledger_random_ids. `manage.py flush` cannot empty a ledger with approved rows on
SQLite (its DELETE fires the triggers; PostgreSQL's TRUNCATE does not): tests/conftest.py drops and
re-creates the triggers around a test flush with `sqlite_flush_sql`.
"""
from __future__ import annotations

IMMUTABLE = "approved payouts are immutable; record a correction instead"
LINKS_FIXED = "the kind, round, owner and links of a ledger entry never change"
BAD_REVERSAL = "a reversal must cancel an approved payout of the same round and owner, amount for amount"
BAD_REPLACEMENT = "a corrected payout must follow a reversal of the same round and owner"

TABLE = "valuation_payout"
SQLITE_TRIGGERS = {
    "payout_guard_update": f"""
CREATE TRIGGER IF NOT EXISTS payout_guard_update BEFORE UPDATE ON {TABLE}
WHEN OLD.status = 'approved'
  OR NEW.kind IS NOT OLD.kind OR NEW.round_id IS NOT OLD.round_id OR NEW.owner_id IS NOT OLD.owner_id
  OR NEW.reverses_id IS NOT OLD.reverses_id OR NEW.replaces_id IS NOT OLD.replaces_id
BEGIN
  SELECT RAISE(ABORT, '{IMMUTABLE}') WHERE OLD.status = 'approved';
  SELECT RAISE(ABORT, '{LINKS_FIXED}');
END""",
    "payout_guard_delete": f"""
CREATE TRIGGER IF NOT EXISTS payout_guard_delete BEFORE DELETE ON {TABLE}
WHEN OLD.status = 'approved'
BEGIN
  SELECT RAISE(ABORT, '{IMMUTABLE}');
END""",
    "payout_guard_reversal": f"""
CREATE TRIGGER IF NOT EXISTS payout_guard_reversal BEFORE INSERT ON {TABLE}
WHEN NEW.reverses_id IS NOT NULL AND NOT EXISTS (
  SELECT 1 FROM {TABLE} p WHERE p.id = NEW.reverses_id AND p.kind = 'payout' AND p.status = 'approved'
    AND p.round_id = NEW.round_id AND p.owner_id = NEW.owner_id AND p.amount = -NEW.amount)
BEGIN
  SELECT RAISE(ABORT, '{BAD_REVERSAL}');
END""",
    "payout_guard_replacement": f"""
CREATE TRIGGER IF NOT EXISTS payout_guard_replacement BEFORE INSERT ON {TABLE}
WHEN NEW.replaces_id IS NOT NULL AND NOT EXISTS (
  SELECT 1 FROM {TABLE} p WHERE p.id = NEW.replaces_id AND p.kind = 'reversal'
    AND p.round_id = NEW.round_id AND p.owner_id = NEW.owner_id)
BEGIN
  SELECT RAISE(ABORT, '{BAD_REPLACEMENT}');
END""",
}

POSTGRES_FUNCTION = f"""
CREATE OR REPLACE FUNCTION payout_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status = 'approved' THEN
    RAISE EXCEPTION '{IMMUTABLE}' USING ERRCODE = '23514';
  END IF;
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' AND (NEW.kind, NEW.round_id, NEW.owner_id, NEW.reverses_id, NEW.replaces_id)
      IS DISTINCT FROM (OLD.kind, OLD.round_id, OLD.owner_id, OLD.reverses_id, OLD.replaces_id) THEN
    RAISE EXCEPTION '{LINKS_FIXED}' USING ERRCODE = '23514';
  END IF;
  IF TG_OP = 'INSERT' AND NEW.reverses_id IS NOT NULL AND NOT EXISTS (
      SELECT 1 FROM {TABLE} p WHERE p.id = NEW.reverses_id AND p.kind = 'payout' AND p.status = 'approved'
        AND p.round_id = NEW.round_id AND p.owner_id = NEW.owner_id AND p.amount = -NEW.amount) THEN
    RAISE EXCEPTION '{BAD_REVERSAL}' USING ERRCODE = '23514';
  END IF;
  IF TG_OP = 'INSERT' AND NEW.replaces_id IS NOT NULL AND NOT EXISTS (
      SELECT 1 FROM {TABLE} p WHERE p.id = NEW.replaces_id AND p.kind = 'reversal'
        AND p.round_id = NEW.round_id AND p.owner_id = NEW.owner_id) THEN
    RAISE EXCEPTION '{BAD_REPLACEMENT}' USING ERRCODE = '23514';
  END IF;
  RETURN NEW;
END $$"""
POSTGRES_TRIGGER = (f"CREATE TRIGGER payout_guard BEFORE INSERT OR UPDATE OR DELETE ON {TABLE} "
                    "FOR EACH ROW EXECUTE FUNCTION payout_guard()")


def install_sql(vendor: str) -> list[str]:
    if vendor == "sqlite":
        return list(SQLITE_TRIGGERS.values())
    if vendor == "postgresql":
        return [POSTGRES_FUNCTION, f"DROP TRIGGER IF EXISTS payout_guard ON {TABLE}", POSTGRES_TRIGGER]
    return []  # another backend: the model's constraints and Payout.save()/delete() still apply


def drop_sql(vendor: str) -> list[str]:
    if vendor == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {name}" for name in SQLITE_TRIGGERS]
    if vendor == "postgresql":
        return [f"DROP TRIGGER IF EXISTS payout_guard ON {TABLE}", "DROP FUNCTION IF EXISTS payout_guard()"]
    return []


def install(apps, schema_editor) -> None:
    for sql in install_sql(schema_editor.connection.vendor):
        schema_editor.execute(sql, params=None)


def drop(apps, schema_editor) -> None:
    for sql in drop_sql(schema_editor.connection.vendor):
        schema_editor.execute(sql, params=None)


def sqlite_flush_sql(statements: list[str]) -> list[str]:
    """A test flush on SQLite: the DELETEs between dropping and re-creating the triggers (one transaction)."""
    if not any(TABLE in s for s in statements):
        return statements
    return drop_sql("sqlite") + statements + install_sql("sqlite")


def ensure_installed(sender, using: str = "default", **kwargs) -> None:
    """post_migrate: re-create the triggers if a later migration rebuilt the table (SQLite's ALTER of a
    column copies the table, and the copy has no triggers). A no-op while the table has no ledger links
    (migrated back before valuation/0008_ledger_random_ids)."""
    from django.db import connections

    connection = connections[using]
    with connection.cursor() as cursor:
        if TABLE not in connection.introspection.table_names(cursor):
            return
        columns = {c.name for c in connection.introspection.get_table_description(cursor, TABLE)}
        if not {"kind", "reverses_id", "replaces_id"} <= columns:
            return
        for sql in install_sql(connection.vendor):
            cursor.execute(sql)
