"""`iv`: the command line of the DAC factory.

iv request add FILE      validate a request, store it and add its `dac` partition
iv request list          list stored requests
iv manifest validate F…  validate DAC manifests (errors name the field and the rule)
iv verify BUNDLE          check a DAC lineage bundle offline (signature, Merkle, file digests)
iv verify-package PKG     check a package directory or .tar.gz against its signed attestation
iv dac evaluate DAC F…    decide labelled captures with a DAC's package as its capsule does
iv demo                  register the sample request and run the lifecycle job for it
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from iv_pipelines.errors import InputError


def _instance():
    import dagster as dg

    try:
        return dg.DagsterInstance.get()
    except Exception as exc:  # DAGSTER_HOME unset or not a directory
        raise click.ClickException(
            f"cannot open the Dagster instance ({exc}); set DAGSTER_HOME to a directory "
            "(make ui / make demo use .dagster_home/ in the repo)"
        ) from None


def _storage():
    from resources.selection import resources_for

    return resources_for()["storage"]


def register_request(
    path: Path, instance, storage, warnings: list[str] | None = None
) -> tuple[str, Path, bool]:
    """Validate `path`, store the request and add its partition. Returns (dac_id, stored, created);
    what its captures' checks warn about is appended to `warnings`."""
    from defs.common import dac_partitions
    from iv_pipelines.request import load_request_file

    request = load_request_file(path)
    stored, created = storage.requests().put(request, base_dir=Path(path).parent, warnings=warnings)
    if not instance.has_dynamic_partition(dac_partitions.name, request.dac_id):
        instance.add_dynamic_partitions(dac_partitions.name, [request.dac_id])
    return request.dac_id, stored, created


@click.group()
def main() -> None:
    """Industriverse DAC factory command line."""


@main.group()
def request() -> None:
    """Client requests (one `dac` partition each)."""


@request.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def request_add(file: Path) -> None:
    """Validate FILE (JSON/YAML), store it and add its `dac` partition."""
    warnings: list[str] = []
    try:
        dac_id, stored, created = register_request(file, _instance(), _storage(), warnings)
    except InputError as err:
        click.echo(str(err), err=True)
        sys.exit(2)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"{'added' if created else 'already registered'}: dac partition {dac_id!r} ({stored})")


@request.command("list")
def request_list() -> None:
    """List stored requests."""
    for dac_id in _storage().requests().list_ids():
        click.echo(dac_id)


@main.group()
def manifest() -> None:
    """DAC manifests."""


@manifest.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def manifest_validate(files: tuple[Path, ...]) -> None:
    """Validate manifest FILES; exit 1 if any is invalid."""
    from iv_pipelines.manifest import load_manifest

    bad = 0
    for f in files:
        try:
            m = load_manifest(f)
            click.echo(f"{f}: valid ({m.dac_id} v{m.version})")
        except InputError as err:
            click.echo(str(err), err=True)
            bad += 1
    sys.exit(1 if bad else 0)


def _trusted_key(public_key: Path | None):
    """The key verification trusts: --public-key, or the signing key already configured here.
    Verification never creates a key: with neither, it says so and stops."""
    from iv_pipelines.proof.dsse import SignatureError, existing_public_key, load_public_pem
    from resources.proof import default_keys_dir

    try:
        if public_key:
            return load_public_pem(public_key.read_bytes())
        found = existing_public_key(default_keys_dir())
    except SignatureError as err:
        raise click.ClickException(str(err)) from None
    if found is None:
        raise click.ClickException(
            "no trusted key: pass --public-key PEM (the factory's public key), or set IV_SIGNING_KEY[_FILE] "
            "or DAGSTER_HOME to where the factory's key lives; verification never creates a key"
        )
    return found[0]


@main.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM public key to trust (default: the local signing key's, from IV_SIGNING_KEY[_FILE] "
    "or $DAGSTER_HOME/keys)",
)
@click.option(
    "--storage-root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="where the bundle's files live (default: three levels above the bundle)",
)
def verify(bundle: Path, public_key: Path | None, storage_root: Path | None) -> None:
    """Verify a lineage BUNDLE directory offline; exit 1 and list every problem if it fails."""
    from iv_pipelines.proof.lineage import verify_bundle

    trusted = _trusted_key(public_key)
    report = verify_bundle(bundle, trusted, storage_root)
    if report.ok:
        click.echo(
            f"{bundle}: OK — DAC {report.dac_id}, {report.n_leaves} files, Merkle root {report.merkle_root}"
        )
        sys.exit(0)
    for p in report.problems:
        click.echo(f"{bundle}: {p}", err=True)
    click.echo(f"{bundle}: FAILED ({len(report.problems)} problems)", err=True)
    sys.exit(1)


@main.command("verify-package")
@click.argument("package", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM public key to trust (default: the signing key already configured here; never created)",
)
def verify_package_cmd(package: Path, public_key: Path | None) -> None:
    """Verify a DAC PACKAGE (its directory or its .tar.gz) against the signed attestation
    beside it: signature, tarball digest and every file; exit 1 naming every file that differs."""
    from iv_pipelines.packaging.build import verify_package, verify_tarball

    trusted = _trusted_key(public_key)
    report = verify_package(package, trusted) if package.is_dir() else verify_tarball(package, trusted)
    if report.ok:
        click.echo(f"{package}: OK — {report.files} files match the signed attestation")
        sys.exit(0)
    for p in report.problems:
        click.echo(f"{package}: {p}", err=True)
    click.echo(f"{package}: FAILED ({len(report.problems)} problems)", err=True)
    sys.exit(1)


@main.group()
def ingest() -> None:
    """The edge ingest service: ESP32 CSI frames (protos/csi_data.proto) over UDP and HTTP."""


@ingest.command("device")
@click.argument("device_id")
@click.option("--dac", "dac_id", default=None, help="the DAC whose capsule gets this device's CSI")
@click.option(
    "--key-hex", default=None, help="the device's HMAC key (hex); default: a new random 32-byte key"
)
def ingest_device(device_id: str, dac_id: str | None, key_hex: str | None) -> None:
    """Register DEVICE_ID (its key goes into the firmware's menuconfig)."""
    import secrets

    from iv_pipelines.edge.ingest import DeviceKeys

    try:
        key = bytes.fromhex(key_hex) if key_hex else secrets.token_bytes(32)
        DeviceKeys(_storage().layout.edge_devices_file()).add(device_id, key, dac_id)
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"registered {device_id} -> {dac_id or '(no DAC yet)'}; key {key.hex()}")


@ingest.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--udp-port", default=5566, show_default=True, type=int)
@click.option("--http-port", default=8090, show_default=True, type=int)
def ingest_serve(host: str, udp_port: int, http_port: int) -> None:
    """UDP + HTTP ingest: verify frames, store captures, forward windows to each device's capsule."""
    import asyncio
    import json
    import time

    import uvicorn

    from iv_pipelines.edge.forward import CapsuleForwarder, DetectionStream
    from iv_pipelines.edge.http import create_ingest_app
    from iv_pipelines.edge.ingest import CaptureStore, DeviceKeys, IngestService, serve_udp

    layout = _storage().layout
    keys = DeviceKeys(layout.edge_devices_file())
    if not len(keys):
        raise click.ClickException("no registered device: `iv ingest device DEVICE_ID --dac DAC_ID` first")

    def endpoint_for(device_id: str):
        dac = keys.dac_for(device_id)
        dep = layout.deployment(dac) if dac else None
        return (dep["url"], dac) if dep and dep.get("url") else None

    from iv_pipelines.deploy.canary import CanaryController
    from iv_pipelines.deploy.targets import LocalDeployer

    stream = DetectionStream()
    sub = stream.subscribe()
    canary = CanaryController(layout, LocalDeployer(layout.deployments_dir()))
    fwd = CapsuleForwarder(endpoint_for, stream, route=canary.route)
    svc = IngestService(keys, store=CaptureStore(layout.edge_captures_dir()), forward=fwd)

    async def run():
        transport, drain = await serve_udp(svc, host, udp_port)
        server = uvicorn.Server(
            uvicorn.Config(create_ingest_app(svc, stream), host=host, port=http_port, log_level="warning")
        )
        click.echo(f"ingest: UDP {host}:{udp_port}, HTTP http://{host}:{http_port} ({len(keys)} devices)")

        async def record():
            out = layout.edge_detections_file()
            out.parent.mkdir(parents=True, exist_ok=True)
            while True:
                await asyncio.sleep(0.5)
                with open(out, "a") as fh:
                    while not sub.empty():
                        fh.write(json.dumps(sub.get_nowait().to_dict() | {"received_at": time.time()}) + "\n")

        rec = asyncio.create_task(record())
        try:
            await server.serve()
        finally:
            transport.close()
            drain.cancel()
            rec.cancel()
            fwd.close()
            svc.store.close()

    asyncio.run(run())


@ingest.command("export")
@click.argument("device_id")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seconds", default=20.0, show_default=True, type=float)
@click.option(
    "--start-us", default=None, type=int, help="device time to start at (default: the newest SECONDS)"
)
def ingest_export(device_id: str, out: Path, seconds: float, start_us: int | None) -> None:
    """Write SECONDS of a device's stored frames as an esp-csi capture file, to attach to a
    DAC request as a calibration capture (`calibration: [{activity, path: OUT, format: esp-csi}]`)."""
    from iv_pipelines.edge.captures import export_capture

    try:
        n = export_capture(_storage().layout.edge_captures_dir(), device_id, out, start_us, seconds)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"wrote {n} frames of {device_id} to {out}")


@ingest.command("simulate")
@click.option("--devices", default=1, show_default=True, type=int)
@click.option("--seconds", default=10.0, show_default=True, type=float)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5566, show_default=True, type=int)
@click.option(
    "--activity", default="walk", show_default=True, type=click.Choice(["empty", "walk", "sit", "fall"])
)
def ingest_simulate(devices: int, seconds: float, host: str, port: int, activity: str) -> None:
    """Stream SIMULATED (Shadow Twin) CSI from registered devices at 100 Hz each (loopback only)."""
    import asyncio
    import ipaddress

    from iv_pipelines.edge.ingest import DeviceKeys
    from iv_pipelines.edge.simulate import send_udp, twin_stream

    if not ipaddress.ip_address(host).is_loopback:
        raise click.ClickException("simulated devices send to loopback only")
    keys = DeviceKeys(_storage().layout.edge_devices_file())
    ids = keys.ids()[:devices]
    if len(ids) < devices:
        raise click.ClickException(
            f"{len(ids)} registered device(s); register {devices} with `iv ingest device`"
        )
    streams = {
        d: twin_stream(d, keys.key_for(d), seconds, seed=i, activity=activity) for i, d in enumerate(ids)
    }
    sent = asyncio.run(send_udp(streams, host, port))
    click.echo(f"sent {sent} simulated frames from {len(ids)} device(s) to {host}:{port}")


@main.group()
def firmware() -> None:
    """Flashable ESP32 images (esptool): build, check, merge, flash."""


def _parts(parts: tuple[str, ...]) -> list[tuple[int, Path]]:
    out = []
    for p in parts:
        addr, _, path = p.partition("=")
        try:
            out.append((int(addr, 0), Path(path)))
        except ValueError:
            raise click.BadParameter(f"{p!r}: use OFFSET=FILE, e.g. 0x10000=app.bin") from None
    return out


def _show(rep) -> None:
    click.echo(f"{rep.path}: {rep.chip} image, chip id {rep.chip_id}, entry {rep.entrypoint:#010x}")
    for s in rep.segments:
        click.echo(
            f"  segment {s['addr']:#010x} {s['length']:>7} bytes  {', '.join(s['regions']) or 'NO REGION'}"
        )
    click.echo(
        f"  checksum {'valid' if rep.checksum_ok else 'INVALID'}; sha256 {rep.sha256 or '(none)'} "
        f"{'valid' if rep.sha256_ok else 'INVALID' if rep.sha256_ok is False else ''}"
    )
    for p in rep.problems:
        click.echo(f"  problem: {p}")


@firmware.command("image")
@click.argument("elf", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--chip", required=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def firmware_image(elf: Path, chip: str, out: Path) -> None:
    """ELF -> a flashable app image for CHIP, then checked."""
    from iv_pipelines.edge.firmware import FirmwareError, build_image

    try:
        _show(build_image(elf, chip, out))
    except FirmwareError as e:
        raise click.ClickException(str(e)) from e


@firmware.command("check")
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--chip", required=True)
def firmware_check(image: Path, chip: str) -> None:
    """Chip id, segments and their memory regions, checksum, SHA-256; exit 1 on a problem."""
    from iv_pipelines.edge.firmware import FirmwareError, check_image

    try:
        rep = check_image(image, chip)
    except FirmwareError as e:
        raise click.ClickException(str(e)) from e
    _show(rep)
    if not rep.ok:
        raise SystemExit(1)


@firmware.command("merge")
@click.option("--chip", required=True)
@click.option("--part", "parts", multiple=True, required=True, help="OFFSET=FILE, e.g. 0x0=bootloader.bin")
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def firmware_merge(chip: str, parts: tuple[str, ...], out: Path) -> None:
    """Bootloader + partition table + app -> one binary to flash at 0."""
    from iv_pipelines.edge.firmware import FirmwareError, merge

    try:
        merge(_parts(parts), chip, out)
    except FirmwareError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"wrote {out} ({out.stat().st_size} bytes)")


@firmware.command("flash")
@click.option("--port", required=True)
@click.option("--chip", required=True)
@click.option("--part", "parts", multiple=True, required=True, help="OFFSET=FILE")
def firmware_flash(port: str, chip: str, parts: tuple[str, ...]) -> None:
    """`esptool write-flash` on a real device; refuses an app image that does not check out."""
    from iv_pipelines.edge.firmware import FirmwareError, flash

    try:
        flash(port, chip, _parts(parts))
    except FirmwareError as e:
        raise click.ClickException(str(e)) from e


@main.group()
def gateway() -> None:
    """The white-label gateway: per-client API keys, REST and WebSocket streams for pins."""


@gateway.group("key")
def gateway_key() -> None:
    """Per-client API keys (only their hashes are stored)."""


@gateway_key.command("create")
@click.argument("client_id")
@click.option(
    "--allow-deploy", is_flag=True, help="the key may also launch its DACs' lifecycle runs in Dagster"
)
def gateway_key_create(client_id: str, allow_deploy: bool) -> None:
    from iv_pipelines.gateway.keys import ApiKeys

    try:
        key_id, key = ApiKeys(_storage().root / "gateway").create(
            client_id, scopes=("deploy",) if allow_deploy else ()
        )
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"key {key_id} for {client_id} (shown once, store it now):\n{key}")


@gateway_key.command("revoke")
@click.argument("key_id")
def gateway_key_revoke(key_id: str) -> None:
    from iv_pipelines.gateway.keys import ApiKeys

    try:
        ApiKeys(_storage().root / "gateway").revoke(key_id)
    except KeyError as e:
        raise click.ClickException(str(e.args[0])) from e
    click.echo(f"revoked {key_id}")


@gateway_key.command("list")
def gateway_key_list() -> None:
    from iv_pipelines.gateway.keys import ApiKeys

    for k in ApiKeys(_storage().root / "gateway").list():
        scopes = ",".join(k["scopes"]) or "read"
        click.echo(f"{k['key_id']}  {k['client_id']}  {'revoked' if k['revoked'] else 'active'}  {scopes}")


@gateway.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8088, show_default=True, type=int)
@click.option(
    "--demo",
    is_flag=True,
    help="also serve /demo for the sample DAC, fed live by SIMULATED twin CSI through its capsule "
    "(loopback only; a key made for it is in the page)",
)
@click.option(
    "--detections",
    default="ws://127.0.0.1:8090/v1/detections",
    show_default=True,
    help="the edge ingest service's detection feed ('' for none; --demo feeds its own)",
)
@click.option(
    "--dagster",
    "dagster_url",
    default="",
    help="the Dagster webserver's GraphQL URL (e.g. http://127.0.0.1:3000/graphql, `make ui`): "
    "keys with the deploy scope may launch lifecycle runs through it",
)
def gateway_serve(host: str, port: int, demo: bool, detections: str, dagster_url: str) -> None:
    """REST + WebSocket on HOST:PORT (themes from <storage>/themes and examples/themes); the
    web components from web/dist at /static; proofs verified against the configured ledger."""
    import asyncio
    from contextlib import asynccontextmanager

    import uvicorn

    from iv_pipelines.edge.forward import DetectionStream
    from iv_pipelines.gateway.app import create_gateway_app
    from iv_pipelines.gateway.keys import ApiKeys
    from resources.deploy import EnergyAtlasResource
    from resources.ledger import LedgerResource
    from resources.proof import ProofResource

    repo = Path(__file__).resolve().parent.parent
    storage = _storage()
    layout = storage.layout
    demo_key, demo_dac, started_capsule = None, None, False
    if demo:
        from iv_app.demo import SAMPLE_DAC
        from iv_pipelines.gateway.demo import capsule_url

        if host not in ("127.0.0.1", "localhost", "::1"):
            raise click.ClickException("--demo puts an API key in a web page: loopback only")
        cur = layout.current_package(SAMPLE_DAC)
        if cur is None:
            raise click.ClickException(f"{SAMPLE_DAC} has no package yet: run `make demo` first")
        demo_dac = SAMPLE_DAC
        url = capsule_url(layout, SAMPLE_DAC)
        if url is None:
            from iv_pipelines.deploy.targets import LocalDeployer

            click.echo(f"demo: starting {SAMPLE_DAC} {cur['version']}'s capsule locally...")
            url = (
                LocalDeployer(layout.deployments_dir() / "gateway-demo")
                .deploy(Path(cur["directory"]), SAMPLE_DAC, cur["version"])
                .url
            )
            started_capsule = True
        client = (layout.dac_request(SAMPLE_DAC) or {}).get("client_id", "acme-healthcare")
        _, demo_key = ApiKeys(layout.root / "gateway").create(
            client, scopes=("deploy",) if dagster_url else ()
        )
        click.echo(
            f"demo: http://{host}:{port}/demo (a key for {client} was created for it; capsule {url}; "
            "SIMULATED twin CSI)"
        )
    runs = None
    if dagster_url:
        from iv_pipelines.gateway.dagster_runs import DagsterRuns

        runs = DagsterRuns(dagster_url)
    stream = DetectionStream() if (detections or demo) else None
    app = create_gateway_app(
        storage.root,
        [repo / "examples" / "themes"],
        detections=stream,
        static_dir=repo / "web" / "dist" if (repo / "web" / "dist").is_dir() else None,
        demo_key=demo_key,
        ledger=LedgerResource().get(),
        trusted_key=ProofResource().trusted_key(),
        atlas=lambda: EnergyAtlasResource().open(storage.root),
        runs=runs,
        demo_simulated=demo,
        capsule_url_for=(lambda d: url if d == demo_dac else None) if demo else None,
    )

    @asynccontextmanager
    async def lifespan(_app):
        tasks = []
        if demo:
            from iv_pipelines.gateway.demo import build_scene, play

            scene = await asyncio.to_thread(build_scene, layout, demo_dac)
            tasks.append(asyncio.create_task(play(layout, demo_dac, url, stream, scene)))
        elif stream is not None:
            from iv_pipelines.edge.http import relay_detections

            tasks.append(asyncio.create_task(relay_detections(detections, stream)))
        yield
        for t in tasks:
            t.cancel()

    app.router.lifespan_context = lifespan
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        if started_capsule:
            from iv_pipelines.deploy.targets import LocalDeployer

            LocalDeployer(layout.deployments_dir() / "gateway-demo").stop(demo_dac)


@main.group()
def dac() -> None:
    """Deployed DACs: their deployment history and aliases, and evaluations on labelled captures."""


@dac.command("history")
@click.argument("dac_id")
def dac_history(dac_id: str) -> None:
    """Every deployment event of DAC_ID (deployed, canary_started, promoted, rolled_back) and
    its aliases production / candidate / previous."""
    import datetime as dt

    from iv_pipelines.deploy.canary import CanaryController, DeploymentHistory
    from iv_pipelines.deploy.targets import LocalDeployer

    layout = _storage().layout
    hist = DeploymentHistory(layout, dac_id)
    events = hist.events()
    if not events:
        raise click.ClickException(f"{dac_id} has no deployment history under {layout.deployments_dir()}")
    for e in events:
        when = dt.datetime.fromtimestamp(e["at"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{when}  {e['event']:<15} {e['version']:<10} {e.get('reason', '')}")
    a = hist.aliases()
    click.echo("aliases: " + ", ".join(f"{k}={v or '-'}" for k, v in a.items()))
    st = CanaryController(layout, LocalDeployer(layout.deployments_dir())).state(dac_id)
    if st:
        click.echo(f"canary: {st['version']} at {st['url']}, {st['share']:.0%} of windows")


@dac.command("evaluate")
@click.argument("dac_id")
@click.argument("captures", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--label",
    type=click.Choice(["empty", "walk", "sit", "fall"]),
    help="the activity of every capture given (else: the folder a capture sits in, e.g. "
    "captures/fall/, or an amplitude CSV's label column)",
)
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "esp-csi", "esp32-csi-tool", "espectre-npz", "amplitude-csv"]),
)
@click.option(
    "--rate-hz", type=float, help="packet rate of amplitude CSV captures (they carry no timestamps)"
)
@click.option(
    "--hop-s", default=1.0, show_default=True, type=click.FloatRange(0.1, 10.0), help="as /v1/predict"
)
@click.option(
    "--package",
    "package_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="a package directory to evaluate instead of DAC_ID's current one",
)
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="write the report here"
)
@click.option(
    "--record",
    is_flag=True,
    help="also record the summary in Dagster, as an observation of dac_deployment[DAC_ID] (DAGSTER_HOME)",
)
def dac_evaluate(
    dac_id: str,
    captures: tuple[Path, ...],
    label: str | None,
    fmt: str,
    rate_hz: float | None,
    hop_s: float,
    package_dir: Path | None,
    json_out: Path | None,
    record: bool,
) -> None:
    """Decide labelled CAPTURES (files, or folders searched for capture files) with DAC_ID's
    package exactly as its capsule decides (`/v1/predict`'s windows, its fall threshold and
    fall-intensity check) and print, per capture and per label, what it called each window:
    fall recall and false alarms by window and by capture, with Wilson 95 % intervals. A
    capture with the same content as one of the DAC's calibration captures is refused (it
    trained the DAC or set its threshold: no evaluation on it is held out)."""
    import hashlib
    import json

    from iv_pipelines.paths import atomic_write_text
    from iv_pipelines.runtime.evaluation import (
        CaptureError,
        Evaluation,
        capture_files,
        evaluate_capture,
        folder_label,
    )
    from iv_pipelines.runtime.predictor import Predictor

    storage = _storage()
    layout = storage.layout
    if package_dir is None:
        cur = layout.current_package(dac_id)
        if cur is None:
            raise click.ClickException(
                f"{dac_id} has no package under {layout.root}: run its lifecycle first"
            )
        package_dir = Path(cur["directory"])
    try:
        files = capture_files(list(captures))
    except CaptureError as e:
        raise click.ClickException(str(e)) from None
    if not files:
        raise click.ClickException("no capture files among " + ", ".join(map(str, captures)))
    try:
        request = storage.requests().get(dac_id)
    except KeyError:
        request = None
        click.echo(
            f"note: no stored request for {dac_id}: the captures are not checked against its calibration"
        )
    used: dict[str, str] = {}
    in_evidence: dict[str, str] = {}
    if request is not None:
        used = {
            c.sha256: f"calibration[{i}] ({c.activity})"
            for i, c in enumerate(request.calibration)
            if c.sha256
        }
        in_evidence = {c.sha256: f"evaluation[{i}]" for i, c in enumerate(request.evaluation) if c.sha256}
    predictor = Predictor(package_dir)
    cfg = predictor.config
    if cfg.dac_id != dac_id:
        raise click.ClickException(f"{package_dir} is a package of {cfg.dac_id}, not of {dac_id}")
    ev = Evaluation(cfg.dac_id, cfg.version, cfg.fall_threshold, cfg.validated_on, list(cfg.classes))
    for f in files:
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        if digest in used:
            raise click.ClickException(
                f"{f}: the same capture as {dac_id}'s {used[digest]}, which trained it or set its fall "
                "threshold: an evaluation on it is not held out; leave it out"
            )
        if digest in in_evidence:
            click.echo(
                f"note: {f} is {dac_id}'s {in_evidence[digest]}: already in its client_device evidence"
            )
        lab = label or folder_label(f, ev.classes)
        try:
            ev.captures.append(evaluate_capture(predictor, f, lab, fmt, rate_hz, hop_s))
        except CaptureError as e:
            raise click.ClickException(str(e)) from None
    click.echo(
        f"{cfg.dac_id} {cfg.version}: fall threshold {cfg.fall_threshold:.3f}, fall-intensity check "
        f"{'on' if cfg.intensity_check else 'off'}; its own evidence: {cfg.validated_on}"
    )
    click.echo("data: the captures given here, labelled by you (their origin is yours to state)")
    width = max(len(str(c.path)) for c in ev.captures)
    head = "  ".join(f"{k:>5}" for k in ev.classes)
    click.echo(f"{'capture':<{width}}  {'label':<6} {'seconds':>7} {'windows':>7}  {head}")
    for c in ev.captures:
        if c.refused:
            click.echo(f"{c.path:<{width}}  {c.label:<6} {c.seconds:>7.1f} {0:>7}  refused: {c.refused}")
            continue
        counts = "  ".join(f"{c.decisions.count(k):>5}" for k in ev.classes)
        click.echo(f"{c.path:<{width}}  {c.label:<6} {c.seconds:>7.1f} {len(c.decisions):>7}  {counts}")
    s = ev.summary()
    for act, row in s.get("per_label", {}).items():
        what = "fall recall" if act == "fall" else "called fall"
        if "called_fall" in row:
            lo, hi = row["called_fall_interval95"]
            line = (
                f"{act}: {what} {row['called_fall']:.3f} ({row['called']['fall']} of {row['windows']} windows, "
                f"95 % {lo:.2f}-{hi:.2f})"
            )
        else:
            line = f"{act}: no window"
        if "captures" in row:
            clo, chi = row["captures_interval95"]
            line += (
                f"; {'detected' if act == 'fall' else 'with a false alarm'}: "
                f"{row['captures_with_a_window_called_fall']} of {row['captures']} captures ({clo:.2f}-{chi:.2f})"
                + (f", {row['captures_refused']} refused by the capsule" if row["captures_refused"] else "")
            )
        click.echo(line)
    if s["refused_captures"]:
        click.echo(
            f"{s['refused_captures']} capture(s) refused by the capsule (no window; listed above): "
            "counted as captures on which no fall was called"
        )
    if "accuracy" in s:
        click.echo(f"accuracy {s['accuracy']:.3f} over {s['windows']} windows of {s['captures']} captures")
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(ev.to_dict(), indent=2) + "\n")
        click.echo(f"report: {json_out}")
    if record:
        import dagster as dg

        md = {
            "evaluation": "labelled captures given to `iv dac evaluate` (their origin is the caller's to state)",
            "package_version": cfg.version,
            "fall_threshold": cfg.fall_threshold,
            "captures": s["captures"],
            "captures_refused": s["refused_captures"],
            "windows": s["windows"],
            **({"accuracy": s["accuracy"]} if "accuracy" in s else {}),
            **{k: s[k] for k in ("fall_recall", "fall_false_alarm_rate") if k in s},
            **{
                f"{k}_{end}": s[f"{k}_interval95"][i]
                for k in ("fall_recall", "fall_false_alarm_rate")
                if f"{k}_interval95" in s
                for i, end in enumerate(("low95", "high95"))
            },
            "per_label": dg.MetadataValue.json(s.get("per_label", {})),
        }
        instance = _instance()
        instance.report_runless_asset_event(
            dg.AssetObservation("dac_deployment", partition=dac_id, metadata=md)
        )
        click.echo(
            f"recorded in Dagster: an observation of dac_deployment[{dac_id}] ({instance.root_directory})"
        )


@main.group()
def feedback() -> None:
    """True labels for windows a DAC's capsule logged (its inference log)."""


@feedback.command("add")
@click.argument("dac_id")
@click.argument("labels", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--source", default="bulk", show_default=True, help="who gave the labels (when a row does not say)"
)
def feedback_add(dac_id: str, labels: Path, source: str) -> None:
    """Add LABELS (CSV with a header `window_id,label[,source]`, or JSON lines with those keys)
    to DAC_ID's feedback: all rows or none (the first bad row is named)."""
    import csv
    import json

    from iv_pipelines.runtime.inference_log import FeedbackError, InferenceLog
    from iv_pipelines.runtime.predictor import RuntimeConfig

    layout = _storage().layout
    cur = layout.current_package(dac_id)
    if cur is None:
        raise click.ClickException(f"{dac_id} has no package: it has no capsule and no inference log")
    log_dir = layout.inference_log_dir(dac_id)
    if not log_dir.is_dir():
        raise click.ClickException(f"{dac_id} has no inference log at {log_dir}: was it deployed with one?")
    text = labels.read_text(errors="replace")
    rows: list[tuple[str, str, str]] = []
    if labels.suffix in (".jsonl", ".ndjson"):
        for i, ln in enumerate(text.splitlines(), 1):
            if not ln.strip():
                continue
            try:
                d = json.loads(ln)
                rows.append((str(d["window_id"]), str(d["label"]), str(d.get("source", source))))
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise click.ClickException(
                    f"{labels}:{i}: not a JSON object with window_id and label ({e}); nothing was stored"
                ) from None
    else:
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or not {"window_id", "label"} <= set(reader.fieldnames):
            raise click.ClickException(f"{labels}: the CSV needs a header with window_id and label")
        rows = [(r["window_id"] or "", r["label"] or "", r.get("source") or source) for r in reader]
    if not rows:
        raise click.ClickException(f"{labels}: no labels")
    classes = list(RuntimeConfig.load(Path(cur["directory"])).classes)
    try:
        stored = InferenceLog(log_dir, classes).add_feedback_many(rows)
    except FeedbackError as e:
        raise click.ClickException(f"{labels}: {e}; nothing was stored") from None
    wrong = sum(r["label"] != r["predicted"] for r in stored)
    click.echo(f"stored {len(stored)} labels for {dac_id} ({wrong} disagree with what the capsule decided)")


@main.group()
def pools() -> None:
    """The concurrency pools of the code location's steps (gpu, cpu, atlas, ledger)."""


@pools.command("init")
@click.option(
    "--limit", type=int, default=None, help="slots per pool (default: the instance's default_limit, else 1)"
)
def pools_init(limit: int | None) -> None:
    """Set every pool's limit on the instance of $DAGSTER_HOME, unless set already. Run it once
    after `helm install` (PostgreSQL storage needs it: iv_app/pools.py says why)."""
    import dagster as dg

    from iv_app.definitions import defs
    from iv_app.pools import init_pool_limits

    if limit is not None and limit < 1:
        raise click.ClickException(f"--limit {limit}: a pool needs at least 1 slot")
    with dg.DagsterInstance.get() as instance:
        for pool, n in init_pool_limits(instance, defs, limit).items():
            click.echo(f"{pool}: {n} slot(s)")


@main.group()
def k8s() -> None:
    """Kubernetes settings of the code location's steps, from what they measured (prod)."""


@k8s.command("step-sizes")
@click.option("--write", "write_file", is_flag=True, help="save them where the prod executor reads them")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="file to write (default: $IV_STEP_RESOURCES, else deploy/step_resources.json)",
)
@click.option("--runs", type=int, default=200, show_default=True, help="newest measurements per step")
@click.option("--source", default=None, help="what the measured runs were (recorded in the file)")
def k8s_step_sizes(write_file: bool, out: Path | None, runs: int, source: str | None) -> None:
    """Each step's CPU and memory requests and limits, from the cores and peak memory its
    metered runs recorded on the instance of $DAGSTER_HOME (iv_pipelines/deploy/step_sizes.py
    gives the rule)."""
    import os

    import dagster as dg

    from defs.common import step_measurements
    from iv_app.definitions import defs
    from iv_pipelines.deploy import step_sizes

    if runs < 1:
        raise click.ClickException(f"--runs {runs}: at least 1")
    names = sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())
    with dg.DagsterInstance.get() as instance:
        sizes = step_sizes.sizes_from(step_measurements(instance, names, runs))
        home = instance.root_directory
    if not sizes:
        raise click.ClickException(
            "no step on this instance has recorded its cores and peak memory yet: run a lifecycle "
            "(`make demo`, or a DAC from the UI) first"
        )
    click.echo(step_sizes.table_md(sizes))
    if write_file:
        path = out or Path(os.environ.get("IV_STEP_RESOURCES") or step_sizes.DEFAULT_FILE)
        n = max(s["runs"] for s in sizes.values())
        what = f"{len(sizes)} steps, up to {n} runs each, on the Dagster instance {home}"
        step_sizes.write(path, sizes, f"{source}: {what}" if source else what)
        click.echo(f"wrote {path}")


@main.command("docs")
@click.option("--check", is_flag=True, help="fail if a generated page is out of date instead of writing it")
def docs_cmd(check: bool) -> None:
    """Regenerate docs/operations.md's tables (from the code location) and
    docs/measurements.md (from bench/results/, written by bench/record.py)."""
    from iv_app import docs

    if check:
        stale = [str(p) for p, text in docs.render().items() if not p.exists() or p.read_text() != text]
        if stale:
            raise click.ClickException(f"out of date: {', '.join(stale)}; run `iv docs`")
        click.echo("docs up to date")
        return
    changed = docs.write()
    click.echo("\n".join(f"wrote {p}" for p in changed) or "docs up to date")


@main.command()
@click.option(
    "--request-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="request to run (default: the shipped fall-detection sample)",
)
@click.option("--keep-running", is_flag=True, help="leave the deployed local capsule running")
def demo(request_file: Path | None, keep_running: bool) -> None:
    """Register the sample request and materialize every lifecycle asset for it."""
    from iv_app.demo import run_demo

    sys.exit(run_demo(request_file, keep_running=keep_running))


if __name__ == "__main__":  # pragma: no cover
    main()
