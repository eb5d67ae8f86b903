"""Order totals maintained in time linear in the lines (0002 re-summed every line for each line).

Inserting a line adds its amount to the order's total, deleting one subtracts it, so the stored
total still always equals the sum of the lines, at O(1) per line instead of O(lines):

- PostgreSQL: one statement-level trigger per INSERT / DELETE adds each order's share of the
  statement's lines (transition tables), once per order. The check that refuses any other write
  of a wrong total skips writes made by these triggers (``pg_trigger_depth() > 1``).
- SQLite has row triggers only: each line adds its own amount. While it does, the order's id is
  in ``crm_order_total_writer`` and the total check (a full re-sum, for writes by hand) stands aside.
"""

import importlib

from django.db import migrations

_0002 = importlib.import_module("crm.migrations.0002_order_total_triggers")
LINES_SUM = _0002.LINES_SUM

SQLITE_FORWARD = [
    "DROP TRIGGER crm_orderline_total_insert",
    "DROP TRIGGER crm_orderline_total_delete",
    "DROP TRIGGER crm_order_total_update",
    "CREATE TABLE crm_order_total_writer (order_id integer NOT NULL PRIMARY KEY)",
    """CREATE TRIGGER crm_orderline_total_insert AFTER INSERT ON crm_orderline
    BEGIN INSERT INTO crm_order_total_writer (order_id) VALUES (NEW.order_id);
          UPDATE crm_order SET total_amount = ROUND(total_amount + NEW.quantity * NEW.unit_price, 2)
          WHERE id = NEW.order_id;
          DELETE FROM crm_order_total_writer WHERE order_id = NEW.order_id; END""",
    """CREATE TRIGGER crm_orderline_total_delete AFTER DELETE ON crm_orderline
    BEGIN INSERT INTO crm_order_total_writer (order_id) VALUES (OLD.order_id);
          UPDATE crm_order SET total_amount = ROUND(total_amount - OLD.quantity * OLD.unit_price, 2)
          WHERE id = OLD.order_id;
          DELETE FROM crm_order_total_writer WHERE order_id = OLD.order_id; END""",
    f"""CREATE TRIGGER crm_order_total_update BEFORE UPDATE OF total_amount ON crm_order
    WHEN NOT EXISTS (SELECT 1 FROM crm_order_total_writer WHERE order_id = NEW.id)
         AND ROUND(NEW.total_amount, 2) <> ROUND({LINES_SUM.format(ref="NEW.id")}, 2)
    BEGIN SELECT RAISE(ABORT, 'order total_amount must equal the sum of its lines'); END""",
]
SQLITE_REVERSE = [
    "DROP TRIGGER crm_orderline_total_insert",
    "DROP TRIGGER crm_orderline_total_delete",
    "DROP TRIGGER crm_order_total_update",
    "DROP TABLE crm_order_total_writer",
    *(_0002.SQLITE_FORWARD[i] for i in (1, 2, 4)),
]


def _postgres_line_totals(operation: str, table: str, sign: str) -> list[str]:
    name = f"crm_orderline_{operation.lower()}_totals"
    return [
        f"""CREATE FUNCTION {name}() RETURNS trigger AS $$
        BEGIN
            UPDATE crm_order o SET total_amount = o.total_amount {sign} s.amount
            FROM (SELECT order_id, SUM(quantity * unit_price) AS amount FROM {table} GROUP BY order_id) s
            WHERE o.id = s.order_id;
            RETURN NULL;
        END $$ LANGUAGE plpgsql""",
        f"""CREATE TRIGGER {name} AFTER {operation} ON crm_orderline
        REFERENCING {"NEW" if operation == "INSERT" else "OLD"} TABLE AS {table}
        FOR EACH STATEMENT EXECUTE FUNCTION {name}()""",
    ]


POSTGRES_CHECK_TOTAL = f"""CREATE OR REPLACE FUNCTION crm_order_check_total() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'INSERT' AND NEW.total_amount <> 0 THEN
            RAISE EXCEPTION 'order total_amount is computed from its lines: insert orders with 0'
                USING ERRCODE = 'check_violation';
        ELSIF TG_OP = 'UPDATE' AND pg_trigger_depth() = 1 AND NEW.total_amount <> {LINES_SUM.format(ref="NEW.id")} THEN
            RAISE EXCEPTION 'order total_amount must equal the sum of its lines'
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$ LANGUAGE plpgsql"""

POSTGRES_FORWARD = [
    "DROP TRIGGER crm_orderline_maintain_total ON crm_orderline",
    "DROP FUNCTION crm_orderline_maintain_total()",
    *_postgres_line_totals("INSERT", "new_lines", "+"),
    *_postgres_line_totals("DELETE", "old_lines", "-"),
    POSTGRES_CHECK_TOTAL,
]
POSTGRES_REVERSE = [
    "DROP TRIGGER crm_orderline_insert_totals ON crm_orderline",
    "DROP FUNCTION crm_orderline_insert_totals()",
    "DROP TRIGGER crm_orderline_delete_totals ON crm_orderline",
    "DROP FUNCTION crm_orderline_delete_totals()",
    _0002.POSTGRES_FORWARD[2],
    _0002.POSTGRES_FORWARD[3],
    _0002.POSTGRES_FORWARD[4].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1),
]


class Migration(migrations.Migration):
    dependencies = [("crm", "0005_email_key_unique_and_text_rules")]

    operations = [
        migrations.RunPython(
            _0002.run_statements({"sqlite": SQLITE_FORWARD, "postgresql": POSTGRES_FORWARD}),
            _0002.run_statements({"sqlite": SQLITE_REVERSE, "postgresql": POSTGRES_REVERSE}),
        ),
    ]
