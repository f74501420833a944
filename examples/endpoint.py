"""An example HTTP endpoint for the example topology's ``search-indexer`` subscriber.

``python -m examples.endpoint --port 8081`` serves ``POST /hooks/index``, which logs each
delivery (event type, id, attempt) and answers 200, and ``GET /health``, which answers 200.

What MSM's delivery layer expects of an endpoint: the event's payload as a JSON body, the task
in ``X-MSM-*`` headers (Event-Id, Event-Type, Task-Id, Attempt, Subscriber) plus
``traceparent``; any 2xx is success; 408, 429 and 5xx are retried (``Retry-After`` honoured);
any other status dead-letters the task. A timed-out push is retried too, so a real endpoint
must be idempotent, keyed by ``X-MSM-Task-Id``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence

from aiohttp import web

log = logging.getLogger("examples.endpoint")


async def index(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        payload = json.loads(body)
    except ValueError:  # not JSON: retrying would not help, so a 4xx (dead-lettered)
        return web.json_response({"error": "the body is not JSON"}, status=400)
    headers = request.headers
    log.info(
        "delivery %s %s attempt %s: %s",
        headers.get("X-MSM-Event-Type", "?"),
        headers.get("X-MSM-Event-Id", "?"),
        headers.get("X-MSM-Attempt", "?"),
        json.dumps(payload, separators=(",", ":"))[:200],
    )
    return web.json_response({"indexed": headers.get("X-MSM-Task-Id")})


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/hooks/index", index)
    app.router.add_get("/health", health)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.endpoint", description=__doc__)
    parser.add_argument("--host", default="localhost", help="address to bind (default localhost)")
    parser.add_argument("--port", type=int, default=8081, help="port (default 8081)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s endpoint %(message)s")
    log.info("search-indexer endpoint on http://%s:%d/hooks/index", args.host, args.port)
    web.run_app(make_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
