"""The web server's front: an event loop reads and writes HTTP, the Django (WSGI) app runs in a few threads.

gunicorn's sync workers read a request in the process that answers it: five clients sending one header
byte every 5 s held all five workers of `make serve`, and /health/ went unanswered for a minute (issue
24, F2). gunicorn says as much: sync workers assume a buffering proxy in front. Here the listening
socket belongs to uvicorn's event loop under gunicorn (``Worker``), so a slow client costs a
connection, not a worker: ``ThreadedWSGI`` reads the whole request (headers and body, capped) on the
loop, only then hands it to the project's WSGI app in one of the worker's threads, and writes the
answer back on the loop, at whatever pace the client reads.

Why the WSGI app and not Django's ASGI handler: Django's handler runs each request's sync code in a
thread of its own (no database connection outlives a request: CONN_MAX_AGE is lost) and hops between
the loop and a thread for every middleware; `{ hello }` fell from ~2,100 to ~660 requests/s on the
bench (bench/http.py). Here a request costs one hop, the threads are long-lived (each keeps its
database connection as a sync worker does), and everything Django does is what the WSGI app does.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor

from uvicorn_worker import UvicornWorker

logger = logging.getLogger("alx_backend_graphql_crm.server")

DEFAULT_THREADS = 4


class ThreadedWSGI:
    """An ASGI app running ``wsgi_app``: requests read on the event loop, the app called in ``threads`` threads.

    A body longer than Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (nothing of ours takes uploads) is
    refused with 413 JSON before it is read, or as soon as a chunked one passes the limit: no body
    is spooled to disk (issue 24, F8). The answer is written whole once the app has finished.
    """

    def __init__(self, wsgi_app, *, threads: int = DEFAULT_THREADS):
        self.wsgi_app = wsgi_app
        self.threads = threads
        self._executor: ThreadPoolExecutor | None = None

    @property
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:  # made in the worker process, after gunicorn's fork
            self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="django")
        return self._executor

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: none here; uvicorn closes the connection
            return
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        environ = wsgi_environ(scope, body)
        loop = asyncio.get_running_loop()
        try:
            status, headers, content = await loop.run_in_executor(self.executor, self._call, environ)
        except Exception:
            logger.exception("Unexpected error answering %s %s", scope["method"], scope["path"])
            status, headers, content = _json_answer(500, "Internal server error. It has been logged.", "internal_error")
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _call(self, environ: dict) -> tuple[int, list, bytes]:
        """The WSGI app's answer, collected in this thread (close() included: Django's request_finished)."""
        started = {}

        def start_response(status, headers, exc_info=None):
            started["status"] = int(status.split(" ", 1)[0])
            # Django's WSGI handler writes Set-Cookie values with a leading space (cookie.output(header="")):
            # gunicorn strips it, h11 refuses it.
            started["headers"] = [
                (name.lower().encode("latin1"), value.strip().encode("latin1")) for name, value in headers
            ]

        result = self.wsgi_app(environ, start_response)
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return started["status"], started["headers"], content

    async def _read_body(self, scope, receive, send) -> bytes | None:
        """The request's body, or None after answering 413 for one over the limit."""
        from django.conf import settings

        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        declared = _header(scope, b"content-length")
        if limit is not None and declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse_body(send, int(declared), limit)
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if limit is not None and size > limit:
                await _refuse_body(send, None, limit)
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._executor is not None:
                    self._executor.shutdown(wait=True)  # requests still in a thread finish first
                await send({"type": "lifespan.shutdown.complete"})
                return


def _header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin1").strip()
    return None


def _json_answer(status: int, message: str, code: str) -> tuple[int, list, bytes]:
    content = json.dumps({"errors": [{"message": message, "extensions": {"code": code}}]}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        (b"connection", b"close"),
    ]
    return status, headers, content


async def _refuse_body(send, size: int | None, limit: int) -> None:
    said = f"is {size} bytes" if size is not None else "is longer than that"
    status, headers, content = _json_answer(
        413, f"The request body {said}; the limit is {limit} bytes.", "body_too_large"
    )
    logger.warning("Request body refused: over %s bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)", limit)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def wsgi_environ(scope, body: bytes) -> dict:
    """PEP 3333's environ for an ASGI HTTP scope (as asgiref's WsgiToAsgi builds it) and its read body."""
    server = scope.get("server") or ("localhost", 80)
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode("utf8").decode("latin1"),
        "PATH_INFO": scope["path"].encode("utf8").decode("latin1"),
        "QUERY_STRING": scope["query_string"].decode("latin1"),
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] if server[1] is not None else 80),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if scope.get("client"):
        environ["REMOTE_ADDR"] = scope["client"][0]
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin1"), raw_value.decode("latin1")
        if name == "content-length":
            key = "CONTENT_LENGTH"
        elif name == "content-type":
            key = "CONTENT_TYPE"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    environ["CONTENT_LENGTH"] = str(len(body))  # read in full: a chunked body has its length now
    return environ


class Worker(UvicornWorker):
    """gunicorn's worker for `make serve`: uvicorn's event loop on the socket, ``threads`` threads for Django.

    h11 parses HTTP: it refuses a request line plus headers over 16 KB (431) instead of buffering
    them without end. gunicorn's ``threads`` setting (gunicorn.conf.py: WEB_THREADS) sizes the pool.
    """

    CONFIG_KWARGS = {"loop": "asyncio", "http": "h11", "lifespan": "on"}

    def load_wsgi(self):
        super().load_wsgi()
        if isinstance(self.wsgi, ThreadedWSGI):
            self.wsgi.threads = self.cfg.threads
