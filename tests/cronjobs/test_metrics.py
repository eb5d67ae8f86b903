"""GET /metrics: who may read it, what it says (parsed with prometheus-client's own parser), how many series a
job costs, and its query count."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from cronjobs import dbclock
from cronjobs.models import JobRun
from cronjobs.retention import prune_job_runs
from tests.clock import travel
from tests.factories import JobRunFactory, UserFactory

JOBS = "tests.cronjobs.jobs"
TOKEN = "metrics-token-0123456789abcdef"
pytestmark = pytest.mark.django_db


def scrape(client=None, **headers) -> dict:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def samples(families: dict, family: str, sample_name: str | None = None, **labels) -> list:
    return [
        s
        for s in families[family].samples
        if (sample_name is None or s.name == sample_name) and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def value(families: dict, family: str, sample_name: str | None = None, **labels) -> float:
    [sample] = samples(families, family, sample_name, **labels)
    return sample.value


def add_run(job: str, status: str, *, ago: timedelta, seconds: float = 1.0, result: str = "") -> JobRun:
    return JobRunFactory(
        job_name=job, status=status, started_at=timezone.now() - ago, took=timedelta(seconds=seconds), result=result
    )


def bearer(token=TOKEN) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


class TestAccess:
    @pytest.fixture(autouse=True)
    def jobs(self, settings):
        settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed")]

    def test_off_for_anonymous_and_non_staff_when_no_token_is_set(self, settings):
        settings.CRONJOBS_METRICS_TOKEN = None
        assert Client().get("/metrics").status_code == 404
        client = Client()
        client.force_login(UserFactory())
        assert client.get("/metrics").status_code == 404
        assert Client().get("/metrics", **bearer("anything")).status_code == 404

    def test_staff_sessions_may_always_read_it(self, settings, admin_client):
        settings.CRONJOBS_METRICS_TOKEN = None
        assert "cronjobs_job_runs" in scrape(admin_client)

    def test_the_bearer_token_opens_it_and_a_wrong_one_does_not(self, settings):
        settings.CRONJOBS_METRICS_TOKEN = TOKEN
        assert "cronjobs_job_runs" in scrape(**bearer())
        assert Client().get("/metrics", **bearer(TOKEN + "x")).status_code == 404
        assert Client().get("/metrics").status_code == 404

    def test_only_get_and_head(self, admin_client):
        assert admin_client.post("/metrics").status_code == 405


class TestValues:
    @pytest.fixture(autouse=True)
    def jobs(self, settings):
        settings.CRONJOBS_METRICS_TOKEN = TOKEN
        settings.CRONJOBS = [
            ("* * * * *", f"{JOBS}.succeed", {"name": "steady"}),
            ("* * * * *", f"{JOBS}.succeed", {"name": "stale"}),
            ("* * * * *", f"{JOBS}.boom"),
            ("* * * * *", f"{JOBS}.succeed", {"name": "fresh"}),
        ]

    def test_timestamps_status_counters_histogram_late_and_paused(self):
        add_run("steady", "succeeded", ago=timedelta(minutes=3), seconds=0.5)
        add_run("steady", "skipped", ago=timedelta(minutes=2), seconds=0, result="still running: run #1")
        last = add_run("steady", "succeeded", ago=timedelta(seconds=20), seconds=40)
        add_run("stale", "succeeded", ago=timedelta(hours=3), seconds=7)
        add_run("boom", "succeeded", ago=timedelta(minutes=5), seconds=2)
        add_run("boom", "failed", ago=timedelta(minutes=4), seconds=3)
        add_run("boom", "timed_out", ago=timedelta(minutes=3), seconds=4000)
        add_run("boom", "missed", ago=timedelta(minutes=2), seconds=0, result="missed: starting 900s after")
        failed = add_run("boom", "failed", ago=timedelta(minutes=1), seconds=0.2)
        families = scrape(**bearer())

        assert value(families, "cronjobs_job_last_success_timestamp_seconds", job="steady") == pytest.approx(
            last.finished_at.timestamp()
        )
        assert value(families, "cronjobs_job_last_run_timestamp_seconds", job="boom") == pytest.approx(
            failed.started_at.timestamp()
        )
        assert not samples(families, "cronjobs_job_last_success_timestamp_seconds", job="fresh")  # never ran
        assert value(families, "cronjobs_job_last_status", job="boom", status="failed") == 1
        # The last status is written only where it is not a success: a healthy fleet's zeros and ones said
        # nothing the timestamps do not (last run <= last success), at seven series a job.
        assert samples(families, "cronjobs_job_last_status", job="boom") == samples(
            families, "cronjobs_job_last_status", job="boom", status="failed"
        )
        assert not samples(families, "cronjobs_job_last_status", job="steady")

        runs = {
            s.labels["status"]: s.value
            for s in samples(families, "cronjobs_job_runs", "cronjobs_job_runs_total", job="boom")
        }
        # Statuses the job has had; a zero was six of seven series of every job.
        assert runs == {"succeeded": 1, "failed": 2, "timed_out": 1, "missed": 1}
        assert families["cronjobs_job_runs"].type == "counter"
        assert value(families, "cronjobs_job_failures", "cronjobs_job_failures_total", job="boom") == 4
        assert value(families, "cronjobs_job_failures", "cronjobs_job_failures_total", job="steady") == 0
        assert value(families, "cronjobs_job_failures", "cronjobs_job_failures_total", job="fresh") == 0

        # Per job: count and sum (the mean over any window); the buckets are the fleet's histogram's.
        summary = "cronjobs_job_duration_seconds"
        assert families[summary].type == "summary"
        assert value(families, summary, f"{summary}_count", job="boom") == 4  # the missed slot did not run
        assert value(families, summary, f"{summary}_sum", job="boom") == pytest.approx(2 + 3 + 4000 + 0.2)
        assert value(families, summary, f"{summary}_count", job="steady") == 2  # the skip did not run
        assert value(families, summary, f"{summary}_count", job="fresh") == 0
        histogram = "cronjobs_run_duration_seconds"
        assert families[histogram].type == "histogram"
        assert value(families, histogram, f"{histogram}_count") == 7  # steady 2, stale 1, boom 4
        assert value(families, histogram, f"{histogram}_sum") == pytest.approx(0.5 + 40 + 7 + 2 + 3 + 4000 + 0.2)
        assert value(families, histogram, f"{histogram}_bucket", le="1.0") == 2
        assert value(families, histogram, f"{histogram}_bucket", le="5.0") == 4
        assert value(families, histogram, f"{histogram}_bucket", le="60.0") == 6
        assert value(families, histogram, f"{histogram}_bucket", le="3600.0") == 6
        assert value(families, histogram, f"{histogram}_bucket", le="+Inf") == 7

        fleet = {s.labels["status"]: s.value for s in families["cronjobs_runs"].samples}
        assert fleet == {
            "running": 0,
            "succeeded": 4,
            "failed": 2,
            "skipped": 1,
            "timed_out": 1,
            "interrupted": 0,
            "missed": 1,
        }
        assert not samples(families, "cronjobs_job_paused", job="steady")  # written where it is 1

    def test_the_paused_gauge_follows_pause_and_resume(self):
        from cronjobs import pausing

        pausing.pause_job("stale", by="ops", reason="upstream down")
        families = scrape(**bearer())
        assert value(families, "cronjobs_job_paused", job="stale") == 1
        assert not samples(families, "cronjobs_job_paused", job="steady")
        assert value(families, "cronjobs_jobs", state="paused") == 1
        pausing.resume_job("stale")
        assert not samples(scrape(**bearer()), "cronjobs_job_paused")

    def test_late_and_failing_match_health_cron(self, settings):
        with travel(datetime(2026, 3, 2, 12, 45, tzinfo=UTC)):
            self._late_and_failing_match_health_cron(settings)

    def _late_and_failing_match_health_cron(self, settings):
        # Hourly: due at 12:00, late once the 30-minute default grace has passed without a success.
        settings.CRONJOBS = [(("0 * * * *",) + entry[1:]) for entry in settings.CRONJOBS]
        add_run("steady", "succeeded", ago=timedelta(minutes=44))
        add_run("stale", "succeeded", ago=timedelta(hours=3))
        add_run("boom", "failed", ago=timedelta(minutes=44))
        health = Client().get("/health/cron/").json()
        families = scrape(**bearer())
        late = {s.labels["job"] for s in families["cronjobs_job_late"].samples if s.value == 1}
        failing = {s.labels["job"] for s in families["cronjobs_job_failing"].samples if s.value == 1}
        assert late == set(health["late"]) == {"stale"}
        assert failing == set(health["failing"]) == {"boom"}
        assert {s.labels["job"] for s in families["cronjobs_job_late"].samples} == {"stale"}  # only where 1
        by_state = {s.labels["state"]: s.value for s in families["cronjobs_jobs"].samples}
        assert by_state == {
            "ok": 1,
            "new": 1,
            "running": 0,
            "retrying": 0,
            "late": 1,
            "failing": 1,
            "stuck": 0,
            "paused": 0,
            "disabled": 0,
        }


def counters(families: dict) -> dict:
    """Every counter, summary and histogram sample, by name and labels."""
    kept = (
        "cronjobs_job_runs",
        "cronjobs_job_failures",
        "cronjobs_job_duration_seconds",
        "cronjobs_runs",
        "cronjobs_run_duration_seconds",
    )
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in kept for s in families[f].samples}


def test_pruning_old_history_never_lowers_a_counter(settings):
    settings.CRONJOBS_METRICS_TOKEN = TOKEN
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.boom"), ("* * * * *", f"{JOBS}.succeed")]
    for days, status, seconds, result in [
        (40, "failed", 3, ""),
        (40, "succeeded", 700, ""),
        (35, "missed", 0, "missed: starting 120s after its minute"),
        (33, "timed_out", 4000, ""),
        (2, "failed", 0.5, ""),
    ]:
        add_run("boom", status, ago=timedelta(days=days), seconds=seconds, result=result)
    add_run("succeed", "succeeded", ago=timedelta(days=50), seconds=1)
    before = counters(scrape(**bearer()))
    assert before[("cronjobs_job_failures_total", (("job", "boom"),))] == 4

    assert prune_job_runs(days=30) == "Deleted 5 job runs older than 30 days"
    assert JobRun.objects.count() == 1
    assert counters(scrape(**bearer())) == before

    add_run("boom", "failed", ago=timedelta(days=45), seconds=2)  # more old history, pruned on top of totals
    assert prune_job_runs(days=30) == "Deleted 1 job runs older than 30 days"
    after = counters(scrape(**bearer()))
    assert after[("cronjobs_job_failures_total", (("job", "boom"),))] == 5
    assert after[("cronjobs_job_duration_seconds_count", (("job", "boom"),))] == 5
    # boom's 3 s, 0.5 s and 2 s runs and succeed's 1 s run, all pruned
    assert after[("cronjobs_run_duration_seconds_bucket", (("le", "5.0"),))] == 4


@pytest.mark.parametrize("count", [10, 1000])
def test_a_bounded_number_of_queries_whatever_the_number_of_jobs(count, settings, django_assert_max_num_queries):
    settings.CRONJOBS_METRICS_TOKEN = TOKEN
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed", {"name": f"job{i}"}) for i in range(count)]
    now = timezone.now()
    JobRun.objects.bulk_create(
        JobRunFactory.build(job_name=f"job{i}", status=status, started_at=now - timedelta(minutes=ago))
        for i in range(count)
        for status, ago in (("succeeded", 2), ("failed", 1))
    )
    dbclock.reading()  # measured once a minute per process (PostgreSQL), not per scrape: not counted here
    # snapshot (3: runs, last rows, pauses), the history's totals, the pruned totals
    with django_assert_max_num_queries(5):
        families = scrape(**bearer())
    assert value(families, "cronjobs_jobs", state="failing") == count
    assert len(families["cronjobs_job_failing"].samples) == count
    assert value(families, "cronjobs_runs", "cronjobs_runs_total", status="failed") == count


class TestCardinality:
    """Per job, series only where they carry information: a healthy job is six lines whatever its history."""

    @pytest.fixture(autouse=True)
    def jobs(self, settings):
        settings.CRONJOBS_METRICS_TOKEN = TOKEN
        settings.CRONJOBS = [
            ("* * * * *", f"{JOBS}.succeed", {"name": "steady"}),
            ("* * * * *", f"{JOBS}.boom"),
        ]

    @staticmethod
    def lines_of(job: str) -> list[str]:
        text = Client().get("/metrics", **bearer()).content.decode()
        return [line for line in text.splitlines() if f'job="{job}"' in line]

    def test_a_healthy_job_is_six_lines_whatever_its_history(self):
        for minutes in range(30, 0, -1):
            add_run("steady", "succeeded", ago=timedelta(minutes=minutes), seconds=minutes)
        add_run("steady", "skipped", ago=timedelta(seconds=30), seconds=0, result="still running: run #1")
        lines = self.lines_of("steady")
        assert [line.split("{")[0] for line in lines] == [
            "cronjobs_job_last_success_timestamp_seconds",
            "cronjobs_job_last_run_timestamp_seconds",
            "cronjobs_job_runs_total",  # succeeded
            "cronjobs_job_runs_total",  # skipped
            "cronjobs_job_failures_total",
            "cronjobs_job_duration_seconds_count",
            "cronjobs_job_duration_seconds_sum",
        ]
        assert 'cronjobs_job_duration_seconds_count{job="steady"} 30.0' in lines

    def test_a_failing_job_adds_what_is_wrong(self):
        add_run("boom", "succeeded", ago=timedelta(minutes=2))
        add_run("boom", "failed", ago=timedelta(minutes=1))
        lines = self.lines_of("boom")
        assert 'cronjobs_job_last_status{job="boom",status="failed"} 1.0' in lines
        assert 'cronjobs_job_failing{job="boom"} 1.0' in lines
        assert 'cronjobs_job_failures_total{job="boom"} 1.0' in lines
        assert len(lines) == 9

    def test_fleet_counters_do_not_fall_when_a_job_is_removed(self, settings):
        add_run("steady", "succeeded", ago=timedelta(seconds=20), seconds=3)  # an every-minute job: on time
        add_run("boom", "failed", ago=timedelta(minutes=1), seconds=1)
        before = scrape(**bearer())
        settings.CRONJOBS = settings.CRONJOBS[:1]
        after = scrape(**bearer())
        assert not samples(after, "cronjobs_job_failures", job="boom")
        for family in ("cronjobs_runs", "cronjobs_run_duration_seconds"):
            assert [(s.labels, s.value) for s in after[family].samples] == [
                (s.labels, s.value) for s in before[family].samples
            ]
        assert value(after, "cronjobs_jobs", state="ok") == 1
        assert sum(s.value for s in after["cronjobs_jobs"].samples) == 1


def test_the_text_is_what_prometheus_clients_generate_latest_writes(settings):
    """Our text, read by prometheus-client's parser and written again by its generate_latest: byte for byte."""
    from prometheus_client import generate_latest
    from prometheus_client.registry import Collector, CollectorRegistry

    from cronjobs import metrics, pausing

    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed", {"name": n}) for n in ("steady", "stale", "fresh")]
    settings.CRONJOBS.append(("* * * * *", f"{JOBS}.boom"))
    add_run("steady", "succeeded", ago=timedelta(minutes=3), seconds=0.25)
    add_run("stale", "succeeded", ago=timedelta(days=3), seconds=123456789)
    add_run("boom", "timed_out", ago=timedelta(minutes=1), seconds=1e-7)
    pausing.pause_job("stale", by="ops", reason="upstream down")
    ours = metrics.exposition()

    class Parsed(Collector):
        def collect(self):
            return text_string_to_metric_families(ours.decode())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Parsed())
    assert generate_latest(registry) == ours

    odd = metrics.Family("odd", "gauge", 'help with a \\ and a\nnewline and "quotes"')
    odd.add("", metrics.label("job", 'a"b\\c\nd'), 0.1)
    text = odd.text()
    assert text.splitlines()[-1] == 'odd{job="a\\"b\\\\c\\nd"} 0.1'
    [family] = text_string_to_metric_families(text)
    assert family.samples[0].labels == {"job": 'a"b\\c\nd'}


def test_numbers_are_written_as_prometheus_client_writes_them():
    from prometheus_client.utils import floatToGoString

    from cronjobs.metrics import count_text, number

    values = [0, 1, 7, 999_999, 1_000_000, 0.1, 2.2, 1e-7, -3.5, -999_999.5, 123_456.789, 1_234_567.0]
    values += [1.796673298058125e9, 1.5e9, 12_345_678.9, 1e15, 9.99e15, 9_999_999_999_999_998.0, 1e16, 1e20]
    values += [float("inf"), float("-inf"), float("nan"), -1e7]
    values += [1.7e9 + k * 0.123_457 for k in range(1_000)] + [10 ** (5 + k / 100) for k in range(1_200)]
    values += [*range(-1_000, 1_000), -999_999, 999_998, -1_000_000, 10**7, 10**16 + 1]  # counts: ints
    assert [number(v) for v in values] == [floatToGoString(v) for v in values]
    counts = [*range(0, 2_000), 999_999, 1_000_000, 10**16 + 1]
    assert [count_text(c) for c in counts] == [floatToGoString(c) for c in counts]


def test_a_scrape_pauses_the_cyclic_collector_and_gives_it_back_as_it_was(monkeypatch):
    import gc

    from cronjobs import metrics

    seen, real = [], metrics.collect

    def collect():
        seen.append(gc.isenabled())
        if len(seen) == 2:
            raise RuntimeError("the database went away")
        return real()

    monkeypatch.setattr(metrics, "collect", collect)
    assert metrics.exposition().startswith(b"# HELP")
    with pytest.raises(RuntimeError):
        metrics.exposition()
    assert seen == [False, False] and gc.isenabled()
    gc.disable()
    try:
        metrics.exposition()
        assert not gc.isenabled()  # someone else's pause is theirs to end
    finally:
        gc.enable()


def test_each_scrape_says_what_changed_since_the_one_before(settings):
    """A job's lines are reused between scrapes only while what they say is unchanged."""
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed"), ("* * * * *", f"{JOBS}.add")]
    settings.CRONJOBS_METRICS_TOKEN = TOKEN
    add_run("succeed", "succeeded", ago=timedelta(minutes=3))
    first = scrape(**bearer())
    assert value(first, "cronjobs_job_runs", "cronjobs_job_runs_total", job="succeed", status="succeeded") == 1
    late = add_run("succeed", "failed", ago=timedelta(minutes=1), seconds=2.5, result="boom")
    second = scrape(**bearer())
    assert value(second, "cronjobs_job_runs", "cronjobs_job_runs_total", job="succeed", status="failed") == 1
    assert value(second, "cronjobs_job_failures", "cronjobs_job_failures_total", job="succeed") == 1
    assert value(second, "cronjobs_job_last_status", job="succeed", status="failed") == 1
    assert value(second, "cronjobs_job_duration_seconds", "cronjobs_job_duration_seconds_sum", job="succeed") == 3.5
    started = value(second, "cronjobs_job_last_run_timestamp_seconds", job="succeed")
    assert started == late.started_at.timestamp()
    assert not samples(second, "cronjobs_job_runs", job="add")  # never ran: no line, in either scrape
