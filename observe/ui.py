"""`wharf ui`: the pipeline of every app as a live web page, read-only.

One task reads the pipeline (`observe.gather.read_view`) every `interval` seconds, and at once when
Consul's health or catalog changes (blocking queries on their own threads); `observe.feed.TraceFeed`
judges it with the same `trace()` as `wharf trace`. Every open page holds one server-sent-events
stream and gets what it shows whenever that changed. Credentials stay in this process: the page
gets JSON built from what was read, and asks nothing but this server.

Starlette (ASGI, served by uvicorn): server-sent events are a streaming response on one event loop,
so a hundred open pages cost no thread each; the front end is one HTML page and one script.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from observe.feed import TraceFeed
from observe.links import View
from wharf.errors import WharfError, describe
from wharf.log import fields
from wharf.retry import Retry
from wharf.watch import ConsulWatch

WEB = Path(__file__).with_name("web")
HEARTBEAT = 15.0  # seconds: a comment on an idle stream, so proxies and browsers keep it open
log = logging.getLogger("wharf.ui")

READS = Counter("wharf_ui_reads_total", "Reads of the pipeline, by outcome", ["outcome"])
READ_SECONDS = Histogram("wharf_ui_read_seconds", "Time one read and judgement of every app took")
LAST_READ = Gauge("wharf_ui_last_read_timestamp_seconds", "When the pipeline was last read")
CLIENTS = Gauge("wharf_ui_streams", "Pages holding an event stream open")


class Changes:
    """Wakes every stream when the feed changed; lives on the event loop."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def fire(self) -> None:
        fired, self.event = self.event, asyncio.Event()
        fired.set()


class Live:
    """The feed, read by one task for every page; `lock` guards it from the reading thread."""

    def __init__(self, read: Callable[[], View], interval: float = 1.0,
                 deploys: Callable[[Sequence[str]], list[dict[str, Any]]] | None = None) -> None:
        self.read, self.interval, self.deploys = read, interval, deploys
        self.feed = TraceFeed()
        self.lock = threading.Lock()
        self.changes = Changes()
        self.wake = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    def poke(self, *_: Any) -> None:
        """Read again now (safe from any thread)."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.wake.set)

    def refresh(self) -> bool:
        """One read and judgement (on a worker thread); True if a page would change."""
        with READ_SECONDS.time():
            try:
                view = self.read()
            except Exception as exc:  # noqa: BLE001 - keep the last good state, say why on the page
                READS.labels("error").inc()
                with self.lock:
                    return self.feed.failed(describe(exc))
            with self.lock:
                changed = self.feed.update(view)
        READS.labels("ok").inc()
        LAST_READ.set(view.now)
        return changed

    async def run(self) -> None:
        """Read forever: every `interval`, or at once when poked; back off while reads fail."""
        self.loop = asyncio.get_running_loop()
        delays = None
        while True:
            self.wake.clear()
            if await asyncio.to_thread(self.refresh):
                self.changes.fire()
            error = self.feed.error
            if error:
                delays = delays or Retry(delay=self.interval, max_delay=30.0, jitter=0.1).delays()
                log.warning("read failed", extra=fields(error=error))
            else:
                delays = None
            try:
                await asyncio.wait_for(self.wake.wait(), next(delays) if delays else self.interval)
            except TimeoutError:
                pass

    def payload(self, app: str | None) -> str:
        with self.lock:
            return json.dumps(self.feed.detail(app) if app else self.feed.rows())

    async def stream(self, request: Request, app: str | None) -> AsyncIterator[str]:
        """Server-sent events: what the page shows, each time it changed."""
        CLIENTS.inc()
        try:
            sent = None
            while not await request.is_disconnected():
                changed = self.changes.event
                body = self.payload(app)
                if body != sent:
                    yield f"data: {body}\n\n"
                    sent = body
                try:
                    await asyncio.wait_for(changed.wait(), HEARTBEAT)
                except TimeoutError:
                    yield ": idle\n\n"
        finally:
            CLIENTS.dec()


def make_app(live: Live) -> Starlette:
    """The web view's routes: the page, its script, its JSON and event streams, and /metrics."""

    async def page(_: Request) -> Response:
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-store"})

    async def events(request: Request) -> Response:
        return StreamingResponse(live.stream(request, request.query_params.get("app")),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def snapshot(request: Request) -> Response:
        return Response(live.payload(request.query_params.get("app")), media_type="application/json")

    async def deploys(request: Request) -> Response:
        app = request.query_params.get("app", "")
        with live.lock:
            found = live.feed.traces.get(app)
        if found is None or live.deploys is None:
            return JSONResponse({"error": f"no app {app} in Marathon"}, status_code=404)
        marathon = next(link for link in found.links if link.name == "marathon")
        try:
            return JSONResponse(await asyncio.to_thread(live.deploys, list(marathon.evidence.get("apps") or [])))
        except WharfError as exc:
            return JSONResponse({"error": exc.message}, status_code=502)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(live.run())
        yield
        task.cancel()

    return Starlette(routes=[
        Route("/", page), Route("/apps/{app:path}", page),
        Route("/events", events), Route("/api/view", snapshot), Route("/api/deploys", deploys),
        Route("/metrics", metrics), Mount("/static", StaticFiles(directory=WEB), name="static"),
    ], lifespan=lifespan)


def consul_watches(reader: Any, poke: Callable[[str, str], None]) -> list[ConsulWatch]:
    """Blocking queries on Consul's checks and catalog that poke the feed on every change."""
    from wharf.consul_http import decoded

    def fetch(path: str) -> Callable[[Any], tuple[Any, Any]]:
        def once(index: Any) -> tuple[Any, Any]:
            status, headers, body = reader.raw(path, [("index", str(index or 0)), ("wait", "30s")])
            returned = next((v for k, v in headers.items() if k.lower() == "x-consul-index"), None)
            return returned, decoded(status, headers, body)
        return once

    return [ConsulWatch(f"ui:{path}", fetch(path), poke, address=reader.base_uri, logger=log)
            for path in ("/v1/health/state/any", "/v1/catalog/services")]


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port` (0: a free port), made before serving so its address is known."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def _plain(record: logging.LogRecord) -> bool:
    """Drop uvicorn's terminal-coloured copy of its message from the structured line."""
    record.__dict__.pop("color_message", None)
    return True


def serve(live: Live, sock: socket.socket, watches: Sequence[ConsulWatch] = ()) -> None:
    """Serve until SIGTERM or SIGINT (uvicorn's handlers), then stop the watches."""
    import uvicorn

    for watch in watches:
        watch.start()
    logging.getLogger("uvicorn.error").addFilter(_plain)
    config = uvicorn.Config(make_app(live), log_config=None, access_log=False, timeout_graceful_shutdown=1,
                            lifespan="on")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for watch in watches:
            watch.stop()
