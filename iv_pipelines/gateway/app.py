"""The gateway (FastAPI): what one client's staff may see of their DACs, and nothing else.

REST (API key in `Authorization: Bearer ivk_...` or `X-API-Key`):
    GET  /v1/dacs                 the client's DACs: version, evidence, status, UTID
    GET  /v1/dacs/{dac}/proof     its lineage registration (UTID, digest, Merkle root)
    GET  /v1/pins                 the client's Capsule Pin records;  GET /v1/pins/{dac}
    GET  /v1/theme                the client's theme (flexible tokens, CSS variables, sacred tokens)
    POST /v1/dacs/{dac}/runs      launch the DAC's lifecycle run in Dagster (a key with `deploy`)
    GET  /v1/dacs/{dac}/runs/{id} that run's status and progress
    POST /v1/stream-token         a token for the WebSocket streams (valid TOKEN_TTL_S seconds)
WebSocket (`?token=` from /v1/stream-token; a browser cannot set headers on a WebSocket):
    /v1/streams/pins              pin status of the client's DACs, every `pin_interval_s`
    /v1/streams/detections        detections of the client's DACs (the edge ingest stream)

Isolation: a DAC, pin or theme of another client is a 404, exactly like one that does not
exist; an unknown, malformed or revoked key is a 401 with no detail, an invalid token closes
the socket with 1008 and no reason.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import JSONResponse

from iv_pipelines.gateway.keys import ApiKeys
from iv_pipelines.storage import StorageLayout

UNAUTHORIZED = JSONResponse({"detail": "unauthorized"}, status_code=401)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


class ClientView:
    """Everything the gateway reads, always through one client's eyes."""

    def __init__(self, layout: StorageLayout, theme_dirs: list[Path]):
        self.layout = layout
        self.theme_dirs = theme_dirs

    def dacs(self, client: str) -> list[str]:
        """The client's DACs: every stored request of theirs (run or not yet) and every DAC
        whose lifecycle saved a request of theirs."""
        from iv_pipelines.intake import RequestStore

        store = RequestStore(self.layout.root)
        out = set()
        for d in set(self.layout.requested_dacs()) | set(store.list_ids()):
            rec = self.layout.dac_request(d)
            if rec is None:
                try:
                    rec = _read(store.path_for(d))
                except KeyError:  # not a DAC id: not a request
                    rec = None
            if (rec or {}).get("client_id") == client:
                out.add(d)
        return sorted(out)

    def owns(self, client: str, dac: str) -> bool:
        return dac in self.dacs(client)

    def dac_summary(self, dac: str) -> dict:
        cur = self.layout.current_package(dac) or {}
        ev = _read(self.layout.adapter_dir(dac) / "evaluation.json") or {}
        reg = _read(self.layout.lineage_dir(dac) / "registration.json") or {}
        pin = _read(self.layout.pin_file(dac)) or {}
        evidence = ev.get("evidence") or {}
        scores = []
        for source, data in (
            ("simulation", "simulated client room"),
            ("client_device", "real captures of the client's device"),
        ):
            m = evidence.get(source)
            if isinstance(m, dict) and m.get("n"):
                scores.append(
                    {
                        "data": data,
                        "n": m.get("n"),
                        "accuracy": m.get("accuracy"),
                        "fall_recall": m.get("recall_fall"),
                        "fall_false_alarm_rate": m.get("fall_false_alarm_rate"),
                    }
                )
        return {
            "dac_id": dac,
            "version": cur.get("version"),
            "validated_on": evidence.get("validated_on"),
            "status": pin.get("status")
            or (
                "requested"
                if self.layout.dac_request(dac) is None
                else "not deployed"
                if self.layout.deployment(dac) is None
                else "unknown"
            ),
            "utid": reg.get("utid"),
            "scores": scores,
        }

    def proof(self, dac: str) -> dict:
        reg = _read(self.layout.lineage_dir(dac) / "registration.json") or {}
        lin = _read(self.layout.lineage_dir(dac) / "lineage.json") or {}
        return {
            "dac_id": dac,
            "utid": reg.get("utid"),
            "digest": reg.get("digest"),
            "tx_hash": reg.get("tx_hash"),
            "merkle_root": (lin.get("merkle") or {}).get("root"),
            "registered": bool(reg),
        }

    def pins(self, client: str) -> list[dict]:
        return [p for d in self.dacs(client) if (p := _read(self.layout.pin_file(d))) is not None]

    def theme(self, client: str) -> dict | None:
        from iv_pipelines.errors import InputError
        from iv_pipelines.whitelabel.theme import load_theme

        for d in self.theme_dirs:
            for f in sorted(Path(d).glob("*.yaml")) if Path(d).is_dir() else []:
                try:
                    t = load_theme(f)
                except InputError:
                    continue
                if t.client_id == client:
                    return t.to_public()
        return None


DEMO_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Capsule Pins: demo</title><link rel="icon" href="data:,">
<meta name="iv-gateway" content=""><meta name="iv-key" content="{key}">
<script type="module" src="/static/iv-components.js"></script>
<style>main {{ padding-bottom: 240px; }} main > * {{ margin-bottom: 12px; }}</style></head>
<body><main><h1>Capsule Pins for {client}</h1>{note}
{cards}
<iv-sensing-dashboard data-source="detections" show-realtime show-energy-graph></iv-sensing-dashboard>
<iv-dac-explorer{allow}></iv-dac-explorer>
<iv-capsule-pin client-id="{client}" position="bottom-right"></iv-capsule-pin></main></body></html>
"""
SIMULATED_NOTE = (
    "<p><strong>Simulated sensor:</strong> the detections below come from the DAC's running capsule, "
    "fed with Shadow Twin CSI of the client's room through the edge ingest path, not from a real "
    "radio. The scene repeats: {scene}. The capsule's decisions are shown as it makes them, "
    "mistakes included.</p>"
)


def _scene_text() -> str:
    from iv_pipelines.gateway.demo import SCENE

    return ", ".join(f"{a} {s:g} s" for a, s in SCENE)


def create_gateway_app(
    storage_root: Path,
    theme_dirs: list[Path] | None = None,
    detections=None,
    pin_interval_s: float = 1.0,
    static_dir: Path | None = None,
    demo_key: str | None = None,
    ledger=None,
    trusted_key=None,
    atlas=None,
    runs=None,
    demo_simulated: bool = False,
    capsule_url_for=None,
) -> FastAPI:
    """`detections`: an `iv_pipelines.edge.forward.DetectionStream` to relay (optional);
    `static_dir`: the built web components (web/dist), served at /static; `demo_key`: serve
    /demo, a page embedding the components with this key (the local demo only: the key is in
    the page); `ledger` + `trusted_key`: proofs are verified against the ledger (else their
    `verified` is null, "unknown"); `atlas`: a callable returning a context manager that
    yields the Energy Atlas (its `trajectory` serves /v1/dacs/{dac}/energy); `runs`: a
    `DagsterRuns` (the webserver's GraphQL API) for keys with the `deploy` scope;
    `demo_simulated`: /demo says its detections come from a simulated sensor;
    `capsule_url_for`: dac -> its capsule's URL (default: the deployment record's), where
    feedback on a logged window is passed on."""
    layout = StorageLayout(storage_root)
    keys = ApiKeys(layout.root / "gateway")
    keys._server_secret()  # created before the first request: concurrent token requests agree
    view = ClientView(layout, list(theme_dirs or []) + [layout.root / "themes"])
    app = FastAPI(title="Industriverse DAC gateway", docs_url=None, redoc_url=None)

    def _key_of(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else request.headers.get("x-api-key")

    def client_of(request: Request) -> str | None:
        return keys.client_for(_key_of(request))

    class Authenticate:
        """Every /v1/ HTTP request carries a client's key (401 otherwise); the client and its
        scopes go to `request.state`. A plain ASGI middleware: responses (static files,
        streams) pass through untouched. (Starlette's BaseHTTPMiddleware re-streams every body
        through a memory pipe, which now and then cut the web components' bundle short of its
        Content-Length — uvicorn: "Response content shorter than Content-Length" — and the
        demo page stayed blank: 2 of 4 CI runs on 2026-12-07.)"""

        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http" and scope["path"].startswith("/v1/"):
                request = Request(scope)
                client = client_of(request)
                if client is None:
                    await UNAUTHORIZED(scope, receive, send)
                    return
                request.state.client = client  # scope["state"]: every later Request sees it
                request.state.scopes = keys.scopes_for(_key_of(request))
            await self.inner(scope, receive, send)

    app.add_middleware(Authenticate)

    def own(request: Request, dac: str) -> str:
        if not view.owns(request.state.client, dac):
            raise HTTPException(404, "not found")
        return dac

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    @app.get("/v1/dacs")
    def dacs(request: Request):
        return [view.dac_summary(d) for d in view.dacs(request.state.client)]

    @app.get("/v1/dacs/{dac}/proof")
    def proof(request: Request, dac: str):
        out = view.proof(own(request, dac)) | {"verified": None, "problems": []}
        reg = layout.lineage_dir(dac) / "registration.json"
        if ledger is not None and trusted_key is not None and reg.is_file():
            from iv_pipelines.ledger.sync import verify_dac

            res = verify_dac(reg, ledger, trusted_key)
            root = str(layout.root)  # a client learns what is wrong, not where the server keeps files
            out |= {
                "verified": not res.problems,
                "problems": [p.replace(root, "<storage>") for p in res.problems],
            }
        return out

    @app.get("/v1/dacs/{dac}/energy")
    def energy(request: Request, dac: str, days: int = 30):
        """The DAC's energy states from the Energy Atlas: its lifecycle signature (the newest
        `lifecycle` state) and the daily history, newest last (at most 500)."""
        import time as _time

        own(request, dac)
        if atlas is None:
            raise HTTPException(404, "not found")
        since = int((_time.time() - max(1, min(days, 366)) * 86400) * 1000)
        with atlas() as graph:
            states = graph.trajectory(f"dac:{dac}", 0)
        rows = [
            {
                "ts_ms": st.ts_ms,
                "E_state": st.E_state,
                "dE_dt": st.dE_dt,
                "S_state": st.S_state,
                "source": st.source,
            }
            for st in sorted(states, key=lambda st: st.ts_ms)
        ]
        lifecycle = [r for r in rows if r["source"] == "lifecycle"]
        return {
            "dac_id": dac,
            "lifecycle": lifecycle[-1] if lifecycle else None,
            "history": [r for r in rows if r["ts_ms"] >= since and r["source"] != "lifecycle"][-500:],
        }

    @app.post("/v1/dacs/{dac}/runs", status_code=201)
    def launch_run(request: Request, dac: str):
        """Launch the DAC's lifecycle run (`dac_lifecycle_job`, its `dac` partition) through
        Dagster's GraphQL API. 403 without the `deploy` scope, 409 while one is queued or
        running, 503 when this gateway has no Dagster or Dagster does not answer."""
        import logging

        from iv_pipelines.gateway.dagster_runs import DagsterUnavailable, RunConflict

        own(request, dac)
        if "deploy" not in request.state.scopes:
            raise HTTPException(403, "this key may not launch runs (a key with the deploy scope may)")
        if runs is None:
            raise HTTPException(503, "this gateway launches no runs (serve it with --dagster URL)")
        try:
            out = runs.launch(dac, {"iv/launched_by": "gateway", "iv/client": request.state.client})
        except RunConflict as e:
            raise HTTPException(409, str(e)) from None
        except DagsterUnavailable as e:
            logging.getLogger("iv.gateway").warning("launch of %s refused: %s", dac, e)
            raise HTTPException(503, "Dagster did not accept the launch; try again later") from None
        return {"dac_id": dac} | out

    @app.get("/v1/dacs/{dac}/runs/{run_id}")
    def run_status(request: Request, dac: str, run_id: str):
        import re

        from iv_pipelines.gateway.dagster_runs import JOB, DagsterUnavailable

        own(request, dac)
        if runs is None or not re.fullmatch(r"[0-9a-f-]{36}", run_id):
            raise HTTPException(404, "not found")
        try:
            r = runs.run(run_id)
        except DagsterUnavailable:
            raise HTTPException(503, "Dagster does not answer; try again later") from None
        if r is None or r["job"] != JOB or r["tags"].get("dagster/partition") != dac:
            raise HTTPException(404, "not found")  # another DAC's (or client's) run is not here
        return {"dac_id": dac} | {k: v for k, v in r.items() if k != "tags"}

    @app.get("/v1/pins")
    def pins(request: Request):
        return view.pins(request.state.client)

    @app.get("/v1/pins/{dac}")
    def pin(request: Request, dac: str):
        p = _read(layout.pin_file(own(request, dac)))
        if p is None:
            raise HTTPException(404, "not found")
        return p

    @app.get("/v1/theme")
    def theme(request: Request):
        t = view.theme(request.state.client)
        if t is None:
            raise HTTPException(404, "not found")
        return t

    @app.post("/v1/feedback")
    async def feedback(request: Request):
        """A caregiver's answer to an alert: {dac_id, device_id, seq, timestamp_us, label,
        was_fall}. Stored with the 2 s CSI window it refers to (from the edge capture store)
        for the DAC's owner to retrain on; 404 for another client's DAC, 422 for a bad body."""
        import time as _time

        from pydantic import BaseModel, ConfigDict, Field, ValidationError

        class Feedback(BaseModel):
            model_config = ConfigDict(extra="forbid")
            dac_id: str = Field(min_length=1, max_length=80)
            device_id: str = Field(min_length=1, max_length=31, pattern=r"^[\x21-\x7e]+$")
            seq: int = Field(ge=0, lt=2**32)
            timestamp_us: int = Field(ge=0)
            label: str = Field(pattern=r"^(empty|walk|sit|fall)$")
            was_fall: bool
            window_id: str | None = Field(default=None, pattern=r"^w-[0-9a-f]{16}$")

        raw = await request.body()
        if len(raw) > 4096:
            raise HTTPException(413, "feedback body over 4096 bytes")
        try:
            fb = Feedback.model_validate_json(raw)
        except ValidationError as e:
            raise HTTPException(
                422, [f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()]
            ) from None
        own(request, fb.dac_id)
        from iv_pipelines.edge.captures import export_capture
        from iv_pipelines.edge.ingest import DeviceKeys

        if DeviceKeys(layout.edge_devices_file()).dac_for(fb.device_id) != fb.dac_id:
            raise HTTPException(404, "not found")  # only a device that feeds this DAC (no one else's CSI)

        window = layout.feedback_windows_dir(fb.dac_id) / f"{fb.device_id}-{fb.seq}.csv"
        try:
            n = export_capture(
                layout.edge_captures_dir(), fb.device_id, window, fb.timestamp_us - 2_000_000, 2.0
            )
        except (FileNotFoundError, ValueError):
            n, window = 0, None  # the answer is kept even when the window is not (yet) stored
        # the capsule keeps the window in its inference log: the label goes there too, for
        # drift, feedback accuracy and retraining (#18); its answer is recorded, not required
        capsule = None
        url = (capsule_url_for or (lambda d: (layout.deployment(d) or {}).get("url")))(fb.dac_id)
        urls = [url] if url else []
        canary = layout.canary_file(fb.dac_id)  # a candidate may have decided the window
        if canary.is_file():
            urls.append((_read(canary) or {}).get("url"))
        if fb.window_id and urls:
            from iv_pipelines.edge.forward import http_post

            for u in filter(None, urls):
                try:
                    http_post(
                        u.rstrip("/") + "/v1/feedback",
                        {
                            "window_id": fb.window_id,
                            "label": "fall" if fb.was_fall else "not_fall",
                            "source": "caregiver",
                        },
                        timeout_s=3.0,
                    )
                    capsule = "stored"
                    break
                except (OSError, RuntimeError, ValueError) as e:
                    capsule = "not stored: " + str(e).split(": ", 1)[-1][:200]
        rec = fb.model_dump() | {
            "client_id": request.state.client,
            "answered_at": int(_time.time()),
            "window": window.name if window else None,
            "window_frames": n,
            "capsule_feedback": capsule,
        }
        out = layout.feedback_file(fb.dac_id)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        return {
            "stored": True,
            "window_frames": n,
            "capsule_feedback": capsule is not None and capsule == "stored",
        }

    @app.post("/v1/stream-token")
    def stream_token(request: Request):
        from iv_pipelines.gateway.keys import TOKEN_TTL_S

        return {"token": keys.stream_token(request.state.client), "expires_in_s": TOKEN_TTL_S}

    async def _accept(ws: WebSocket, before_accept=None) -> str | None:
        client = keys.client_for_token(ws.query_params.get("token"))
        if client is None:
            await ws.close(code=1008)
            return None
        if before_accept is not None:  # e.g. subscribe first: nothing published after the open is missed
            before_accept()
        await ws.accept()
        return client

    @app.websocket("/v1/streams/pins")
    async def pin_stream(ws: WebSocket):
        client = await _accept(ws)
        if client is None:
            return
        try:
            while True:
                await ws.send_json({"type": "pins", "pins": [view.dac_summary(d) for d in view.dacs(client)]})
                await asyncio.sleep(pin_interval_s)
        except Exception:  # noqa: BLE001 (the client went away)
            return

    @app.websocket("/v1/streams/detections")
    async def detection_stream(ws: WebSocket):
        if detections is None:
            await ws.close(code=1011)
            return
        subs = []
        client = await _accept(ws, lambda: subs.append(detections.subscribe(maxsize=1000)))
        if client is None:
            return
        sub = subs[0]
        loop = asyncio.get_running_loop()
        owned, checked = set(view.dacs(client)), loop.time()
        try:
            async for det in detections.iterate(sub):
                if loop.time() - checked > 5:  # DACs added or moved meanwhile
                    owned, checked = set(view.dacs(client)), loop.time()
                if det.dac_id in owned:
                    await ws.send_json({"type": "detection"} | det.to_dict())
        except Exception:  # noqa: BLE001 (the client went away)
            return
        finally:
            detections.unsubscribe(sub)

    if static_dir is not None:
        from fastapi.staticfiles import StaticFiles

        app.mount("/static", StaticFiles(directory=str(static_dir)), name="static")
    if demo_key is not None:
        from fastapi.responses import HTMLResponse

        demo_client = keys.client_for(demo_key)

        @app.get("/demo", response_class=HTMLResponse)
        def demo():
            import html

            cards = "".join(
                f'<iv-pin-card pin-id="{html.escape(d)}" show-thermodynamic-gauge show-blockchain-badge></iv-pin-card>'
                for d in view.dacs(demo_client or "")
            )
            return DEMO_PAGE.format(
                key=html.escape(demo_key),
                client=html.escape(demo_client or "?"),
                cards=cards,
                note=SIMULATED_NOTE.format(scene=_scene_text()) if demo_simulated else "",
                allow=" allow-deploy" if runs is not None else "",
            )

    return app
