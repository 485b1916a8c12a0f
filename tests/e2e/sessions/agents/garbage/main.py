"""garbage: a server that is healthy but answers nonsense, for the bad-input tests.

`GET /ping` is a proper HTTP 200; any other request gets bytes that are not HTTP and the
connection closed. `GET /.well-known/agent-card.json` gets a proper HTTP 200 whose body is not
JSON. Plain asyncio, no framework, listening on `PORT` (default 8080).
"""

import asyncio
import json
import os
import time


async def handle(reader, writer):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except Exception:
        writer.close()
        return
    line = head.split(b"\r\n", 1)[0]
    if line.startswith(b"GET /ping"):
        body = json.dumps({"status": "Healthy", "time_of_last_update": int(time.time())}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    elif b"agent-card.json" in line:
        body = b"<html>this is not a card</html>"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    else:
        writer.write(b"\x00\x01garbage that is not HTTP at all\r\n\r\n")
        await writer.drain()
        writer.close()
        return
    await writer.drain()
    writer.close()


async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", int(os.environ.get("PORT", "8080")))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
