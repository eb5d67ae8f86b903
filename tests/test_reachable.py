"""The one marker hook: every service marker has a check; a miss skips with the reason, or fails under CRM_E2E=1."""

import configparser
from pathlib import Path

import pytest

from tests import reachable
from tests.conftest import pytest_runtest_setup


def declared_markers() -> set[str]:
    ini = configparser.ConfigParser()
    ini.read(Path(__file__).resolve().parents[1] / "pytest.ini")
    return {line.split(":", 1)[0].strip() for line in ini["pytest"]["markers"].strip().splitlines()}


def test_every_declared_marker_has_a_check_and_slow_never_skips():
    assert set(reachable.CHECKS) == declared_markers()
    assert reachable.missing("slow") is None


class Item:
    """Just enough of a pytest item for the hook: the markers it carries."""

    def __init__(self, *markers):
        self.markers = markers

    def get_closest_marker(self, name):
        return name if name in self.markers else None


@pytest.fixture
def no_redis(monkeypatch, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # port 1: nothing listens
    reachable.missing.cache_clear()
    yield
    reachable.missing.cache_clear()


def test_a_missing_service_skips_with_its_reason(monkeypatch, no_redis):
    monkeypatch.delenv("CRM_E2E", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"needs Redis at CELERY_BROKER_URL \(redis://127.0.0.1:1/0\)"):
        pytest_runtest_setup(Item("redis", "slow"))


def test_under_crm_e2e_a_missing_service_fails(monkeypatch, no_redis):
    monkeypatch.setenv("CRM_E2E", "1")
    with pytest.raises(pytest.fail.Exception, match="CRM_E2E=1 but this test cannot run: needs Redis"):
        pytest_runtest_setup(Item("redis"))


def test_unmarked_and_slow_tests_run(monkeypatch, no_redis):
    monkeypatch.setenv("CRM_E2E", "1")
    assert pytest_runtest_setup(Item()) is None
    assert pytest_runtest_setup(Item("slow")) is None
