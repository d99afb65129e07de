"""`python -m iv_pipelines.runtime --package DIR [--host H] [--port P]`: serve a DAC package."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", type=Path, required=True, help="unpacked DAC package directory")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = ap.parse_args(argv)
    if not (args.package / "runtime.json").is_file():
        print(f"error: {args.package} is not a DAC package (no runtime.json)", file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    import uvicorn

    from iv_pipelines.runtime.app import create_app

    uvicorn.run(
        create_app(args.package), host=args.host, port=args.port, log_level="warning", access_log=False
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
