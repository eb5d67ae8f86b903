"""Database-level invariants of orders that a CHECK constraint cannot express.

- Order lines are immutable (they keep the unit price paid): any UPDATE is refused.
- ``crm_order.total_amount`` is recomputed from the lines whenever a line is inserted or
  deleted, an order is inserted with a total of 0, and any other write of the total that
  differs from the sum of the lines is refused.
"""

from django.db import migrations

LINES_SUM = (
    "(SELECT COALESCE(SUM(l.quantity * l.unit_price), 0) FROM crm_orderline l WHERE l.order_id = {ref})"
)

SQLITE_FORWARD = [
    """CREATE TRIGGER crm_orderline_immutable BEFORE UPDATE ON crm_orderline
    BEGIN SELECT RAISE(ABORT, 'order lines are immutable: they keep the unit price paid'); END""",
    f"""CREATE TRIGGER crm_orderline_total_insert AFTER INSERT ON crm_orderline
    BEGIN UPDATE crm_order SET total_amount = ROUND({LINES_SUM.format(ref="NEW.order_id")}, 2)
          WHERE id = NEW.order_id; END""",
    f"""CREATE TRIGGER crm_orderline_total_delete AFTER DELETE ON crm_orderline
    BEGIN UPDATE crm_order SET total_amount = ROUND({LINES_SUM.format(ref="OLD.order_id")}, 2)
          WHERE id = OLD.order_id; END""",
    """CREATE TRIGGER crm_order_total_insert BEFORE INSERT ON crm_order WHEN NEW.total_amount <> 0
    BEGIN SELECT RAISE(ABORT, 'order total_amount is computed from its lines: insert orders with 0'); END""",
    f"""CREATE TRIGGER crm_order_total_update BEFORE UPDATE OF total_amount ON crm_order
    WHEN ROUND(NEW.total_amount, 2) <> ROUND({LINES_SUM.format(ref="NEW.id")}, 2)
    BEGIN SELECT RAISE(ABORT, 'order total_amount must equal the sum of its lines'); END""",
]
SQLITE_REVERSE = [
    f"DROP TRIGGER IF EXISTS {name}"
    for name in (
        "crm_orderline_immutable",
        "crm_orderline_total_insert",
        "crm_orderline_total_delete",
        "crm_order_total_insert",
        "crm_order_total_update",
    )
]

POSTGRES_FORWARD = [
    """CREATE FUNCTION crm_orderline_immutable() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'order lines are immutable: they keep the unit price paid'
            USING ERRCODE = 'integrity_constraint_violation';
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER crm_orderline_immutable BEFORE UPDATE ON crm_orderline
    FOR EACH ROW EXECUTE FUNCTION crm_orderline_immutable()""",
    f"""CREATE FUNCTION crm_orderline_maintain_total() RETURNS trigger AS $$
    DECLARE target bigint;
    BEGIN
        IF TG_OP = 'DELETE' THEN target := OLD.order_id; ELSE target := NEW.order_id; END IF;
        UPDATE crm_order SET total_amount = {LINES_SUM.format(ref="target")} WHERE id = target;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER crm_orderline_maintain_total AFTER INSERT OR DELETE ON crm_orderline
    FOR EACH ROW EXECUTE FUNCTION crm_orderline_maintain_total()""",
    f"""CREATE FUNCTION crm_order_check_total() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'INSERT' AND NEW.total_amount <> 0 THEN
            RAISE EXCEPTION 'order total_amount is computed from its lines: insert orders with 0'
                USING ERRCODE = 'check_violation';
        ELSIF TG_OP = 'UPDATE' AND NEW.total_amount <> {LINES_SUM.format(ref="NEW.id")} THEN
            RAISE EXCEPTION 'order total_amount must equal the sum of its lines'
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER crm_order_check_total BEFORE INSERT OR UPDATE OF total_amount ON crm_order
    FOR EACH ROW EXECUTE FUNCTION crm_order_check_total()""",
]
POSTGRES_REVERSE = [
    "DROP TRIGGER IF EXISTS crm_order_check_total ON crm_order",
    "DROP FUNCTION IF EXISTS crm_order_check_total()",
    "DROP TRIGGER IF EXISTS crm_orderline_maintain_total ON crm_orderline",
    "DROP FUNCTION IF EXISTS crm_orderline_maintain_total()",
    "DROP TRIGGER IF EXISTS crm_orderline_immutable ON crm_orderline",
    "DROP FUNCTION IF EXISTS crm_orderline_immutable()",
]


def run_statements(statements_by_vendor):
    def apply(apps, schema_editor):
        statements = statements_by_vendor.get(schema_editor.connection.vendor)
        if statements is None:
            raise NotImplementedError(
                f"crm needs order-total triggers for {schema_editor.connection.vendor}; "
                "only PostgreSQL and SQLite are supported."
            )
        for statement in statements:
            schema_editor.execute(statement, params=None)

    return apply


class Migration(migrations.Migration):
    dependencies = [("crm", "0001_initial")]

    operations = [
        migrations.RunPython(
            run_statements({"sqlite": SQLITE_FORWARD, "postgresql": POSTGRES_FORWARD}),
            run_statements({"sqlite": SQLITE_REVERSE, "postgresql": POSTGRES_REVERSE}),
        ),
    ]
