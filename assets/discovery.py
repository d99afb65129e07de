"""Discovery phase (seed steps 1-8): request intake, twin context, hypotheses, validation."""

import json

import dagster as dg

from assets.metering import metered
from assets.partitions import dac_partitions
from iv_pipelines.discovery.hypothesis import Hypothesis
from iv_pipelines.errors import InputError
from iv_pipelines.paths import atomic_write_text
from iv_pipelines.request import DacRequest
from resources.discovery import AceMemoryResource, HypothesisGeneratorResource
from resources.storage import FactoryStorage

OWNERS = ["team:dac-factory"]


@dg.asset(
    partitions_def=dac_partitions,
    group_name="discovery",
    owners=OWNERS,
    kinds={"python", "json"},
    description="The client's request for this DAC, loaded from the request store and validated.",
)
@metered
def dac_request(context: dg.AssetExecutionContext, storage: FactoryStorage) -> dg.Output[DacRequest]:
    dac_id = context.partition_key
    try:
        request = storage.requests().get(dac_id)
    except KeyError as err:
        raise dg.Failure(description=str(err.args[0])) from None
    except InputError as err:  # a stored file edited by hand into something invalid
        raise dg.Failure(description=str(err)) from None
    out = storage.dac_dir(dac_id) / "request.json"
    atomic_write_text(out, request.model_dump_json(indent=2) + "\n")
    context.log.info(f"validated request {dac_id} for client {request.client_id} -> {out}")
    return dg.Output(
        request,
        metadata={
            "request_path": dg.MetadataValue.path(str(out)),
            "client_id": request.client_id,
            "domain": request.domain,
            "target": request.target,
            "request_digest": request.digest(),
            "text": dg.MetadataValue.md(f"> {request.text}"),
        },
    )


class HypothesesConfig(dg.Config):
    n_initial: int = 8
    seed: int = 0


@dg.asset(
    partitions_def=dac_partitions,
    group_name="discovery",
    owners=OWNERS,
    kinds={"python"},
    description=(
        "Initial structured hypotheses for the request (task, approach, data, target metric, "
        "risk), composed by the generator backend with the domain's ACE playbook as guidance."
    ),
)
@metered
def hypotheses(
    context: dg.AssetExecutionContext,
    config: HypothesesConfig,
    dac_request: DacRequest,
    generator: HypothesisGeneratorResource,
    ace: AceMemoryResource,
    storage: FactoryStorage,
) -> dg.Output[list[Hypothesis]]:
    from iv_pipelines.discovery.generator import resolve_domain

    domain = resolve_domain(dac_request)
    guidance = ace.get().guidance(domain.name, exclude_dac=dac_request.dac_id)
    gen = generator.get()
    hyps = gen.propose(dac_request, config.n_initial, config.seed, guidance)
    out = storage.dac_dir(dac_request.dac_id) / "hypotheses.json"
    atomic_write_text(out, json.dumps([h.to_dict() for h in hyps], indent=2) + "\n")
    context.log.info(f"{gen.name} generator proposed {len(hyps)} hypotheses for {domain.name}")
    table = "| id | task | approach |\n|---|---|---|\n" + "\n".join(
        f"| {h.id} | {h.task} | {h.approach} |" for h in hyps
    )
    return dg.Output(
        hyps,
        metadata={
            "hypotheses_path": dg.MetadataValue.path(str(out)),
            "count": len(hyps),
            "domain": domain.name,
            "generator": gen.name,
            "playbook_guidance": len(guidance),
            "candidates": dg.MetadataValue.md(table),
        },
    )


def load_calibrations(request: DacRequest, storage: FactoryStorage, log) -> list:
    """The request's stored calibration captures as (Calibration, origin) pairs."""
    from iv_pipelines.sensing.calibration import Calibration
    from iv_pipelines.sensing.formats import CsiFormatError, read_capture

    store = storage.requests()
    out = []
    for i, spec in enumerate(request.calibration):
        try:
            cap, rep, timed = read_capture(store.calibration_file(spec), spec.format, spec.rate_hz)
        except (CsiFormatError, KeyError) as e:
            raise dg.Failure(description=f"calibration[{i}] ({spec.activity}): {e}") from e
        name = f"{spec.activity}-{i}" + (f" ({spec.device})" if spec.device else "")
        log(
            f"calibration[{i}]: {spec.activity}, {len(cap.csi)} packets over {cap.t_s[-1] - cap.t_s[0]:.1f} s, {spec.origin}; {rep.summary()}"
        )
        out.append((Calibration(spec.activity, cap, timed, name), spec.origin))
    return out


def _fit_table(fit) -> str:
    rows = [
        f"| {k} | {v:.4g} | {fit.sources.get(k, '')} |"
        for k, v in fit.device.to_dict().items()
        if k != "name"
    ]
    if fit.walk_speed_ms:
        rows.append(f"| resident walk speed (m/s) | {fit.walk_speed_ms:.2f} | fitted (walk capture) |")
    stats = [f"| {k} | {v:.4g} | {fit.achieved.get(k, float('nan')):.4g} |" for k, v in fit.targets.items()]
    return (
        "| parameter | value | source |\n|---|---|---|\n"
        + "\n".join(rows)
        + "\n\n| statistic | real capture | fitted twin |\n|---|---|---|\n"
        + "\n".join(stats)
    )


class TwinConfig(dg.Config):
    episodes_per_activity: int = 2
    seed: int = 0


@dg.asset(
    partitions_def=dac_partitions,
    group_name="discovery",
    owners=OWNERS,
    kinds={"numpy", "csv"},
    description=(
        "Shadow Twin of the client's environment: the room from the request, the client's device "
        "fitted to the request's calibration captures (rate, drops, gain, noise floor, motion "
        "noise, body strength, walking speed), simulated ESP32 CSI episodes (empty, walk, sit, "
        "fall) in the esp-csi line format, context facts that ground the hypotheses, and "
        "amplitude/Doppler plots per activity."
    ),
)
@metered
def shadow_twin_context(
    context: dg.AssetExecutionContext, config: TwinConfig, dac_request: DacRequest, storage: FactoryStorage
):
    from iv_pipelines.discovery.generator import resolve_domain
    from iv_pipelines.sensing.formats import write_esp_csi_lines
    from iv_pipelines.sensing.pipeline import spectrogram_png, twin_context

    domain = resolve_domain(dac_request).name
    calibrations = load_calibrations(dac_request, storage, context.log.info)
    twin = twin_context(dac_request, domain, config.episodes_per_activity, config.seed, calibrations)
    out = storage.dac_dir(dac_request.dac_id) / "twin"
    metadata = {
        "simulator": twin.simulator,
        "domain": domain,
        "dataset_digest": twin.dataset_digest,
        "resident": twin.resident,
        "facts": dg.MetadataValue.md("\n".join(f"- {f}" for f in twin.facts) or "(no twin for this domain)"),
    }
    if twin.room is not None:
        lines = []
        for e in twin.episodes:
            lines += [f"# activity={e.activity} seed={e.seed}"] + write_esp_csi_lines(e.csi, e.t_s)[1:]
        from iv_pipelines.sensing.formats import ESP_CSI_HEADER

        atomic_write_text(out / "episodes.csv", ESP_CSI_HEADER + "\n" + "\n".join(lines) + "\n")
        from dataclasses import asdict

        atomic_write_text(out / "room.json", json.dumps(asdict(twin.room), indent=2) + "\n")
        png = spectrogram_png(twin.episodes, out / "activities.png")
        cal = twin.calibration
        atomic_write_text(
            out / "calibration.json", json.dumps(cal.to_dict(), indent=2, sort_keys=True) + "\n"
        )
        if cal.fit:
            metadata |= {
                "device_fit": dg.MetadataValue.md(_fit_table(cal.fit)),
                "calibration_captures": dg.MetadataValue.json([c.summary() for c in cal.captures]),
                "calibration_warnings": dg.MetadataValue.json(cal.warnings),
            }
            for w in cal.warnings:
                context.log.warning(f"calibration: {w}")
        else:
            metadata["device_fit"] = "no calibration captures in the request: device prior"
        metadata |= {
            "episodes_path": dg.MetadataValue.path(str(out / "episodes.csv")),
            "room": dg.MetadataValue.json(
                {
                    "width_m": twin.room.width_m,
                    "depth_m": twin.room.depth_m,
                    "height_m": twin.room.height_m,
                    "ap": twin.room.ap,
                    "esp": twin.room.esp,
                    "walls": twin.room.wall_material,
                }
            ),
            "episodes": len(twin.episodes),
            "activity_plot": dg.MetadataValue.path(str(png)),
        }
        context.log.info(f"twin: {len(twin.episodes)} episodes in room {twin.room.digest()} -> {out}")
    else:
        context.log.info(
            f"no Shadow Twin for domain {domain}: context facts come from the knowledge base only"
        )
    twin.episodes = []  # the snapshot on disk holds them; keep the stored value small
    return dg.Output(twin, metadata=metadata)
