"""The capsule runtime: one FastAPI app for every deployment target (local, Docker, Kubernetes).

Routes: `POST /v1/predict`, `WS /v1/stream`, `GET /healthz` (process alive), `GET /readyz`
(model loaded: 503 while loading or after a load failure), `GET /metrics` (Prometheus text).
The model loads in a background thread, so liveness answers during a slow start.
"""

from __future__ import annotations

import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from iv_pipelines.runtime.contracts import (
    API_VERSION,
    Detection,
    HealthStatus,
    PredictRequest,
    PredictResponse,
    StreamChunk,
    WindowPrediction,
)
from iv_pipelines.runtime.predictor import (
    PayloadError,
    Predictor,
    capture_from_amplitude_csv,
    capture_from_frames,
    capture_from_lines,
    windows,
)
from iv_pipelines.sensing.features import WINDOW_S
from iv_pipelines.sensing.formats import parse_lines

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STREAM_BUFFER_S = 2 * WINDOW_S


class _Metrics:
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "capsule_requests", "Requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "capsule_request_latency_seconds",
            "Request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "capsule_predictions", "Window predictions by class", ["label"], registry=self.registry
        )


class _State:
    def __init__(self, package_dir: Path | None, predictor: Predictor | None):
        self.package_dir = package_dir
        self.predictor = predictor
        self.error: str | None = None
        self.metrics = _Metrics()

    def load(self) -> None:
        try:
            self.predictor = Predictor(self.package_dir)
        except Exception as e:  # reported by /readyz; the process stays alive for diagnosis
            self.error = f"{type(e).__name__}: {e}"


FAULT_ENV = "IV_CAPSULE_FAULT"  # chaos hook for the fault-injection tests; never set in packages
_LEAK: list[bytearray] = []


def _inject_faults() -> str | None:
    """`http500`: predict and readyz answer 500 (a corrupted instance); `leak:<MiB>`: hold that
    much memory (a workload that outgrew its limit)."""
    import os

    fault = os.environ.get(FAULT_ENV)
    if fault and fault.startswith("leak:"):
        block = bytearray(int(fault.split(":", 1)[1]) << 20)
        block[::4096] = b"\x01" * len(block[::4096])  # touch every page: resident, not just reserved
        _LEAK.append(block)
    return fault


def create_app(package_dir: Path | None = None, predictor: Predictor | None = None) -> FastAPI:
    """`package_dir`: load that package in the background; `predictor`: serve it directly;
    neither: an app without a model (used to generate the OpenAPI contract)."""
    state = _State(Path(package_dir) if package_dir else None, predictor)
    fault = _inject_faults()

    @asynccontextmanager
    async def lifespan(_app):
        if state.predictor is None and state.package_dir is not None:
            threading.Thread(target=state.load, name="model-loader", daemon=True).start()
        yield

    app = FastAPI(
        title="DAC capsule",
        version=API_VERSION,
        description="Deploy Anywhere Capsule runtime: WiFi-CSI activity classification.",
        lifespan=lifespan,
    )
    app.state.capsule = state
    m = state.metrics

    def ident() -> tuple[str, str]:
        if state.predictor is None:
            return "", ""
        return state.predictor.config.dac_id, state.predictor.config.version

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, exc: RequestValidationError):
        problems = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or '(body)'}: {e['msg']}"
            for e in exc.errors()
        ]
        m.requests.labels("/v1/predict", "422").inc()
        return JSONResponse(status_code=422, content={"detail": problems})

    @app.get("/healthz", response_model=HealthStatus, tags=["ops"])
    def healthz():
        ready = state.predictor is not None
        status = "ok" if ready else ("failed" if state.error else "loading")
        return HealthStatus(status=status, ready=ready, dac_id=ident()[0], model_version=ident()[1])

    @app.get("/readyz", response_model=HealthStatus, tags=["ops"], responses={503: {"model": HealthStatus}})
    def readyz():
        if fault == "http500":
            return JSONResponse(status_code=500, content={"error": "injected fault"})
        body = healthz()
        if not body.ready:
            return JSONResponse(status_code=503, content=body.model_dump() | {"error": state.error})
        return body

    @app.get("/metrics", response_class=PlainTextResponse, tags=["ops"])
    def metrics():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return PlainTextResponse(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)

    def classify(req: PredictRequest) -> PredictResponse:
        given = [k for k in ("lines", "frames", "amplitude_csv") if getattr(req, k) is not None]
        if len(given) != 1:
            raise PayloadError(
                "give exactly one of `lines` (ESP32 CSI text), `frames` (arrays) or `amplitude_csv` "
                f"(amplitude-only rows with rate_hz); got {', '.join(given) or 'none'}"
            )
        skipped = 0
        if req.lines is not None:
            cap, skipped = capture_from_lines(req.lines)
            if len(cap.t_s) == 0:
                raise PayloadError(f"no CSI_DATA line among {len(req.lines)} line(s)")
        elif req.amplitude_csv is not None:
            cap, skipped = capture_from_amplitude_csv(req.amplitude_csv, req.rate_hz)
        else:
            cap = capture_from_frames([f.t_s for f in req.frames], [f.iq for f in req.frames], req.layout)
        cfg = state.predictor.config
        x, starts, lengths = windows(cap, req.hop_s, req.amplitude_only or cfg.amplitude_only)
        p = state.predictor.proba(x)
        labels = state.predictor.decide(p)
        classes = cfg.classes
        out = []
        for s, length, row, k in zip(starts, lengths, p, labels, strict=True):
            m.predictions.labels(classes[k]).inc()
            out.append(
                WindowPrediction(
                    start_s=round(float(s), 6),  # microseconds: no 0.9999999999 for 1.0
                    length_s=round(float(length), 3),
                    label=classes[k],
                    confidence=float(row[k]),
                    probabilities=[round(float(v), 6) for v in row],
                )
            )
        return PredictResponse(
            dac_id=ident()[0],
            model_version=ident()[1],
            classes=classes,
            frames=len(cap.t_s),
            skipped_lines=skipped,
            fall_threshold=cfg.fall_threshold,
            validated_on=cfg.validated_on,
            windows=out,
        )

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        tags=["inference"],
        responses={422: {"description": "malformed payload; `detail` names the problem"}, 503: {}},
    )
    async def predict(req: PredictRequest):
        t0 = time.perf_counter()
        if fault == "http500":
            m.requests.labels("/v1/predict", "500").inc()
            return JSONResponse(status_code=500, content={"detail": "injected fault"})
        if state.predictor is None:
            m.requests.labels("/v1/predict", "503").inc()
            return JSONResponse(status_code=503, content={"detail": "model not loaded yet; see /readyz"})
        try:
            resp = await run_in_threadpool(classify, req)
        except PayloadError as e:
            m.requests.labels("/v1/predict", "422").inc()
            return JSONResponse(status_code=422, content={"detail": [str(e)]})
        m.requests.labels("/v1/predict", "200").inc()
        m.latency.labels("/v1/predict").observe(time.perf_counter() - t0)
        return resp

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket):
        """Send text messages holding CSI lines (newline-separated) or a JSON StreamChunk; a
        Detection is sent for every full window, one per second of stream; a bad chunk gets a
        Detection with `error` set, is dropped, and the stream goes on."""
        from iv_pipelines.sensing.features import windows_from_capture

        await ws.accept()
        if state.predictor is None:
            await ws.send_json({"error": "model not loaded yet; see /readyz"})
            await ws.close(code=1013)
            return
        cfg = state.predictor.config
        classes = cfg.classes
        buf_csi, buf_t = np.zeros((0, 64), np.complex64), np.zeros(0)
        origin = next_start = last_t = None
        amp_stream = False
        try:
            while True:
                text = await ws.receive_text()
                t0 = time.perf_counter()
                try:
                    if text.lstrip().startswith("{"):
                        chunk = StreamChunk.model_validate_json(text)
                    else:
                        chunk = StreamChunk(lines=text.splitlines())
                    if (chunk.lines is None) == (chunk.amplitude_csv is None):
                        raise PayloadError("a chunk holds exactly one of `lines` or `amplitude_csv`")
                    if chunk.amplitude_csv is not None:
                        cap, _ = capture_from_amplitude_csv(chunk.amplitude_csv, chunk.rate_hz)
                        amp_stream = True
                        # rows carry no times: they continue one packet period after the last
                        if len(buf_t) or last_t is not None:
                            base = (buf_t[-1] if len(buf_t) else last_t) + 1.0 / chunk.rate_hz
                            cap.t_s = cap.t_s + base
                    else:
                        cap, rep = parse_lines(chunk.lines, source="stream")
                        if rep.rejected:
                            n, why = rep.rejected[0]
                            raise PayloadError(
                                f"{len(rep.rejected)} malformed line(s) in this chunk; line {n}: {why}"
                            )
                    if len(cap.t_s) and not np.all(np.isfinite(cap.t_s)):
                        raise PayloadError("frame times must be finite numbers")
                    if len(cap.t_s) and len(buf_t) and cap.t_s[0] <= buf_t[-1]:
                        raise PayloadError("frame times must increase across chunks")
                    if len(cap.t_s) > 1 and np.any(np.diff(cap.t_s) <= 0):
                        raise PayloadError("frame times must increase within a chunk")
                except ValueError as e:  # PayloadError and pydantic's ValidationError
                    m.requests.labels("/v1/stream", "422").inc()
                    await ws.send_json(
                        Detection(
                            start_s=0, label="", confidence=0, probabilities=[], error=str(e)[:2000]
                        ).model_dump()
                    )
                    continue
                if len(cap.t_s):
                    last_t = float(cap.t_s[-1])
                buf_csi, buf_t = np.concatenate([buf_csi, cap.csi]), np.concatenate([buf_t, cap.t_s])
                if origin is None and len(buf_t):
                    origin = next_start = float(buf_t[0])
                while next_start is not None:
                    sel = buf_t >= next_start
                    if not sel.any() or buf_t[-1] < buf_t[sel][0] + WINDOW_S:
                        break
                    first = float(buf_t[sel][0])
                    x = windows_from_capture(
                        buf_csi[sel], buf_t[sel], hop_s=1e9, amplitude_only=amp_stream or cfg.amplitude_only
                    )[:1]
                    row = (await run_in_threadpool(state.predictor.proba, x))[0]
                    k = int(state.predictor.decide(row[None])[0])
                    m.predictions.labels(classes[k]).inc()
                    await ws.send_json(
                        Detection(
                            start_s=round(first - origin, 3),
                            label=classes[k],
                            confidence=float(row[k]),
                            probabilities=[round(float(v), 6) for v in row],
                            length_s=WINDOW_S,
                        ).model_dump()
                    )
                    next_start = first + 1.0
                    keep = buf_t >= next_start - 0.5  # what later windows can still need
                    buf_csi, buf_t = buf_csi[keep], buf_t[keep]
                m.requests.labels("/v1/stream", "200").inc()
                m.latency.labels("/v1/stream").observe(time.perf_counter() - t0)
        except WebSocketDisconnect:
            return

    return app
