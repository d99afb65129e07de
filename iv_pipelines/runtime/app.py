"""The capsule runtime: one FastAPI app for every deployment target (local, Docker, Kubernetes).

Routes: `POST /v1/predict`, `WS /v1/stream`, `POST /v1/feedback` (the true label of a logged
window), `GET /healthz` (process alive), `GET /readyz` (model loaded: 503 while loading or
after a load failure), `GET /metrics` (Prometheus text: requests, latency, decisions by class,
input statistics per window, feedback). Classified windows go to the inference log
(`inference_log.py`) when the deployment configured one.
The model loads in a background thread, so liveness answers during a slow start; before it
loads, the package is checked against its signed attestation (`attest.py`) and a mismatch
keeps the capsule unready, with the reason in `/readyz`.

Hostile input gets a 4xx naming the problem, never a 500 and never unbounded work: the
contract bounds line lengths and int8 values and refuses non-finite numbers (422); the
package's measured costs bound frames and windows per request (413, `limits.py`); at most
`concurrency` inferences run at once, off the event loop, with `queue_depth` waiting (429
beyond). Every response is counted in `/metrics` by route and status; an unexpected error is
a logged 500 that keeps the connection usable.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from iv_pipelines.runtime.contracts import (
    API_VERSION,
    Detection,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    HealthStatus,
    PredictRequest,
    PredictResponse,
    StreamChunk,
    WindowPrediction,
)
from iv_pipelines.runtime.limits import InferenceGate, LimitExceeded, Overloaded, expected_windows
from iv_pipelines.runtime.predictor import (
    MAX_GAP_S,
    PayloadError,
    Predictor,
    capture_from_amplitude_csv,
    capture_from_frames,
    capture_from_lines,
    check_limits,
    windows,
)
from iv_pipelines.sensing.features import WINDOW_S
from iv_pipelines.sensing.formats import parse_lines

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STREAM_BUFFER_S = 2 * WINDOW_S
log = logging.getLogger("iv.capsule")
INTERNAL_ERROR = "internal error (logged by the capsule)"


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
        # what the inputs look like, per window: drift shows here before it shows in accuracy
        self.amplitude = Histogram(
            "capsule_window_mean_amplitude",
            "Mean CSI amplitude per window (int8 units)",
            buckets=(1, 2, 5, 10, 15, 20, 30, 40, 60, 90, 128),
            registry=self.registry,
        )
        self.amplitude_cv = Histogram(
            "capsule_window_amplitude_cv",
            "Mean temporal coefficient of variation of the subcarrier amplitudes per window",
            buckets=(0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0),
            registry=self.registry,
        )
        self.feedback = Counter(
            "capsule_feedback",
            "Feedback labels by true class and by what the capsule had decided",
            ["label", "predicted"],
            registry=self.registry,
        )
        self.logged = Counter(
            "capsule_inference_log_windows", "Windows kept in the inference log", registry=self.registry
        )


class _State:
    def __init__(self, package_dir: Path | None, predictor: Predictor | None):
        self.package_dir = package_dir
        self.predictor = predictor
        self.error: str | None = None
        self.metrics = _Metrics()
        self._log = None
        self._log_checked = False

    @property
    def inference_log(self):
        """The deployment's inference log (None without IV_INFERENCE_LOG_DIR, or before the
        model is loaded: the log needs its classes)."""
        if not self._log_checked and self.predictor is not None:
            self._log_checked = True
            from iv_pipelines.runtime.inference_log import InferenceLog

            try:
                self._log = InferenceLog.from_env(list(self.predictor.config.classes))
            except (OSError, ValueError) as e:
                log.error("inference log disabled: %s", e)
        return self._log

    def observe(
        self, csi: np.ndarray, features, label: str, probs, device_id: str | None, t_s=None
    ) -> str | None:
        """One classified window: its input statistics into /metrics, and into the inference log
        if sampled; returns its window id there (or None)."""
        amp = np.abs(np.asarray(csi))
        if amp.size:
            self.metrics.amplitude.observe(float(amp.mean()))
            mu = amp.mean(0)
            used = mu > 1e-6
            if used.any() and len(amp) > 1:
                self.metrics.amplitude_cv.observe(float((amp.std(0)[used] / mu[used]).mean()))
        il = self.inference_log
        if il is None:
            return None
        from iv_pipelines.sensing.formats import centred_to_entries

        raw = il.retention == "raw"
        wid = il.record(
            device_id,
            label,
            probs,
            features=features,
            raw=centred_to_entries(csi) if raw else None,
            raw_t_s=t_s if raw else None,
        )
        if wid is not None:
            self.metrics.logged.inc()
        return wid

    def load(self) -> None:
        try:
            self.predictor = Predictor(self.package_dir)
        except Exception as e:  # reported by /readyz; the process stays alive for diagnosis
            self.error = f"{type(e).__name__}: {e}"
            log.error("capsule not ready: %s", self.error)

    def attestation(self) -> str:
        if self.predictor is None:
            return ""
        a = getattr(self.predictor, "attestation", None) or {}
        if a.get("verified"):
            return f"verified: {a['files']} files match the signed attestation (key from the {a['key']})"
        return f"unverified: {a.get('reason', 'not checked')}"


class _Guard:
    """Outermost ASGI layer: counts every HTTP response in /metrics by route and status, and
    turns an unexpected exception into a logged JSON 500 (sent normally, so the client's
    keep-alive connection stays usable) instead of a dropped connection."""

    def __init__(self, app, metrics: _Metrics):
        self.app, self.metrics = app, metrics

    def __getattr__(self, name):  # openapi(), state, routes ...: the FastAPI app's
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = {"code": 500, "started": False}

        async def _send(message):
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, _send)
        except Exception:  # noqa: BLE001 - the last line of defence: log, answer, keep serving
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if not status["started"]:
                body = json.dumps({"detail": [INTERNAL_ERROR]}).encode()
                await _send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        route = scope.get("route")
        path = getattr(route, "path", None) or (
            "/v1/predict" if scope.get("path") == "/v1/predict" else "other"
        )
        self.metrics.requests.labels(path, str(status["code"])).inc()


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


def create_app(package_dir: Path | None = None, predictor: Predictor | None = None, wrap: bool = True):
    """`package_dir`: load that package in the background; `predictor`: serve it directly;
    neither: an app without a model (used to generate the OpenAPI contract). With `wrap`, the
    FastAPI app inside the `_Guard` layer (metrics of every response, logged 500s)."""
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
    gate: InferenceGate | None = None

    def the_gate() -> InferenceGate:
        nonlocal gate
        if gate is None:
            lim = state.predictor.config.limits
            gate = InferenceGate(lim.concurrency, lim.queue_depth)
        return gate

    def ident() -> tuple[str, str]:
        if state.predictor is None:
            return "", ""
        return state.predictor.config.dac_id, state.predictor.config.version

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, exc: RequestValidationError):
        problems = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or '(body)'}: {str(e['msg'])[:300]}"
            for e in exc.errors()[:20]
        ]
        return JSONResponse(status_code=422, content={"detail": problems})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request, exc: StarletteHTTPException):
        # e.g. a body that is not JSON at all: the same {"detail": [...]} shape as every refusal
        return JSONResponse(
            status_code=exc.status_code, content={"detail": [str(exc.detail)[:300]]}, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _crash(_request, _exc: Exception):
        # the answer to an unexpected error (logged by _Guard, which also keeps the server
        # from dropping the connection when Starlette re-raises the exception after it)
        return JSONResponse(status_code=500, content={"detail": [INTERNAL_ERROR]})

    @app.get("/healthz", response_model=HealthStatus, tags=["ops"])
    def healthz():
        ready = state.predictor is not None
        status = "ok" if ready else ("failed" if state.error else "loading")
        return HealthStatus(
            status=status,
            ready=ready,
            dac_id=ident()[0],
            model_version=ident()[1],
            attestation=state.attestation(),
            error=state.error or "",
        )

    @app.get("/readyz", response_model=HealthStatus, tags=["ops"], responses={503: {"model": HealthStatus}})
    def readyz():
        if fault == "http500":
            return JSONResponse(status_code=500, content={"error": "injected fault"})
        body = healthz()
        if not body.ready:
            return JSONResponse(status_code=503, content=body.model_dump())
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
        rows = getattr(req, given[0])
        lim = state.predictor.config.limits
        if len(rows) > lim.max_frames:  # refused before any parsing: refusing stays cheap
            raise LimitExceeded(
                f"{len(rows)} {given[0]} rows: this capsule takes at most {lim.max_frames} frames per request "
                "(split the capture, or stream it over /v1/stream)"
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
        check_limits(cap, req.hop_s, cfg.limits)
        x, starts, lengths = windows(cap, req.hop_s, req.amplitude_only or cfg.amplitude_only)
        p = state.predictor.proba(x)
        labels = state.predictor.decide(p, x)
        classes = cfg.classes
        out = []
        rel_t = cap.t_s - cap.t_s[0]
        for i, (s, length, row, k) in enumerate(zip(starts, lengths, p, labels, strict=True)):
            m.predictions.labels(classes[k]).inc()
            inside = (rel_t >= s - 1e-9) & (rel_t <= s + length + 1e-9)
            wid = state.observe(cap.csi[inside], x[i], classes[k], row, req.device_id, cap.t_s[inside])
            out.append(
                WindowPrediction(
                    start_s=round(float(s), 6),  # microseconds: no 0.9999999999 for 1.0
                    length_s=round(float(length), 3),
                    label=classes[k],
                    confidence=float(row[k]),
                    probabilities=[round(float(v), 6) for v in row],
                    window_id=wid,
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
            notes=cap.meta.get("notes", []),
        )

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        tags=["inference"],
        responses={
            400: {"model": ErrorResponse, "description": "the body is not JSON"},
            413: {
                "model": ErrorResponse,
                "description": "more frames or windows than this capsule takes per request; `detail` names the limit",
            },
            422: {"model": ErrorResponse, "description": "malformed payload; `detail` names the problem"},
            429: {
                "model": ErrorResponse,
                "description": "too many requests waiting for the model; retry after `Retry-After` s",
            },
            500: {"model": ErrorResponse, "description": "an unexpected error, logged by the capsule"},
            503: {"model": ErrorResponse, "description": "model not loaded (see /readyz)"},
        },
    )
    async def predict(req: PredictRequest):
        t0 = time.perf_counter()
        if fault == "http500":
            return JSONResponse(status_code=500, content={"detail": ["injected fault"]})
        if state.predictor is None:
            return JSONResponse(status_code=503, content={"detail": ["model not loaded yet; see /readyz"]})
        try:
            async with the_gate().slot():
                resp = await run_in_threadpool(classify, req)
        except Overloaded as e:
            return JSONResponse(status_code=429, content={"detail": [str(e)]}, headers={"Retry-After": "1"})
        except LimitExceeded as e:
            return JSONResponse(status_code=413, content={"detail": [str(e)]})
        except PayloadError as e:
            return JSONResponse(status_code=422, content={"detail": [str(e)]})
        m.latency.labels("/v1/predict").observe(time.perf_counter() - t0)
        return resp

    @app.post(
        "/v1/feedback",
        response_model=FeedbackResponse,
        tags=["inference"],
        responses={
            404: {
                "model": ErrorResponse,
                "description": "no such window in the inference log (or the capsule keeps no log)",
            },
            422: {"model": ErrorResponse, "description": "malformed body or a label that is not a class"},
            503: {"model": ErrorResponse, "description": "model not loaded (see /readyz)"},
        },
    )
    def feedback(req: FeedbackRequest):
        from iv_pipelines.runtime.inference_log import FeedbackError, UnknownWindow

        if state.predictor is None:
            return JSONResponse(status_code=503, content={"detail": ["model not loaded yet; see /readyz"]})
        il = state.inference_log
        if il is None:
            return JSONResponse(  # no log, no logged window: the same answer as an unknown one
                status_code=404,
                content={
                    "detail": [f"no logged window {req.window_id!r}: this capsule keeps no inference log"]
                },
            )
        try:
            rec = il.add_feedback(req.window_id, req.label, req.source)
        except UnknownWindow as e:
            return JSONResponse(status_code=404, content={"detail": [str(e)]})
        except FeedbackError as e:
            return JSONResponse(status_code=422, content={"detail": [str(e)]})
        m.feedback.labels(rec["label"], rec["predicted"]).inc()
        return FeedbackResponse(
            window_id=req.window_id, label=rec["label"], predicted=rec["predicted"], stored=True
        )

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket):
        """Send text messages holding CSI lines (newline-separated) or a JSON StreamChunk; a
        Detection is sent for every full window, one per second of stream; a bad chunk (or a
        binary message) gets a Detection with `error` set, is dropped, and the stream goes on.
        Parsing and features run off the event loop; a chunk or a buffer beyond the package's
        limits is refused like a bad chunk; an unexpected error closes the stream with 1011."""
        await ws.accept()
        if state.predictor is None:
            await ws.send_json({"error": "model not loaded yet; see /readyz"})
            await ws.close(code=1013)
            return
        cfg = state.predictor.config
        lim = cfg.limits
        st = {"csi": np.zeros((0, 64), np.complex64), "t": np.zeros(0), "origin": None, "next": None}
        st |= {"last_t": None, "amp": False}

        async def refuse(why: str, status: str = "422") -> None:
            m.requests.labels("/v1/stream", status).inc()
            await ws.send_json(
                Detection(start_s=0, label="", confidence=0, probabilities=[], error=why[:2000]).model_dump()
            )

        try:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                text = msg.get("text")
                if text is None:
                    await refuse("binary messages are not CSI: send text (CSI lines or a JSON StreamChunk)")
                    continue
                t0 = time.perf_counter()
                try:
                    cap, amp = await run_in_threadpool(_parse_chunk, text, st, lim)
                except LimitExceeded as e:
                    await refuse(str(e), "413")
                    continue
                except ValueError as e:  # PayloadError and pydantic's ValidationError
                    await refuse(str(e))
                    continue
                st["amp"] = st["amp"] or amp
                st["transmitter"] = st.get("transmitter") or cap.meta.get("transmitter")
                if len(cap.t_s):
                    st["last_t"] = float(cap.t_s[-1])
                st["csi"] = np.concatenate([st["csi"], cap.csi])
                st["t"] = np.concatenate([st["t"], cap.t_s])
                if st["origin"] is None and len(st["t"]):
                    st["origin"] = st["next"] = float(st["t"][0])
                for det in await run_in_threadpool(_stream_windows, st, cfg):
                    if det.error:
                        m.requests.labels("/v1/stream", "422").inc()
                    else:
                        m.predictions.labels(det.label).inc()
                    await ws.send_json(det.model_dump())
                m.requests.labels("/v1/stream", "200").inc()
                m.latency.labels("/v1/stream").observe(time.perf_counter() - t0)
        except WebSocketDisconnect:
            return
        except Exception:  # noqa: BLE001 - close with a reason instead of dropping the socket
            log.exception("stream failed")
            m.requests.labels("/v1/stream", "500").inc()
            with contextlib.suppress(Exception):
                await ws.close(code=1011, reason=INTERNAL_ERROR)

    def _parse_chunk(text: str, st: dict, lim) -> tuple:
        """One stream message -> (capture, amplitude-only?), checked against the stream so far."""
        if text.lstrip().startswith("{"):
            chunk = StreamChunk.model_validate_json(text)
        else:
            chunk = StreamChunk(lines=text.splitlines())
        if (chunk.lines is None) == (chunk.amplitude_csv is None):
            raise PayloadError("a chunk holds exactly one of `lines` or `amplitude_csv`")
        n_rows = len(chunk.lines if chunk.lines is not None else chunk.amplitude_csv)
        if n_rows > lim.max_frames:
            raise LimitExceeded(f"{n_rows} rows in one chunk: this capsule takes at most {lim.max_frames}")
        amp = False
        buf_t = st["t"]
        if chunk.amplitude_csv is not None:
            cap, _ = capture_from_amplitude_csv(chunk.amplitude_csv, chunk.rate_hz)
            amp = True
            # rows carry no times: they continue one packet period after the last
            if len(buf_t) or st["last_t"] is not None:
                base = (buf_t[-1] if len(buf_t) else st["last_t"]) + 1.0 / chunk.rate_hz
                cap.t_s = cap.t_s + base
        else:
            cap, rep = parse_lines(chunk.lines, source="stream")
            if rep.rejected:
                n, why = rep.rejected[0]
                raise PayloadError(f"{len(rep.rejected)} malformed line(s) in this chunk; line {n}: {why}")
            tx = cap.meta.get("transmitter")
            if tx and st.get("transmitter") and tx != st["transmitter"]:
                raise PayloadError(
                    f"this chunk's frames come from transmitter {tx}; the stream follows {st['transmitter']} "
                    "(one stream is one link: open another for another transmitter)"
                )
        if len(cap.t_s) and not np.all(np.isfinite(cap.t_s)):
            raise PayloadError("frame times must be finite numbers")
        if len(cap.t_s) and len(buf_t) and cap.t_s[0] <= buf_t[-1]:
            raise PayloadError("frame times must increase across chunks")
        if len(cap.t_s) > 1 and np.any(np.diff(cap.t_s) <= 0):
            raise PayloadError("frame times must increase within a chunk")
        if len(buf_t) + len(cap.t_s) > lim.max_stream_buffer_frames:
            raise LimitExceeded(
                f"the stream would hold {len(buf_t) + len(cap.t_s)} frames without completing a window: "
                f"this capsule keeps at most {lim.max_stream_buffer_frames} (are the times right?)"
            )
        both = np.concatenate([buf_t, cap.t_s])
        if expected_windows(both, 1.0, MAX_GAP_S) > lim.max_windows:
            raise LimitExceeded(
                f"this chunk would make more than {lim.max_windows} windows at once: send less per chunk"
            )
        return cap, amp

    def _stream_windows(st: dict, cfg) -> list[Detection]:
        """Every full window the buffer now holds (one per second of stream), classified. As
        in /v1/predict, no window spans a silence over MAX_GAP_S: the stretch before one gets
        a shorter window when it lasts MIN_WINDOW_S, and the stream resumes after it."""
        from iv_pipelines.sensing.features import (
            MIN_WINDOW_S,
            capture_seconds,
            rate_fault,
            windows_from_capture,
        )

        out = []
        while st["next"] is not None:
            buf_t = st["t"]
            sel = buf_t >= st["next"]
            if not sel.any() or buf_t[-1] < buf_t[sel][0] + WINDOW_S:
                break
            first = float(buf_t[sel][0])
            idx = np.flatnonzero(sel)
            gaps = np.flatnonzero(np.diff(buf_t[idx]) > MAX_GAP_S)
            resume = None
            if len(gaps) and buf_t[idx[gaps[0]]] < first + WINDOW_S - 1e-9:
                # the window would span a silence: the stretch before it, alone
                resume = float(buf_t[idx[gaps[0] + 1]])
                feed = in_window = sel & (buf_t < resume)
                length = capture_seconds(buf_t[in_window])
            else:  # features from the buffer onwards (resampling stops at WINDOW_S)
                feed, in_window, length = sel, sel & (buf_t <= first + WINDOW_S), WINDOW_S
            fault = rate_fault(buf_t[in_window])
            if fault and (resume is None or length + 1e-9 >= MIN_WINDOW_S):
                # too slow to decide on: the window is answered with why, not with a class
                out.append(
                    Detection(
                        start_s=round(first - st["origin"], 3),
                        label="",
                        confidence=0,
                        probabilities=[],
                        length_s=round(min(length, WINDOW_S), 3),
                        error=fault,
                    )
                )
            elif resume is None or length + 1e-9 >= MIN_WINDOW_S:
                x = windows_from_capture(
                    st["csi"][feed], buf_t[feed], hop_s=1e9, amplitude_only=st["amp"] or cfg.amplitude_only
                )[:1]
                row = state.predictor.proba(x)[0]
                k = int(state.predictor.decide(row[None], x)[0])
                wid = state.observe(st["csi"][in_window], x[0], cfg.classes[k], row, None, buf_t[in_window])
                out.append(
                    Detection(
                        start_s=round(first - st["origin"], 3),
                        label=cfg.classes[k],
                        confidence=float(row[k]),
                        probabilities=[round(float(v), 6) for v in row],
                        length_s=round(min(length, WINDOW_S), 3),
                        window_id=wid,
                    )
                )
            st["next"] = first + 1.0 if resume is None else resume
            keep = buf_t >= (st["next"] - 0.5 if resume is None else resume)  # what later windows can need
            st["csi"], st["t"] = st["csi"][keep], buf_t[keep]
        return out

    return _Guard(app, m) if wrap else app
