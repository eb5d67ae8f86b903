"""Root conftest: says which database the run uses, so a CI log shows it."""


def pytest_report_header(config):
    from django.conf import settings

    db = settings.DATABASES["default"]
    where = db.get("HOST") or db.get("NAME")
    return f"database: {db['ENGINE'].rsplit('.', 1)[-1]} ({where})"
