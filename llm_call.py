"""One Gemini request at a time, with a total deadline: a daemon thread the caller can stop waiting for.

The SDK's HttpOptions.timeout bounds each read, not the call: an endpoint that trickles a byte
every few seconds never times out. Here a request runs on a daemon thread (CallLane). The
caller waits for it at most until its deadline (run.py), or not at all (worker.py, which
looks each tick); a request past its deadline is abandoned and its answer, should one come,
thrown away. At most one request is in flight: while an abandoned request still runs, the
lane takes no other, so abandoned threads never pile up, and being daemons they never hold
up the process's exit. Below the SDK, DeadlineTransport ends a request's reads at its
deadline (each read's timeout is cut to the time left, and the body stops between chunks),
so an abandoned request's thread ends soon after its deadline and the lane frees.

    lane = CallLane()
    lane.start(lambda: client.models.generate_content(...), tag="sig-1", deadline_s=10)
    lane.wait(10); done = lane.take() or lane.abandon()   # Finished(tag, value, error, elapsed_s, abandoned)

Threads and sockets only: no parsing and no bookkeeping (llm_reasoner.py does both, on its own thread).
"""
from __future__ import annotations

import importlib
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

_local = threading.local()      # the running request's deadline (time.monotonic() seconds), read by the transport


class DeadlineExceeded(TimeoutError):
    """The request was still running at its deadline; the caller stopped waiting for it."""


@dataclass(frozen=True)
class Finished:
    tag: Any                        # what the caller asked (llm_reasoner's Consultation)
    value: Any = None               # the SDK's response
    error: BaseException | None = None
    elapsed_s: float = 0.0
    abandoned: bool = False


class CallLane:
    """At most one request in flight, on a daemon thread."""

    def __init__(self, timer: Callable[[], float] = time.monotonic):
        self.timer = timer
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._tag: Any = None
        self._started = 0.0
        self._deadline_s = 0.0
        self._done: Finished | None = None
        self._abandoned = False
        self.abandoned_total = 0

    @property
    def busy(self) -> bool:
        """A request's thread is alive (in flight, or abandoned and not yet ended), or its outcome is not yet
        taken: no other may start."""
        return self._thread is not None and self._thread.is_alive() or self._done is not None

    @property
    def in_flight(self) -> Any:
        """The tag of the request being waited for (None when idle, finished or abandoned)."""
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
            return self._tag if alive and not self._abandoned and self._done is None else None

    def start(self, fn: Callable[[], Any], tag: Any, deadline_s: float) -> bool:
        """Run fn() on a daemon thread; False (and nothing started) while another request's thread lives."""
        if self.busy:
            return False
        deadline = time.monotonic() + deadline_s
        with self._lock:
            self._tag, self._done, self._abandoned = tag, None, False
            self._started, self._deadline_s = self.timer(), deadline_s

        def run() -> None:
            _local.deadline = deadline
            t0 = time.monotonic()
            try:
                value, error = fn(), None
            except BaseException as e:          # everything goes back to the caller's thread, classified there
                value, error = None, e
            with self._lock:
                if not self._abandoned:
                    self._done = Finished(tag, value, error, time.monotonic() - t0)

        self._thread = threading.Thread(target=run, name="gemini-request", daemon=True)
        self._thread.start()
        return True

    def wait(self, seconds: float) -> None:
        if self._thread is not None:
            self._thread.join(max(0.0, seconds))

    def overdue(self) -> bool:
        """The request waited for has run past its deadline."""
        return self.in_flight is not None and self.timer() - self._started >= self._deadline_s

    def take(self) -> Finished | None:
        """The finished request's outcome, once; None while it runs, after it was abandoned, or when idle."""
        with self._lock:
            done, self._done = self._done, None
            return done

    def abandon(self) -> Finished:
        """Stop waiting for the request in flight: its outcome is a DeadlineExceeded; the thread ends on its own."""
        with self._lock:
            self._abandoned, self._done = True, None       # an outcome that slipped in after the wait is dropped too
            self.abandoned_total += 1
            elapsed = self.timer() - self._started
            return Finished(self._tag, None, DeadlineExceeded(f"no answer within the {self._deadline_s:.1f} s deadline"),
                            elapsed, abandoned=True)


# -- below the SDK: reads cut at the deadline ------------------------------------------------

def http_module():
    """The HTTP client package the SDK will use with our transport: httpx2 (its default) or httpx."""
    for name in ("httpx2", "httpx"):
        try:
            return importlib.import_module(name)
        except ImportError:
            pass
    raise ImportError("neither httpx2 nor httpx is installed")


def _left(http, request) -> float | None:
    deadline = getattr(_local, "deadline", None)
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise http.ReadTimeout("past the request's total deadline", request=request)
    return left


def deadline_transport(http=None):
    """An HTTP transport that holds each request to the deadline of the lane's thread (none outside a lane)."""
    http = http or http_module()

    class DeadlineStream(http.SyncByteStream):
        def __init__(self, inner, request):
            self.inner, self.request = inner, request

        def __iter__(self):
            for chunk in self.inner:
                _left(http, self.request)          # a trickling body stops here once the deadline has passed
                yield chunk

        def close(self) -> None:
            self.inner.close()

    class DeadlineTransport(http.BaseTransport):
        def __init__(self):
            self.inner = http.HTTPTransport()

        def handle_request(self, request):
            left = _left(http, request)
            if left is None:
                return self.inner.handle_request(request)
            timeouts = dict(request.extensions.get("timeout") or {})
            request.extensions["timeout"] = {k: min(v, left) if v is not None else left for k, v in timeouts.items()} \
                or {"connect": left, "read": left, "write": left, "pool": left}
            response = self.inner.handle_request(request)
            return http.Response(response.status_code, headers=response.headers,
                                 stream=DeadlineStream(response.stream, request), extensions=response.extensions)

        def close(self) -> None:
            self.inner.close()

    return DeadlineTransport()
