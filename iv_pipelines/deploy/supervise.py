"""`python -m iv_pipelines.deploy.supervise --package DIR --port P --state FILE --log FILE`

A minimal supervisor for one local capsule: runs the runtime as a child process, restarts it
when it exits (crash, kill, OOM) with exponential backoff (0.5 s doubling to 8 s), gives up
after `--max-restarts` restarts within 5 minutes, and records its state (its own pid, the
capsule's pid, port, restarts, last exit code) in a JSON file after every change. SIGTERM or
SIGINT stops the capsule (SIGTERM, then SIGKILL after 5 s) and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

WINDOW_S = 300.0


def _write(path: Path, doc: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


def capsule_command(package: str, port: int, threads: int, host: str = "127.0.0.1") -> tuple[list[str], dict]:
    """(argv, environment) that serve `package` the way a capsule runs in its container: the
    package's own code (src/), not the factory's — `-P` keeps the working directory off
    sys.path and PYTHONPATH puts the package's sources first; no bytecode is written into it."""
    pkg = os.path.abspath(package)
    argv = [sys.executable, "-P", "-m", "iv_pipelines.runtime", "--package", pkg]
    argv += ["--host", host, "--port", str(port), "--threads", str(threads)]
    env = os.environ | {
        "OMP_NUM_THREADS": str(threads),
        "PYTHONPATH": os.path.join(pkg, "src"),
        "PYTHONDONTWRITEBYTECODE": "1",
        # a deployed capsule serves only an attested package (an operator may say "0")
        "IV_CAPSULE_REQUIRE_ATTESTATION": os.environ.get("IV_CAPSULE_REQUIRE_ATTESTATION", "1"),
    }
    return argv, env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--package", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-restarts", type=int, default=10)
    a = ap.parse_args(argv)
    stopping = False
    child: subprocess.Popen | None = None

    def stop(_sig, _frm):
        nonlocal stopping
        stopping = True
        if child and child.poll() is None:
            child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    cmd, env = capsule_command(a.package, a.port, a.threads)
    pkg = os.path.abspath(a.package)
    state = {
        "supervisor_pid": os.getpid(),
        "capsule_pid": None,
        "port": a.port,
        "package": a.package,
        "restarts": 0,
        "last_exit_code": None,
        "status": "starting",
        "started_at": time.time(),
    }
    restarts: list[float] = []
    backoff = 0.5
    with open(a.log, "ab", buffering=0) as log:
        while not stopping:
            child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=pkg)
            state |= {"capsule_pid": child.pid, "status": "running"}
            _write(a.state, state)
            t_start = time.monotonic()
            code = child.wait()
            if stopping:
                break
            if time.monotonic() - t_start > 30:
                backoff = 0.5  # it ran fine for a while: a fresh failure
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < WINDOW_S] + [now]
            state |= {"last_exit_code": code, "restarts": state["restarts"] + 1, "status": "restarting"}
            log.write(
                f"[supervisor] capsule exited with {code}; restart {state['restarts']} in {backoff:.1f} s\n".encode()
            )
            if len(restarts) > a.max_restarts:
                state["status"] = "failed"
                _write(a.state, state)
                log.write(b"[supervisor] too many restarts; giving up\n")
                return 1
            _write(a.state, state)
            time.sleep(backoff)
            backoff = min(backoff * 2, 8.0)
        if child and child.poll() is None:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        state |= {"status": "stopped", "capsule_pid": None}
        _write(a.state, state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
