"""The ingest service over HTTP (a Starlette app, served by uvicorn in `iv ingest serve`):

POST /v1/ingest    body: Frames, each prefixed by its length as a protobuf varint (the
                   standard length-delimited stream); every item goes through the same
                   `IngestService.handle` as a UDP datagram. 413 over MAX_BODY_BYTES,
                   400 when the framing itself is broken (naming the byte offset).
GET  /v1/devices   counters and per-device state (rate, gaps, duplicates, RSSI)
GET  /healthz      liveness
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from iv_pipelines.edge.frames import MAX_FRAME_BYTES
from iv_pipelines.edge.ingest import IngestService

MAX_BODY_BYTES = 1 << 20
MAX_ITEMS = 4096


class FramingError(ValueError):
    pass


def split_delimited(body: bytes) -> list[bytes]:
    """Length-delimited items; a varint over 5 bytes, a length over a frame's maximum or one
    that runs past the end is a FramingError naming the offset."""
    items, i = [], 0
    while i < len(body):
        start, length, shift = i, 0, 0
        while True:
            if i >= len(body):
                raise FramingError(f"byte {start}: the length prefix runs past the end of the body")
            b = body[i]
            i += 1
            length |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift >= 35:
                raise FramingError(f"byte {start}: a length prefix longer than 5 bytes")
        if length > MAX_FRAME_BYTES:
            raise FramingError(
                f"byte {start}: an item of {length} bytes (a frame is at most {MAX_FRAME_BYTES})"
            )
        if i + length > len(body):
            raise FramingError(f"byte {start}: an item of {length} bytes runs past the end of the body")
        items.append(body[i : i + length])
        i += length
        if len(items) > MAX_ITEMS:
            raise FramingError(f"more than {MAX_ITEMS} items in one body")
    return items


def delimited(frames: list[bytes]) -> bytes:
    """The inverse of `split_delimited` (what a gateway or a test sends)."""
    out = bytearray()
    for f in frames:
        n = len(f)
        while True:
            b, n = n & 0x7F, n >> 7
            out.append(b | (0x80 if n else 0))
            if not n:
                break
        out += f
    return bytes(out)


def create_ingest_app(service: IngestService, detections=None) -> Starlette:
    async def ingest(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            return JSONResponse({"detail": [f"body over {MAX_BODY_BYTES} bytes"]}, status_code=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return JSONResponse({"detail": [f"body over {MAX_BODY_BYTES} bytes"]}, status_code=413)
        try:
            items = split_delimited(bytes(body))
        except FramingError as e:
            return JSONResponse({"detail": [str(e)]}, status_code=400)
        outcomes: dict[str, int] = {}
        for item in items:
            kind = service.handle(item)
            outcomes[kind] = outcomes.get(kind, 0) + 1
        return JSONResponse({"items": len(items), "outcomes": outcomes})

    async def devices(_request: Request) -> JSONResponse:
        return JSONResponse(service.stats())

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def detection_feed(ws: WebSocket) -> None:
        host = ws.client.host if ws.client else ""
        if detections is None or host not in ("127.0.0.1", "::1"):
            await ws.close(code=1008)
            return
        sub = detections.subscribe(maxsize=10_000)  # before the socket opens: nothing missed
        await ws.accept()
        try:
            async for det in detections.iterate(sub):
                await ws.send_json(det.to_dict())
        except Exception:  # noqa: BLE001 (the subscriber went away)
            return
        finally:
            detections.unsubscribe(sub)

    return Starlette(
        routes=[
            Route("/v1/ingest", ingest, methods=["POST"]),
            Route("/v1/devices", devices, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            WebSocketRoute("/v1/detections", detection_feed),
        ]
    )


async def relay_detections(url: str, stream, stop=None) -> None:
    """Subscribe to another process's `/v1/detections` feed and republish every detection on
    `stream` (the gateway's), reconnecting after a second when the feed goes away."""
    import asyncio
    import json

    import websockets

    from iv_pipelines.edge.forward import DeviceDetection

    while stop is None or not stop.is_set():
        try:
            async with websockets.connect(url) as ws:
                async for text in ws:
                    stream.publish(DeviceDetection(**json.loads(text)))
        except (OSError, websockets.WebSocketException, TypeError, ValueError):
            await asyncio.sleep(1.0)
