"""The edge ingest service: exact counters under faults, bounded memory under garbage, the
capture store readable by the calibration reader, and the UDP path end to end with a
simulated (twin) device."""

import asyncio
import random

import numpy as np
import pytest

from iv_pipelines.edge import csi_data_pb2 as pb
from iv_pipelines.edge.frames import encode
from iv_pipelines.edge.ingest import CaptureStore, DeviceKeys, IngestService, seq_delta
from iv_pipelines.edge.simulate import episode_frames

KEY = b"k" * 32


def frame(seq: int, key: bytes = KEY, device: str = "dev-1") -> bytes:
    raw = (np.arange(128) % 50 - 25).astype(np.int8)
    return encode(
        pb.CSIData(
            device_id=device,
            seq=seq,
            timestamp_us=seq * 10_000,
            layout=pb.HT20_LLTF_FFT,
            csi=raw.tobytes(),
            rssi=-50,
        ),
        key,
    )


def test_seq_delta_wraps_like_the_c_core():
    assert [
        seq_delta(5, 6),
        seq_delta(5, 5),
        seq_delta(2**32 - 1, 0),
        seq_delta(2**32 - 2, 3),
        seq_delta(10, 7),
    ] == [1, 0, 1, 5, -3]


def test_fault_mix_gives_exact_counters_and_bounded_memory():
    """1,000 frames: 5 % dropped, 2 % duplicated, 1 % corrupted (truncated), 1 % with a bad HMAC."""
    rng = random.Random(7)
    idx = rng.sample(range(1, 999), 90)  # disjoint sets, never the last frame (a gap needs a successor)
    dropped, dup, corrupt, badkey = set(idx[:50]), set(idx[50:70]), set(idx[70:80]), set(idx[80:90])
    svc = IngestService({"dev-1": KEY}.get, queue_size=64)
    for seq in range(1000):
        if seq in dropped:
            continue
        f = frame(seq, key=b"x" * 32 if seq in badkey else KEY)
        if seq in corrupt:
            f = f[: len(f) // 2]
        svc.handle(f)
        if seq in dup:
            svc.handle(f)
        svc.drain()
    c = svc.counters
    assert (c.received, c.accepted, c.duplicate, c.malformed, c.bad_hmac) == (970, 930, 20, 10, 10)
    assert (c.late, c.oversized, c.invalid, c.queue_full) == (0, 0, 0, 0)
    st = svc.devices["dev-1"]
    assert st.gaps == 70 and st.duplicates == 20 and st.frames == 930  # dropped + corrupted + bad HMAC
    assert svc.max_queued <= 64 and len(svc.devices) == 1


def test_replays_and_reordering_are_dropped_and_counted():
    svc = IngestService({"dev-1": KEY}.get)
    for seq in (10, 11, 12, 11, 10, 13, 2**32 - 1):
        svc.handle(frame(seq))
    assert svc.counters.accepted == 4 and svc.counters.duplicate == 0 and svc.counters.late == 3
    # 13 -> 2^32-1 is "late" (a jump back), 2^32-1 -> 0 after a wrap is the next frame
    svc2 = IngestService({"dev-1": KEY}.get)
    for seq in (2**32 - 2, 2**32 - 1, 0, 1):
        svc2.handle(frame(seq))
    assert svc2.counters.accepted == 4 and svc2.devices["dev-1"].gaps == 0


def test_garbage_from_strangers_costs_counters_not_memory():
    svc = IngestService({"dev-1": KEY}.get, queue_size=8)
    rng = random.Random(1)
    for i in range(5_000):
        kind = i % 4
        if kind == 0:
            d = rng.randbytes(rng.randint(0, 700))
        elif kind == 1:
            d = frame(i, key=rng.randbytes(32), device=f"stranger-{i}")
        elif kind == 2:
            d = frame(i, key=rng.randbytes(32))  # a known id, the wrong key
        else:
            d = b"\x0a\xff\xff\xff\xff\x0f"  # a length that runs past the end
        assert svc.handle(d) in ("oversized", "malformed", "bad_hmac")
    assert svc.counters.accepted == 0 and svc.devices == {} and not svc.queue
    for seq in range(20):  # a full queue refuses (counted) without losing the sequence
        svc.handle(frame(seq))
    assert svc.counters.queue_full == 12 and len(svc.queue) == 8
    svc.drain()
    assert svc.handle(frame(8)) == "accepted"  # the first refused frame, resent


def test_capture_store_writes_what_the_calibration_reader_reads(tmp_path):
    from iv_pipelines.sensing.formats import read_capture
    from iv_pipelines.sensing.pipeline import random_rooms
    from iv_pipelines.sensing.twin import simulate_dataset

    ep = simulate_dataset(random_rooms(1, 3), 1, 3, duration_s=2.0)[0]
    store = CaptureStore(tmp_path / "captures")
    svc = IngestService({"dev-1": KEY}.get, store=store)
    for d in episode_frames("dev-1", KEY, ep.csi, ep.t_s):
        assert svc.handle(d) == "accepted"
    svc.drain()
    store.close()
    [path] = list((tmp_path / "captures" / "dev-1").glob("*.csv"))
    cap, report, has_ts = read_capture(path, "esp-csi")
    assert has_ts and cap.csi.shape == ep.csi.shape and report.rejected == [] and report.parsed == len(ep.csi)
    assert np.array_equal(cap.csi, ep.csi.astype(np.complex64))  # bit-exact through protobuf and back


def test_device_keys_file(tmp_path):
    keys = DeviceKeys(tmp_path / "edge" / "devices.json")
    keys.add("esp-a1", b"0123456789abcdef", dac_id="fall-detection-acme")
    again = DeviceKeys(tmp_path / "edge" / "devices.json")
    assert again.key_for("esp-a1") == b"0123456789abcdef" and again.dac_for("esp-a1") == "fall-detection-acme"
    assert again.key_for("nobody") is None
    for bad_id, key in (("", KEY), ("x" * 32, KEY), ("ok", b"short")):
        with pytest.raises(ValueError):
            keys.add(bad_id, key)


def test_udp_end_to_end_with_a_simulated_device(tmp_path):
    from iv_pipelines.edge.ingest import serve_udp
    from iv_pipelines.edge.simulate import send_udp, twin_stream

    async def run():
        svc = IngestService({"sim-1": KEY, "sim-2": KEY}.get, store=CaptureStore(tmp_path))
        transport, drain = await serve_udp(svc, "127.0.0.1", 0)
        port = transport.get_extra_info("sockname")[1]
        streams = {d: twin_stream(d, KEY, 1.0, seed=i) for i, d in enumerate(("sim-1", "sim-2"))}
        sent = await send_udp(streams, "127.0.0.1", port, rate_hz=400)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if svc.counters.received >= sent and not svc.queue:
                break
        transport.close()
        drain.cancel()
        svc.store.close()
        return svc, sent

    svc, sent = asyncio.run(run())
    assert sent == 200 and svc.counters.accepted == 200  # loopback: nothing lost
    assert {d: s["frames"] for d, s in svc.stats()["devices"].items()} == {"sim-1": 100, "sim-2": 100}
    assert sum(1 for _ in (tmp_path / "sim-1").glob("*.csv")) == 1


def test_http_ingest_takes_length_delimited_frames_and_refuses_bad_bodies():
    from starlette.testclient import TestClient

    from iv_pipelines.edge.http import MAX_BODY_BYTES, create_ingest_app, delimited, split_delimited

    svc = IngestService({"dev-1": KEY}.get)
    c = TestClient(create_ingest_app(svc))
    good = [frame(s) for s in range(5)]
    r = c.post("/v1/ingest", content=delimited(good + [good[2], b"junk", frame(9, key=b"z" * 32)]))
    assert r.status_code == 200
    assert r.json() == {"items": 8, "outcomes": {"accepted": 5, "late": 1, "malformed": 1, "bad_hmac": 1}}
    assert c.get("/v1/devices").json()["devices"]["dev-1"]["frames"] == 5
    assert split_delimited(delimited([b"", b"x" * 300])) == [b"", b"x" * 300]
    for body, status, words in (
        (b"\x80\x80\x80\x80\x80\x01", 400, "longer than 5 bytes"),
        (b"\x05ab", 400, "runs past the end"),
        (b"\xff\x0f" + b"x" * 10, 400, "a frame is at most"),
        (b"\x00" * (MAX_BODY_BYTES + 1), 413, "body over"),
    ):
        r = c.post("/v1/ingest", content=body)
        assert r.status_code == status and words in r.json()["detail"][0], r.text
    assert svc.counters.received == 8  # refused bodies reach no counter but the HTTP status


def test_cli_registers_devices_and_refuses_what_it_cannot_do(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from iv_app.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.delenv("IV_STORAGE_ROOT", raising=False)
    r = CliRunner().invoke(main, ["ingest", "serve"])
    assert r.exit_code != 0 and "no registered device" in r.output
    r = CliRunner().invoke(main, ["ingest", "device", "esp-a1", "--dac", "fall-detection-acme"])
    assert r.exit_code == 0 and "registered esp-a1 -> fall-detection-acme" in r.output
    keys = DeviceKeys(tmp_path / "iv" / "edge" / "devices.json")
    assert len(keys.key_for("esp-a1")) == 32
    r = CliRunner().invoke(main, ["ingest", "device", "x" * 40])
    assert r.exit_code != 0 and "printable characters" in r.output
    r = CliRunner().invoke(main, ["ingest", "device", "../calibration"])
    assert r.exit_code != 0 and "capture folder" in r.output
    r = CliRunner().invoke(main, ["ingest", "simulate", "--host", "10.0.0.1"])
    assert r.exit_code != 0 and "loopback only" in r.output
    r = CliRunner().invoke(main, ["ingest", "simulate", "--devices", "3"])
    assert r.exit_code != 0 and "1 registered device" in r.output


def test_device_day_summary_asset_and_export_for_calibration(tmp_path):
    import datetime as dt
    import json

    import dagster as dg

    from defs.edge import device_captures
    from iv_pipelines.edge.captures import export_capture, summarise_day
    from iv_pipelines.sensing.formats import read_capture
    from iv_pipelines.storage import StorageLayout
    from resources.storage import FactoryStorage
    from tests.conftest import materialized

    layout = StorageLayout(tmp_path / "iv")
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)  # a daily partition exists once its day ended
    store = CaptureStore(layout.edge_captures_dir(), clock=yesterday.timestamp)
    svc = IngestService({"dev-1": KEY}.get, store=store)
    for seq in [*range(0, 30), *range(35, 60)]:  # 5 frames lost in the air
        svc.handle(frame(seq))
    svc.drain()
    svc.store.close()
    layout.edge_detections_file().write_text(
        json.dumps({"device_id": "dev-1", "label": "fall", "received_at": yesterday.timestamp()}) + "\n"
    )
    today = yesterday.date()
    [row] = summarise_day(layout.edge_captures_dir(), layout.edge_detections_file(), today)
    assert (row["frames"], row["gaps"], row["mean_rssi"], row["detections"]) == (55, 5, -50.0, {"fall": 1})
    assert row["rate_hz"] == round(54 / 0.59, 1)  # 55 frames over 0.59 s of device time (with the gap)
    assert summarise_day(layout.edge_captures_dir(), None, today - dt.timedelta(days=1)) == []
    out = materialized(
        dg.materialize(
            [device_captures],
            partition_key=str(today),
            resources={"storage": FactoryStorage(root_dir=str(layout.root))},
        )
    )
    assert out["devices"] == 1 and out["frames"] == 55 and "| dev-1 | 55 |" in out["by_device"]
    n = export_capture(layout.edge_captures_dir(), "dev-1", tmp_path / "walk.csv", seconds=0.2)
    cap, report, has_ts = read_capture(tmp_path / "walk.csv", "esp-csi")
    assert n == 21 and cap.csi.shape == (21, 64) and has_ts and report.rejected == []
    with pytest.raises(FileNotFoundError, match="no stored frames"):
        export_capture(layout.edge_captures_dir(), "nobody", tmp_path / "x.csv")


def test_a_request_takes_its_calibration_from_a_registered_device(tmp_path):
    """`calibration: [{activity: walk, from_device: ID, seconds: 10}]`: the request store reads
    the device's stored frames (what `iv ingest serve` kept), checks and stores them like a file."""
    from iv_pipelines.errors import InputError
    from iv_pipelines.intake import RequestStore
    from iv_pipelines.request import parse_request_text
    from iv_pipelines.sensing.pipeline import random_rooms
    from iv_pipelines.sensing.twin import simulate_dataset
    from iv_pipelines.storage import StorageLayout

    layout = StorageLayout(tmp_path / "iv")
    store = CaptureStore(layout.edge_captures_dir())
    svc = IngestService({"esp-lr": KEY}.get, store=store)
    seq, t0 = 0, 0.0
    for ep in simulate_dataset(random_rooms(1, 5), 3, 5, duration_s=4.0):  # 12 s of a simulated device
        for d in episode_frames("esp-lr", KEY, ep.csi, ep.t_s - ep.t_s[0] + t0, first_seq=seq):
            svc.handle(d)
        seq += len(ep.csi)
        t0 += float(ep.t_s[-1] - ep.t_s[0]) + 0.01
    svc.drain()
    store.close()
    text = """
client_id: acme-healthcare
domain: wifi-sensing
text: Autonomous WiFi sensing for elderly fall detection in a living room with an ESP32 device
environment: {description: living room, room: {width_m: 5, depth_m: 4, height_m: 2.6}}
calibration:
  - {activity: walk, from_device: esp-lr, seconds: 10, origin: simulated}
"""
    req = parse_request_text(text)
    stored = RequestStore(layout.root).ingest_calibration(req, None)
    [cap] = stored.calibration
    assert cap.path.endswith(".csv") and cap.sha256 and cap.from_device is None and cap.device == "esp-lr"
    assert (layout.calibration_dir() / cap.path).is_file()
    bad = parse_request_text(text.replace("from_device: esp-lr", "from_device: nobody"))
    with pytest.raises(
        InputError, match="calibration\\[0\\].from_device: no stored frames of device 'nobody'"
    ):
        RequestStore(layout.root).ingest_calibration(bad, None)
    with pytest.raises(ValueError, match="exactly one of path or from_device"):
        parse_request_text(text.replace("from_device: esp-lr", "from_device: esp-lr, path: x.csv"))


def test_detections_reach_another_process_through_the_ingest_feed():
    """`iv gateway serve` subscribes to `iv ingest serve`'s /v1/detections: a detection the
    ingest side publishes arrives on the gateway side's stream (real sockets on loopback)."""
    import socket
    import threading
    import time

    import uvicorn

    from iv_pipelines.edge.forward import DetectionStream, DeviceDetection
    from iv_pipelines.edge.http import create_ingest_app, relay_detections

    ingest_side, gateway_side = DetectionStream(), DetectionStream()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_ingest_app(IngestService({}.get), ingest_side)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    sub = gateway_side.subscribe()

    async def run():
        stop = asyncio.Event()
        relay = asyncio.create_task(
            relay_detections(f"ws://127.0.0.1:{port}/v1/detections", gateway_side, stop)
        )
        for _ in range(100):  # until the relay is subscribed on the ingest side
            await asyncio.sleep(0.05)
            if ingest_side._subs:
                break
        ingest_side.publish(
            DeviceDetection(
                "esp-1", "fall-a1", 7, 70_000, "fall", 0.9, {"fall": 0.9}, "1.0.0", "simulation_only"
            )
        )
        for _ in range(100):
            await asyncio.sleep(0.05)
            if not sub.empty():
                break
        stop.set()
        relay.cancel()

    try:
        asyncio.run(run())
    finally:
        server.should_exit = True
    det = sub.get_nowait()
    assert (det.device_id, det.dac_id, det.seq, det.label) == ("esp-1", "fall-a1", 7, "fall")


def test_the_from_device_fields_leave_existing_requests_digests_unchanged():
    """Requests stored before `from_device` existed keep their canonical form and digest (the
    DAC's identity): the new fields are left out while unset. Caught by bench/new_clients.py,
    whose stored request was refused as 'different content' before this rule."""
    from iv_pipelines.request import load_request_file
    from tests.conftest import REPO

    req = load_request_file(REPO / "examples" / "requests" / "fall-detection-acme.yaml")
    caps = req.canonical_dict()["calibration"]
    assert caps and all(not {"from_device", "seconds", "start_us"} & set(c) for c in caps)
    # the digest computed at b71886c, the commit before `from_device` existed
    assert req.digest() == "ceb5f805f5d1288d5cdd9a4731c74ad22468567b45536d055a49fe9554722ee2"
