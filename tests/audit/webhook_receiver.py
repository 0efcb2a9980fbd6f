"""A stand-alone HTTPS webhook receiver for the sink tests, run as its own process so a test can kill it
(SIGKILL) mid-stream: every POST body is appended to a file and fsynced *before* the 200 goes out, as a real
receiver that acknowledges only what it stored would do.

    python webhook_receiver.py PORT CERT KEY OUT [FAIL_FIRST]

FAIL_FIRST: answer the first N requests 503 with Retry-After: 0 (the retry tests).
"""

from __future__ import annotations

import json
import os
import ssl
import sys

from aiohttp import web


def main() -> None:
    port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    fail_first = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    seen = {"requests": 0}
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    async def receive(request: web.Request) -> web.Response:
        seen["requests"] += 1
        body = await request.read()
        if seen["requests"] <= fail_first:
            return web.Response(status=503, headers={"Retry-After": "0"})
        line = json.dumps(
            {
                "content_type": request.headers.get("Content-Type"),
                "authorization": request.headers.get("Authorization"),
                "body": body.decode(),
            }
        )
        os.write(fd, line.encode() + b"\n")
        os.fsync(fd)
        return web.Response(status=204)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/events", receive)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    web.run_app(app, host="127.0.0.1", port=port, ssl_context=context, print=None, access_log=None)


if __name__ == "__main__":
    main()
