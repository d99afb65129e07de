"""Capsule telemetry analytics with polars: the JSON lines `dac_health` appends (one per
capsule check: service, ts_ms, cpu_seconds, wall_seconds), read tolerantly and only as far
as each question needs.

- `usage`: CPU and wall seconds per service since a time (cost recommendations);
- `daily_totals`: the same for one day, with every malformed line named by file:line
  (the daily `energy_history` partition);
- `cost_anomalies`: the samples whose CPU rate jumps over k x the service's median of its
  previous samples, reading only the bytes after a cursor plus a bounded look-back window
  (the `cost_anomaly_sensor`: a tick never re-reads the whole history).

A line that is not JSON, or lacks a field, or has a field of the wrong type or a negative
number of seconds is a *problem*: skipped, and named. Plain Python + polars; nothing above.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import polars as pl

FIELDS = ("service", "ts_ms", "cpu_seconds", "wall_seconds")
# the unit separator never occurs in JSON text (control characters must be escaped there),
# so each physical line becomes exactly one string cell
_LINE_SEP = "\x1f"


def _lines(source: Path | bytes) -> pl.LazyFrame:
    """One row per non-empty line: `n` (1-based line number within `source`) and `line`."""
    opts = dict(
        has_header=False,
        separator=_LINE_SEP,
        quote_char=None,
        new_columns=["line"],
        schema={"line": pl.String},
    )
    if isinstance(source, bytes):
        lf = pl.read_csv(io.BytesIO(source), **opts).lazy() if source.strip() else _empty_lines()
    else:
        lf = pl.scan_csv(source, **opts) if Path(source).stat().st_size else _empty_lines()
    return lf.with_row_index("n", 1).filter(pl.col("line").str.strip_chars() != "")


def _empty_lines() -> pl.LazyFrame:
    return pl.LazyFrame(schema={"line": pl.String})


def parse(source: Path | bytes) -> pl.LazyFrame:
    """Typed samples with an `ok` flag: n, service, ts_ms, cpu_seconds, wall_seconds, ok."""
    field = lambda k: pl.col("line").str.json_path_match(f"$.{k}")  # noqa: E731
    return (
        _lines(source)
        .with_columns(
            service=field("service"),
            ts_ms=field("ts_ms").cast(pl.Int64, strict=False),
            cpu_seconds=field("cpu_seconds").cast(pl.Float64, strict=False),
            wall_seconds=field("wall_seconds").cast(pl.Float64, strict=False),
        )
        .with_columns(
            ok=pl.all_horizontal(pl.col(*FIELDS).is_not_null())
            & (pl.col("cpu_seconds") >= 0)
            & (pl.col("wall_seconds") >= 0)
        )
        .drop("line")
    )


def _totals(samples: pl.LazyFrame) -> dict[str, dict]:
    rows = (
        samples.group_by("service")
        .agg(
            pl.col("cpu_seconds").sum(),
            pl.col("wall_seconds").sum(),
            pl.len().alias("samples"),
        )
        .sort("service")
        .collect()
    )
    return {
        r["service"]: {
            "cpu_seconds": float(r["cpu_seconds"]),
            "wall_seconds": float(r["wall_seconds"]),
            "samples": int(r["samples"]),
        }
        for r in rows.iter_rows(named=True)
    }


def usage(path: Path, since_ms: int) -> dict[str, dict]:
    """Per service: CPU seconds, wall seconds covered and samples since `since_ms`
    (malformed lines skipped). {} when there is no telemetry yet."""
    path = Path(path)
    if not path.is_file():
        return {}
    return _totals(parse(path).filter(pl.col("ok") & (pl.col("ts_ms") >= since_ms)))


def daily_totals(paths: list[Path], day_start_ms: int, day_ms: int) -> tuple[dict[str, dict], list[str]]:
    """Per service, the day's totals over every telemetry file, and the malformed lines of
    those files (`name:line: ...`)."""
    frames, problems = [], []
    for f in paths:
        samples = parse(f).collect()
        bad = samples.filter(~pl.col("ok"))
        problems += [
            f"{Path(f).name}:{n}: not a telemetry sample (needs {', '.join(FIELDS)}; seconds >= 0)"
            for n in bad["n"].to_list()
        ]
        frames.append(samples.filter(pl.col("ok")).lazy())
    if not frames:
        return {}, problems
    day = pl.concat(frames).filter(
        pl.col("ts_ms").is_between(day_start_ms, day_start_ms + day_ms, closed="left")
    )
    return _totals(day), problems


@dataclass(frozen=True)
class CostAnomaly:
    service: str
    ts_ms: int
    rate: float  # cores: cpu_seconds / wall_seconds of the sample
    median: float  # of the service's previous samples in the window

    @property
    def reason(self) -> str:
        return f"cost anomaly: {self.rate:.2f} cores vs median {self.median:.2f}"


def cost_anomalies(
    path: Path,
    offset: int,
    *,
    jump: float,
    min_rate: float,
    min_samples: int,
    history: int,
    max_bytes: int = 4 << 20,
    look_back_bytes: int = 2 << 20,
) -> tuple[list[CostAnomaly], int]:
    """Samples after byte `offset` whose CPU rate exceeds `jump` x the median of the service's
    previous `history` samples (at least `min_samples` of them) and `min_rate` cores; and the
    byte offset to resume from (the end of the last whole line read).

    Reads at most `max_bytes` new bytes and `look_back_bytes` before `offset` (for the
    medians), never the whole file. A file shorter than `offset` was rotated: start over."""
    path = Path(path)
    size = path.stat().st_size if path.is_file() else 0
    if offset > size:
        offset = 0
    if offset >= size:
        return [], offset
    start = max(0, offset - look_back_bytes)
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(offset - start + max_bytes)
    before, new = data[: offset - start], data[offset - start :]
    if start > 0:  # the look-back window starts mid-line: drop that partial line
        before = before[before.find(b"\n") + 1 :] if b"\n" in before else b""
    cut = new.rfind(b"\n") + 1  # whole lines only: a line still being written waits a tick
    if cut == 0:
        # no newline: a line still being written, or one longer than max_bytes (skipped whole)
        return [], offset + (len(new) if len(new) >= max_bytes else 0)
    new = new[:cut]
    first_new = before.count(b"\n") + 1
    rate = pl.col("cpu_seconds") / pl.col("wall_seconds")
    rows = (
        parse(before + new)
        .filter(pl.col("ok") & (pl.col("wall_seconds") > 0))
        .sort("n")
        .with_columns(rate=rate)
        .with_columns(
            median=pl.col("rate")
            .shift(1)
            .rolling_median(window_size=history, min_samples=min_samples)
            .over("service")
        )
        .filter(
            (pl.col("n") >= first_new)
            & pl.col("median").is_not_null()
            & (pl.col("rate") > jump * pl.max_horizontal(pl.col("median"), pl.lit(1e-6)))
            & (pl.col("rate") > min_rate)
        )
        .collect()
    )
    found = [
        CostAnomaly(r["service"], int(r["ts_ms"]), float(r["rate"]), float(r["median"]))
        for r in rows.iter_rows(named=True)
    ]
    return found, offset + cut
