"""Discovery phase (seed steps 1-8): request intake, twin context, hypotheses, validation."""


import dagster as dg

from assets.partitions import dac_partitions
from iv_pipelines.errors import InputError
from iv_pipelines.paths import atomic_write_text
from iv_pipelines.request import DacRequest
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
