"""Job log files: appended whole lines, mode 0640, no symlinks followed, clear errors."""

import os
import stat
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from crm import joblog
from tests.privileges import without_root_override

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def log_dir(tmp_path, settings):
    settings.CRM_LOG_DIR = str(tmp_path)
    return tmp_path


def test_appends_lines_and_creates_with_mode_0640(log_dir):
    old_umask = os.umask(0o022)
    try:
        joblog.append_line("x_log.txt", "one")
        joblog.append_lines("x_log.txt", ["two", "three"])
    finally:
        os.umask(old_umask)
    path = log_dir / "x_log.txt"
    assert path.read_text() == "one\ntwo\nthree\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_keeps_existing_content_and_follows_rotation(log_dir):
    path = log_dir / "x_log.txt"
    joblog.append_line("x_log.txt", "before rotation")
    path.rename(log_dir / "x_log.txt.1")  # what logrotate does
    joblog.append_line("x_log.txt", "after rotation")
    assert path.read_text() == "after rotation\n"
    assert (log_dir / "x_log.txt.1").read_text() == "before rotation\n"


def test_refuses_to_follow_a_symlink(log_dir):
    target = log_dir / "elsewhere.txt"
    target.write_text("precious\n")
    (log_dir / "x_log.txt").symlink_to(target)
    with pytest.raises(joblog.JobLogError, match="symbolic link") as exc:
        joblog.append_line("x_log.txt", "attack")
    assert str(log_dir / "x_log.txt") in str(exc.value)
    assert target.read_text() == "precious\n"


def test_missing_folder_named(settings, tmp_path):
    settings.CRM_LOG_DIR = str(tmp_path / "nope")
    with pytest.raises(joblog.JobLogError, match=f"log folder {tmp_path / 'nope'} does not exist"):
        joblog.append_line("x_log.txt", "line")


def test_unwritable_folder_named(tmp_path):
    """In a process of its own that obeys file modes even as root."""
    folder = tmp_path / "logs"
    folder.mkdir()
    folder.chmod(0o555)
    code = (
        "import django; django.setup(); from crm import joblog\n"
        "try:\n    joblog.append_line('x_log.txt', 'line')\n"
        "except joblog.JobLogError as exc:\n    print(exc); raise SystemExit(3)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "CRM_LOG_DIR": str(folder)}
    result = subprocess.run(
        without_root_override([sys.executable, "-c", code]),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert f"cannot write job log {folder / 'x_log.txt'}: permission denied" in result.stdout
    assert not (folder / "x_log.txt").exists()


def _write_many(args):
    folder, worker = args
    from django.conf import settings

    settings.CRM_LOG_DIR = folder
    for i in range(200):
        joblog.append_line("x_log.txt", f"worker {worker} line {i} " + "x" * 200)


def test_several_writers_never_interleave_a_line(log_dir):
    with ProcessPoolExecutor(max_workers=4) as pool:
        list(pool.map(_write_many, [(str(log_dir), w) for w in range(4)]))
    lines = (log_dir / "x_log.txt").read_text().splitlines()
    assert len(lines) == 800
    assert all(line.startswith("worker ") and line.endswith("x" * 200) for line in lines)
