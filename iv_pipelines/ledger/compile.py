"""Compile the Vyper contracts into committed JSON artifacts (abi, bytecode, compiler version,
source digest). Run `python -m iv_pipelines.ledger.compile` after editing a `.vy` file;
`tests/test_ledger.py` fails when an artifact is out of date."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

CONTRACTS = Path(__file__).resolve().parent / "contracts"
NAMES = ("UtidRegistry", "Groth16Verifier")


def compile_contract(name: str) -> dict:
    import vyper

    source = (CONTRACTS / f"{name}.vy").read_text()
    out = vyper.compile_code(source, output_formats=["abi", "bytecode"])
    return {
        "contract": name,
        "compiler": f"vyper {vyper.__version__}",
        "source_sha256": hashlib.sha256(source.encode()).hexdigest(),
        "abi": out["abi"],
        "bytecode": out["bytecode"],
    }


def artifact_path(name: str) -> Path:
    return CONTRACTS / f"{name}.json"


def load_artifact(name: str) -> dict:
    return json.loads(artifact_path(name).read_text())


def main() -> int:
    for name in NAMES:
        artifact_path(name).write_text(json.dumps(compile_contract(name), indent=1) + "\n")
        print(f"wrote {artifact_path(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
