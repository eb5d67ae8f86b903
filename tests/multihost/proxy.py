"""A host's own way to the database: a small TCP proxy the multi-host kit can cut, silence and heal.

    python tests/multihost/proxy.py TARGET_HOST TARGET_PORT [LISTEN_ADDRESS]

Listens on a free port of LISTEN_ADDRESS (127.0.0.1), prints `listening <port>`, forwards every
connection to the target, and takes one command a line on stdin, answering `ok <command>` once it holds:

* `cut`: a partition the host notices: every connection is closed and new ones are refused (the
  listening socket is closed, so a connect gets ECONNREFUSED);
* `silent`: a partition nobody tells the host about: new connections are accepted and never answered,
  open ones stop carrying bytes (both ways) but stay open;
* `heal`: back to forwarding; bytes a `silent` spell held go on (as TCP would deliver them late), and
  connections it accepted without answering are closed.

Stdin closing ends the proxy. Standard library only: it runs beside the Django processes, not in them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys

CHUNK = 65536


class Proxy:
    def __init__(self, target: tuple[str, int], address: str = "127.0.0.1"):
        self.target = target
        self.address = address
        self.mode = "open"
        self.port = 0
        self.server: asyncio.AbstractServer | None = None
        self.links: set[asyncio.Task] = set()
        self.held: set[asyncio.StreamWriter] = set()  # accepted during `silent`, never answered
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.address, self.port))
        self.port = sock.getsockname()[1]
        self.server = await asyncio.start_server(self.accept, sock=sock)

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "silent":
            self.held.add(writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        task = asyncio.current_task()
        self.links.add(task)
        try:
            await asyncio.gather(
                self.pipe(reader, upstream_writer), self.pipe(upstream_reader, writer), return_exceptions=True
            )
        except asyncio.CancelledError:
            pass  # `cut`: this connection is dropped on purpose
        finally:
            self.links.discard(task)
            for end in (writer, upstream_writer):
                with contextlib.suppress(Exception):
                    end.close()

    async def pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                await self.flowing.wait()  # `silent`: the bytes stop here
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def drop_all(self) -> None:
        for task in list(self.links):
            task.cancel()
        self.drop_held()

    def drop_held(self) -> None:
        for writer in list(self.held):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self.held.clear()

    async def command(self, word: str) -> str:
        if word == "cut":
            self.mode = "cut"
            if self.server is not None:
                self.server.close()
                self.server = None
            self.drop_all()
            self.flowing.set()
        elif word == "silent":
            self.mode = "silent"
            self.flowing.clear()
        elif word == "heal":
            self.drop_held()
            self.mode = "open"
            self.flowing.set()
            if self.server is None:
                await self.listen()
        else:
            return f"error unknown command {word!r} (cut, silent, heal)"
        await asyncio.sleep(0.05)  # let cancelled links close their sockets
        return f"ok {word}"


async def main(host: str, port: int, address: str = "127.0.0.1") -> None:
    proxy = Proxy((host, port), address)
    await proxy.listen()
    print(f"listening {proxy.port}", flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        if line.strip():
            print(await proxy.command(line.strip()), flush=True)
    proxy.drop_all()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:4]))
