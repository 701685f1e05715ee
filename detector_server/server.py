"""The detector's HTTP server: CloudEvents in at `/`, the result back in the answer and as a CloudEvent to
the reply URL, metrics at `/v1/metrics`, health at `/health/{live,ready}`, the protocol at `/protocol`.

One event at a time reaches the detector (a lock; the detector runs on a worker thread, so scrapes and
health checks are answered meanwhile), and an event's effect is committed only after its reply event
was delivered: a reply URL that is down answers 503, the payload logger delivers the event again, and
nothing was counted or batched twice. Answers: 200 with the detector's JSON (empty while a drift batch
fills, and for an ignored or duplicate event), 400 for a body the detector cannot read (the logger
dead-letters it: retrying cannot help), 500 when the detector itself failed, 503 when the reply failed.
Errors have Seldon's status shape.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
from aiohttp import web

from detector_server import events
from detector_server.detectors import Detector, DriftDetector, Options, Outcome
from detector_server.metrics import DetectorMetrics, EventOutcome
from detector_server.protocols import PayloadError, choose, decode
from detector_server.settings import MAX_BODY_BYTES, REPLY_TIMEOUT_S, Settings

log = logging.getLogger(__name__)


class ReplyFailed(RuntimeError):
    pass


def _status(code: int, reason: str, info: str) -> web.Response:
    body = {"status": {"code": code, "info": info, "reason": reason, "status": "FAILURE"}}
    return web.json_response(body, status=code)


class DetectorServer:
    def __init__(self, settings: Settings, detector: Detector, metrics: DetectorMetrics) -> None:
        self.settings = settings
        self.detector = detector
        self.metrics = metrics
        self._lock = asyncio.Lock()
        self._seen = events.RecentIds()
        self._session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/", self.event)
        app.router.add_get("/protocol", self.protocol)
        app.router.add_get("/v1/metrics", self.scrape)
        app.router.add_get("/metrics", self.scrape)
        app.router.add_get("/health/live", self.health)
        app.router.add_get("/health/ready", self.health)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, _: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    async def protocol(self, _: web.Request) -> web.Response:
        return web.Response(text=str(self.settings.protocol or "auto"))

    async def health(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def scrape(self, _: web.Request) -> web.Response:
        body, content_type = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def event(self, request: web.Request) -> web.Response:
        headers = dict(request.headers)
        if not events.accepted_type(headers, self.settings.ce_types):
            self.metrics.on_event(EventOutcome.IGNORED)
            return web.Response(status=200)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.metrics.on_event(EventOutcome.REFUSED)
            return _status(413, "PAYLOAD_TOO_LARGE", f"the body is over {MAX_BODY_BYTES} bytes")
        event_id = events.attributes(headers).get("id")
        async with self._lock:
            if event_id and event_id in self._seen:
                self.metrics.on_event(EventOutcome.DUPLICATE)
                return web.Response(status=200)
            try:
                protocol = choose(self.settings.protocol, events.attributes(headers).get("protocol"))
                batch = decode(body, protocol)
                options = Options.from_headers(headers, self.settings.defaults)
                outcome: Outcome = await asyncio.to_thread(self.detector.process, batch, options)
            except PayloadError as error:
                self.metrics.on_event(EventOutcome.REFUSED)
                return _status(400, "BAD_REQUEST", str(error))
            except Exception as error:  # the detector's own failure: the sender may retry, we stay up
                log.exception("the detector failed on event %s", event_id)
                self.metrics.on_event(EventOutcome.FAILED)
                return _status(500, "DETECTOR_ERROR", f"{type(error).__name__}: {error}")
            if outcome.answer is not None and self.settings.reply_url:
                try:
                    await self._reply(headers, outcome.answer)
                except ReplyFailed as error:
                    log.warning("%s", error)
                    self.metrics.on_event(EventOutcome.REPLY_FAILED)
                    return _status(503, "REPLY_FAILED", str(error))
            outcome.commit()
            if event_id:
                self._seen.add(event_id)
        waiting = self.detector.waiting if isinstance(self.detector, DriftDetector) else 0
        self.metrics.on_result(outcome.instances, outcome.scores, waiting)
        if outcome.answer is None:
            self.metrics.on_event(EventOutcome.BATCHED)
            return web.Response(status=200)
        self.metrics.on_event(EventOutcome.SCORED)
        return web.json_response(outcome.answer)

    async def _reply(self, incoming: dict[str, str], answer: dict[str, Any]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REPLY_TIMEOUT_S))
        headers = events.reply_headers(incoming, self.settings.reply_type, self.settings.reply_source)
        url = self.settings.reply_url
        try:
            async with self._session.post(url, data=json.dumps(answer), headers=headers) as response:
                await response.read()
                if not 200 <= response.status < 300:
                    raise ReplyFailed(f"reply event to {url}: HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ReplyFailed(f"reply event to {url}: {error!r}") from error
