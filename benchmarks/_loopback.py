"""A minimal OpenAI-compatible server for overhead benchmarks: a fixed reply, 0 ms, 127.0.0.1.

`python -m benchmarks._loopback` prints `listening on http://127.0.0.1:PORT` and answers every
request with the same chat completion until SIGTERM. It is a raw asyncio protocol (no routing,
no JSON parsing, HTTP/1.1 keep-alive), many times faster than any client under test, so the
figures measured against it are the client's and not the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Any

import orjson

BODY = orjson.dumps(
    {
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "TASK_COMPLETED"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)
#: a request head larger than this is not an HTTP request this server understands
MAX_HEAD = 65536


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self._buffer = b""
        self._transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they have `write`
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        buffer = self._buffer + data if self._buffer else data
        replies = 0
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._transport.close()
                    return
                break
            head = buffer[:end].lower()
            at = head.find(b"content-length:")
            length = 0
            if at >= 0:
                stop = head.find(b"\r\n", at)
                length = int(head[at + 15 : stop if stop >= 0 else len(head)])
            whole = end + 4 + length
            if len(buffer) < whole:
                break
            buffer = buffer[whole:]
            replies += 1
        self._buffer = buffer
        if replies:
            self._transport.write(RESPONSE * replies)


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Connection, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> int:
    try:
        import uvloop  # the server only has to be fast; the client is what is measured
    except ImportError:
        asyncio.run(_serve())
    else:
        uvloop.run(_serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
