"""Captures what a job writes to stdout, stderr and logging while it runs, keeping the last OUTPUT_LIMIT bytes.

The streams are swapped for the run and always restored (a timeout, KeyboardInterrupt or SystemExit
included), so a `crontab work` child process or a Celery worker is left as it was. Logging is captured
by a handler on the root logger for the run (handlers made before the run keep writing to the real
stream), so a record reaches the capture once whatever handlers the project configured; loggers
with propagate=False are not seen. With `tee`, everything still reaches the real streams as it
happens (a run typed by hand shows its output live).
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
from collections.abc import Iterator

OUTPUT_LIMIT = 64 * 1024  # bytes kept per run: the end, where the failure usually is


class OutputBuffer:
    """The tail of a run's output. Thread-safe; memory stays around twice the limit."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        self.limit = limit
        self._parts: list[str] = []
        self._kept_chars = 0
        self.total_bytes = 0
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        if not text:
            return
        with self._lock:
            self.total_bytes += len(text.encode("utf-8", "replace"))
            self._parts.append(text)
            self._kept_chars += len(text)
            if self._kept_chars > 2 * self.limit:
                # A character is at least one byte: the last `limit` characters hold the last `limit` bytes.
                tail = "".join(self._parts)[-self.limit :]
                self._parts, self._kept_chars = [tail], len(tail)

    def text(self) -> str:
        """The output kept, with a first line saying how much was cut when it exceeded the limit."""
        with self._lock:
            data = "".join(self._parts).encode("utf-8", "replace")
        if self.total_bytes <= self.limit:
            return data.decode("utf-8", "replace")
        kept = data[-self.limit :].decode("utf-8", "ignore")  # "ignore": a character cut in half is dropped
        dropped = self.total_bytes - len(kept.encode("utf-8"))
        return f"[output cut: the first {dropped} bytes were dropped; the last {self.limit // 1024} KB follow]\n{kept}"


class _Tee(io.TextIOBase):
    """A text stream writing to the buffer and, optionally, to the stream it replaces."""

    def __init__(self, buffer: OutputBuffer, original, tee: bool) -> None:
        self._buffer, self._original, self._tee = buffer, original, tee

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer.write(text)
        if self._tee and self._original is not None:
            try:
                self._original.write(text)
            except (OSError, ValueError):  # a closed pipe must not fail the job
                pass
        return len(text)

    def flush(self) -> None:
        if self._tee and self._original is not None:
            with contextlib.suppress(OSError, ValueError):
                self._original.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self):
        return getattr(self._original, "encoding", "utf-8")


class _BufferHandler(logging.Handler):
    def __init__(self, buffer: OutputBuffer) -> None:
        super().__init__(logging.NOTSET)
        self._buffer = buffer
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._buffer.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def capture_output(*, tee: bool, limit: int = OUTPUT_LIMIT) -> Iterator[OutputBuffer]:
    """Capture stdout, stderr and root logging into an OutputBuffer for the duration of the block."""
    buffer = OutputBuffer(limit)
    saved = sys.stdout, sys.stderr
    handler = _BufferHandler(buffer)
    root = logging.getLogger()
    sys.stdout, sys.stderr = _Tee(buffer, saved[0], tee), _Tee(buffer, saved[1], tee)
    root.addHandler(handler)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        sys.stdout, sys.stderr = saved
