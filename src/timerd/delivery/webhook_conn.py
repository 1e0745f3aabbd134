"""One keep-alive connection to a webhook receiver: write a request, frame its answer.

Answers are framed by httptools (llhttp, the parser of Node.js, uvicorn and aiohttp), not by
hand: chunked bodies, Content-Length, the statuses without a body and conflicting framing
headers are its job. What stays ours: an answer counts once its head is complete (a webhook
needs only the status and `Retry-After`), the body is skipped up to a limit, and the pool
gets the connection back only after the parser saw the whole answer and the receiver lets
the connection stay open. An answer the parser rejects, or whose end only a close can tell,
closes the connection.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol, cast

import httptools

HEAD_LIMIT = 64 * 1024
"""Largest response head accepted (interim 1xx heads included); a longer one is an error."""
BODY_LIMIT = 64 * 1024
"""Body bytes skipped to keep a connection; a longer body closes it instead."""
INTERIM_LIMIT = 16
"""Interim (1xx) answers accepted before the final one; one more fails the attempt."""
_RETRY_AFTER = b"retry-after"


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """What a receiver answered: its status and, if any, its Retry-After header."""

    status: int
    retry_after: str | None


class ReceiverClosed(ConnectionError):
    """The receiver closed the connection before a complete answer head."""

    def __str__(self) -> str:
        return "the receiver closed the connection without an answer"


class BadAnswer(ConnectionError):
    """The receiver's answer was not HTTP/1.x as we know it."""


class _ResponseParser(Protocol):
    """The part of httptools.HttpResponseParser used here (httptools ships no types)."""

    def feed_data(self, data: bytes) -> None: ...

    def get_status_code(self) -> int: ...

    def should_keep_alive(self) -> bool: ...


class _Stop(Exception):
    """Raised from a parser callback to stop parsing: the connection is already closed."""


class Connection(asyncio.Protocol):
    """One keep-alive connection; one request and its answer at a time.

    The on_* methods are httptools' callbacks; it looks them up by name.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self.answered_bytes = 0  # of the current answer; 0 means the receiver said nothing
        self._parser = cast(_ResponseParser, httptools.HttpResponseParser(self))
        self._answer: asyncio.Future[HttpAnswer] | None = None
        self._expecting = False  # a request is out and its final answer is not complete
        self._head_done = False  # the final (not 1xx) head of the current answer was parsed
        self._interim = 0
        self._body_bytes = 0
        self._retry_after: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(ReceiverClosed())

    def close(self) -> None:
        """Close gracefully (the answer, if any, is already settled)."""
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once: mid-answer, the stream is unusable."""
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    def send(self, request: bytes, deadline: float | None = None) -> asyncio.Future[HttpAnswer]:
        """Write `request`; the future fails with TimeoutError at loop time `deadline`.

        One timer handle per request: `asyncio.timeout` around each delivery cost several
        times as much (a Timeout object, current_task, reschedule), at thousands a second.
        """
        if self.transport is None:
            raise ReceiverClosed
        loop = asyncio.get_running_loop()
        answer = self._answer = loop.create_future()
        self.reusable = False
        self.answered_bytes = 0
        self._expecting, self._head_done, self._interim = True, False, 0
        self.transport.write(request)
        if deadline is not None:
            timer = loop.call_at(deadline, self._time_out, answer)
            answer.add_done_callback(lambda _: timer.cancel())
        return answer

    def _time_out(self, answer: asyncio.Future[HttpAnswer]) -> None:
        if not answer.done():
            answer.set_exception(TimeoutError())
            self.abort()

    def data_received(self, data: bytes) -> None:
        if not self._expecting:
            self.close()  # bytes nobody asked for: the stream is out of step
            return
        self.answered_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self.closed:  # not a _Stop of ours: the parser found the framing broken
                self._fail(BadAnswer(f"not an HTTP answer: {exc}"))
            return
        if not self._head_done and self.answered_bytes > HEAD_LIMIT:
            self._fail(BadAnswer("the answer's head is too long"))

    def on_message_begin(self) -> None:
        """Start an answer; a second one after the final answer is out of step."""
        if not self._expecting:
            self.close()
            raise _Stop
        self._retry_after = None

    def on_header(self, name: bytes, value: bytes) -> None:
        """Keep `Retry-After`; the parser keeps what framing needs."""
        if len(name) == len(_RETRY_AFTER) and name.lower() == _RETRY_AFTER:
            self._retry_after = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        """Settle the answer on a final head; count interim (1xx) ones."""
        status = self._parser.get_status_code()
        if status < 200:
            self._interim += 1
            if status == 101:
                self._fail(BadAnswer("the receiver switched protocols (101)"))
                raise _Stop
            if self._interim > INTERIM_LIMIT:
                self._fail(BadAnswer(f"more than {INTERIM_LIMIT} interim (1xx) answers"))
                raise _Stop
            return  # 100 Continue, 103 Early Hints: the real answer follows
        self._head_done = True
        self._body_bytes = 0
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(HttpAnswer(status, self._retry_after))
        if not self._parser.should_keep_alive():
            # `Connection: close`, HTTP/1.0, or a body that only the close ends
            self.close()
            raise _Stop

    def on_body(self, body: bytes) -> None:
        """Skip the body, but not an endless one."""
        self._body_bytes += len(body)
        if self._body_bytes > BODY_LIMIT:
            self.close()
            raise _Stop

    def on_message_complete(self) -> None:
        """Once the final answer is whole, the connection may serve the next request."""
        if self._head_done:
            self._expecting = False
            self.reusable = True

    def _fail(self, exc: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)
        self.abort()
