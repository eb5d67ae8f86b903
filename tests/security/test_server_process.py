"""Issue 24 against the real server process, as `make serve` starts it (bin/serve: gunicorn, DEBUG off).

F2: slow clients (one header byte at a time) held every sync worker; /health/ went unanswered.
F8: a multi-gigabyte body was spooled to disk and answered 200.
F5: a list variable of a million items cost seconds of CPU before "Authentication required".
F6: no login throttling (here: the project's own settings and the address uvicorn takes from a proxy).
"""

import json
import socket
import threading
import time

import pytest
import requests
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from tests.e2e.test_serve import serve  # noqa: F401 - the fixture: bin/serve on a free port
from tests.factories import UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WORKERS = 2  # the serve fixture's WEB_CONCURRENCY


def trickle(port: int, stop: threading.Event, opened: list) -> None:
    """A client that never finishes its request: one byte of its headers every second."""
    request = b"GET /health/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10_000
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            opened.append(sock)
            for byte in request:
                if stop.wait(1.0):
                    return
                sock.sendall(bytes([byte]))
    except OSError:
        return  # the server closed it: fine, the point is what /health/ does meanwhile


def test_slow_clients_do_not_stop_the_server(serve):  # noqa: F811
    port = int(serve.url.rsplit(":", 1)[1])
    stop, opened = threading.Event(), []
    clients = [threading.Thread(target=trickle, args=(port, stop, opened)) for _ in range(3 * WORKERS)]
    for client in clients:
        client.start()
    try:
        time.sleep(2)  # every slow client connected and sending
        assert len(opened) == 3 * WORKERS
        answered = []
        for _ in range(10):
            started = time.monotonic()
            try:
                status = requests.get(f"{serve.url}/health/", timeout=1).status_code
            except requests.Timeout:
                status = "timeout"
            answered.append((status, round(time.monotonic() - started, 2)))
            time.sleep(0.5)
        assert all(status == 200 for status, _ in answered), answered  # sync workers: every one a timeout
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=10)


def test_a_huge_upload_is_refused_before_it_is_read(serve):  # noqa: F811
    sent = {"bytes": 0}

    boundary = "b0undary"

    def body():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n\r\n'.encode()
        sent["bytes"] += len(head)
        yield head
        chunk = b"x" * 65536
        for _ in range(4_800):  # 300 MB if the server read it all
            sent["bytes"] += len(chunk)
            yield chunk

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    try:
        response = requests.post(f"{serve.url}/graphql", data=body(), headers=headers, timeout=30)
    except requests.ConnectionError:
        response = None  # the server answered and closed while the client was still sending
    assert sent["bytes"] < 100 * 2**20, sent  # refused early, not after reading gigabytes
    if response is not None:
        assert response.status_code in (413, 415), response.text[:300]
        assert response.headers["Content-Type"] == "application/json"
    # A declared length over the limit is refused without reading anything.
    response = requests.post(
        f"{serve.url}/graphql",
        data=json.dumps({"query": "{ hello }", "pad": "x" * 3_000_000}),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413 and response.json()["errors"][0]["extensions"]["code"] == "body_too_large"
    assert requests.get(f"{serve.url}/health/", timeout=5).status_code == 200


def test_hostile_variables_are_refused_before_they_cost_anything(serve):  # noqa: F811
    document = "mutation($ids: [ID!]!) { createOrder(input: {customerId: 1, productIds: $ids}) { errors } }"
    for ids, status, code in [
        (list(range(30_000)), 400, "query_rejected"),
        (list(range(9_999)), 200, "unauthenticated"),
    ]:
        response = requests.post(
            f"{serve.url}/graphql", json={"query": document, "variables": {"ids": ids}}, timeout=30
        )
        assert (response.status_code, response.json()["errors"][0]["extensions"]["code"]) == (status, code)


def test_logins_are_throttled_per_user_and_per_address(serve):  # noqa: F811
    hasher = PBKDF2PasswordHasher()  # the server checks passwords with the production hashers
    for username in ("admin", "clerk"):
        user = UserFactory(username=username, is_staff=True)
        user.password = hasher.encode("right-pw", hasher.salt())
        user.save()

    def log_in(username: str, password: str, address: str) -> int:
        """The admin's login form, as a browser behind a proxy on 127.0.0.1 (FORWARDED_ALLOW_IPS) sends it."""
        session = requests.Session()
        session.get(f"{serve.url}/admin/login/", timeout=30)
        form = {"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]}
        response = session.post(
            f"{serve.url}/admin/login/?next=/admin/",
            data=form,
            headers={"X-Forwarded-For": address},
            allow_redirects=False,
            timeout=30,
        )
        return response.status_code

    attacker, other = "203.0.113.7", "198.51.100.20"
    assert [log_in("admin", "wrong", attacker) for _ in range(8)] == [200] * 4 + [429] * 4
    assert log_in("admin", "right-pw", attacker) == 429
    assert log_in("admin", "right-pw", other) == 429  # the username, from any address
    assert log_in("clerk", "right-pw", attacker) == 429  # the address, for any username
    assert log_in("clerk", "right-pw", other) == 302  # the rest: unaffected
