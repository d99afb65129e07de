"""Generate the code of protos/*.proto: the Python modules (grpcio-tools' protoc) into
iv_pipelines/edge/ and the nanopb C files into the firmware's hardware-independent core.

    .venv/bin/python scripts/gen_protos.py           # regenerate
    .venv/bin/python scripts/gen_protos.py --check   # exit 1 naming every stale generated file

The generated files are committed (the firmware builds without Python; the package imports
without protoc); tests/test_edge_protos.py runs --check.
"""

from __future__ import annotations

import filecmp
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTOS = REPO / "protos"
PY_OUT = REPO / "iv_pipelines" / "edge"
C_OUT = REPO / "firmware" / "esp32_csi" / "components" / "csi_core"


def generate(py_out: Path, c_out: Path) -> list[Path]:
    from grpc_tools import protoc

    py_out.mkdir(parents=True, exist_ok=True)
    c_out.mkdir(parents=True, exist_ok=True)
    made = []
    for proto in sorted(PROTOS.glob("*.proto")):
        rc = protoc.main(
            ["protoc", f"-I{PROTOS}", f"--python_out={py_out}", f"--pyi_out={py_out}", str(proto)]
        )
        if rc != 0:
            raise SystemExit(f"protoc failed on {proto.name} (exit {rc})")
        made += [py_out / f"{proto.stem}_pb2.py", py_out / f"{proto.stem}_pb2.pyi"]
        # nanopb reads <name>.options beside the .proto
        subprocess.run(
            [
                sys.executable,
                "-m",
                "nanopb.generator.nanopb_generator",
                "-q",
                "-I",
                str(PROTOS),
                "-D",
                str(c_out),
                proto.name,
            ],
            cwd=PROTOS,
            check=True,
        )
        made += [c_out / f"{proto.stem}.pb.c", c_out / f"{proto.stem}.pb.h"]
    return made


def main(argv: list[str]) -> int:
    if "--check" not in argv:
        for p in generate(PY_OUT, C_OUT):
            print(f"wrote {p.relative_to(REPO)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp) / "py", Path(tmp) / "c")
        stale = []
        for f in fresh:
            committed = (PY_OUT if f.parent.name == "py" else C_OUT) / f.name
            if not committed.exists() or not filecmp.cmp(f, committed, shallow=False):
                stale.append(str(committed.relative_to(REPO)))
    if stale:
        print(f"stale generated files (run scripts/gen_protos.py): {', '.join(stale)}")
        return 1
    print("generated files up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
