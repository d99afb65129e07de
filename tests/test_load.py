"""The code location must load fast: no heavy library may be imported at load time."""

import subprocess
import sys

HEAVY = ("torch", "triton", "transformers", "peft", "web3", "sentence_transformers")


def test_definitions_import_pulls_no_heavy_library():
    code = (
        "import sys; from iv_app.definitions import defs; defs.get_repository_def();"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported at load: {out.stdout.strip()}"
