"""The edge acceptance round trip: a simulated device streams twin CSI as protobuf frames over
UDP -> the ingest service verifies and de-duplicates them -> the forwarder posts windows to
the DAC's capsule (a real local deployment, over HTTP) -> detections arrive on the stream,
and a fall episode is detected. Simulated evidence: the twin stands in for the radio."""

import asyncio

from tests.conftest import REPO  # noqa: F401  (repository on sys.path)

KEY = b"round-trip-device-key-0123456789"


def test_simulated_device_to_capsule_to_detection_stream(default_base_model, tmp_path):
    from iv_app.sample import _sample_request_text, make_small_dac
    from iv_pipelines.deploy.targets import LocalDeployer
    from iv_pipelines.edge.forward import CapsuleForwarder, DetectionStream
    from iv_pipelines.edge.ingest import CaptureStore, IngestService, serve_udp
    from iv_pipelines.edge.simulate import episode_frames, send_udp
    from iv_pipelines.packaging.dac import build_dac_package
    from iv_pipelines.proof.dsse import load_or_create_signing_key
    from iv_pipelines.request import parse_request_text
    from iv_pipelines.sensing.pipeline import client_resident, client_room
    from iv_pipelines.sensing.twin import simulate_dataset
    from iv_pipelines.storage import StorageLayout

    _, base_root = default_base_model
    root = tmp_path / "iv"
    root.mkdir()
    key = load_or_create_signing_key(tmp_path / "keys")
    make_small_dac(root, key, base_model=StorageLayout(base_root).base_model_dir())
    energy = {"E_state": 1.0, "dE_dt": 1.0, "S_state": 0.5, "method": "test"}
    pkg, _, _ = build_dac_package(root, "fall-detection-acme", key, key.public, energy, "run", [])
    deployer = LocalDeployer(tmp_path / "deployments")
    rec = deployer.deploy(pkg.directory, pkg.dac_id, pkg.version)
    try:
        req = parse_request_text(_sample_request_text())
        eps = simulate_dataset([client_room(req)], 6, 11, duration_s=4.0, resident=client_resident(req))
        empty = [e for e in eps if e.activity == "empty"][:2]
        falls = [e for e in eps if e.activity == "fall"]
        frames, t0, seq = [], 0.0, 0
        for e in empty + falls:  # one continuous recording: empty room, then the falls
            frames += list(episode_frames("esp-sim-1", KEY, e.csi, e.t_s - e.t_s[0] + t0, first_seq=seq))
            t0 += float(e.t_s[-1] - e.t_s[0]) + 0.01
            seq += len(e.csi)
        stream = DetectionStream()
        sub = stream.subscribe()
        fwd = CapsuleForwarder(lambda d: (rec.url, pkg.dac_id) if d == "esp-sim-1" else None, stream)
        svc = IngestService({"esp-sim-1": KEY}.get, store=CaptureStore(tmp_path / "captures"), forward=fwd)

        async def run():
            transport, drain = await serve_udp(svc, "127.0.0.1", 0)
            port = transport.get_extra_info("sockname")[1]
            sent = await send_udp({"esp-sim-1": frames}, "127.0.0.1", port, rate_hz=200)
            for _ in range(500):
                await asyncio.sleep(0.02)
                if svc.counters.received >= sent and not svc.queue:
                    break
            transport.close()
            drain.cancel()
            return sent

        sent = asyncio.run(run())
        fwd.close()
        svc.store.close()
    finally:
        deployer.stop(pkg.dac_id)
    dets = []
    while not sub.empty():
        dets.append(sub.get_nowait())
    assert sent == len(frames) and svc.counters.accepted == sent, svc.stats()
    assert not fwd.errors, list(fwd.errors)
    assert len(dets) >= t0 - 3  # one detection per second of device time (t0: the recording's length)
    assert all(d.dac_id == pkg.dac_id and d.validated_on for d in dets)
    fall_from_us = int(sum(float(e.t_s[-1] - e.t_s[0]) + 0.01 for e in empty) * 1e6)
    labels_in_falls = [d.label for d in dets if d.timestamp_us > fall_from_us]
    assert "fall" in labels_in_falls, [d.label for d in dets]
