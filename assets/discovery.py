"""Discovery phase (seed steps 1-8): request intake, twin context, hypotheses, validation."""

import json

import dagster as dg

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
