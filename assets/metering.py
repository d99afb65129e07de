"""`@metered`: meter an asset's compute (CPU time x power model, RAPL, NVML) and log the
step's energy as an AssetObservation, which `energy_signature` reads back per partition.

Put it under `@dg.asset`; it keeps the function's signature (Dagster reads parameters through
`__wrapped__`) and works for functions that return and for generators that yield.
"""

import functools
import inspect

import dagster as dg

from iv_pipelines.energy.meter import Meter

ENERGY_TAG = "iv/metered"


def _observe(context, meter: Meter) -> None:
    step = meter.stop()
    pk = context.partition_key if context.has_partition_key else None
    context.log_event(
        dg.AssetObservation(
            asset_key=context.asset_key,
            partition=pk,
            metadata=step.metadata(),
            tags={ENERGY_TAG: "step"},
        )
    )
    context.log.debug(
        f"metered {context.asset_key.to_user_string()}: {step.energy_j:.2f} J, {step.cpu_seconds:.2f} CPU s"
    )


def metered(fn):
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(context, *args, **kwargs):
            m = Meter().start()
            yield from fn(context, *args, **kwargs)
            _observe(context, m)

        return gen

    @functools.wraps(fn)
    def wrapper(context, *args, **kwargs):
        m = Meter().start()
        out = fn(context, *args, **kwargs)
        _observe(context, m)
        return out

    return wrapper
