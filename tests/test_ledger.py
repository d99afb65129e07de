"""UTID registry: compiled artifact, embedded chain (idempotency, persistence, concurrency,
reverts), RPC backend against a local anvil node."""

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iv_pipelines.ledger.chain import EmbeddedLedger, LedgerError, RpcLedger, utid_for

REPO = Path(__file__).resolve().parent.parent
ANVIL = REPO / "tools" / "node_modules" / ".bin" / "anvil"
# anvil's first well-known development account (public test key, funded only on dev chains)
ANVIL_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def d(i) -> bytes:
    return hashlib.sha256(str(i).encode()).digest()


def test_committed_artifact_matches_the_vyper_source():
    from iv_pipelines.ledger.compile import compile_contract, load_artifact

    fresh, committed = compile_contract("UtidRegistry"), load_artifact("UtidRegistry")
    assert fresh == committed, "run `python -m iv_pipelines.ledger.compile` and commit the artifact"


def test_embedded_register_is_idempotent_by_digest_and_survives_restart(tmp_path):
    led = EmbeddedLedger(tmp_path)
    a = led.register("acme", d(1))
    assert a.created and a.utid == utid_for("acme", d(1)) and a.gas_used > 0 and a.tx_hash
    again = led.register("acme", d(1))
    assert not again.created and again.utid == a.utid and again.block_number == a.block_number
    events = led.receipt_events(a.tx_hash, "Registered")
    assert events == [
        {"utid": a.utid, "digest": d(1), "registrant": events[0]["registrant"], "dac_id": "acme"}
    ]
    b = led.register("acme", d(2))  # new content of the same DAC: a new UTID
    assert b.created and b.utid != a.utid
    restarted = EmbeddedLedger(tmp_path)  # a new process would see the same state
    rec = restarted.lookup(a.utid)
    assert rec.digest == d(1) and rec.dac_id == "acme" and rec.block_number == a.block_number
    assert restarted.register("acme", d(1)).utid == a.utid
    assert restarted.lookup(utid_for("nobody", d(9))) is None


def test_reverts_are_errors_not_silent_status_zero(tmp_path):
    led = EmbeddedLedger(tmp_path)
    a = led.register("acme", d(1))
    with pytest.raises(LedgerError, match="reverted"):
        led.attribute_revenue(b"\x01" * 32, [a.utid], [100], 101)  # shares do not add up
    with pytest.raises(LedgerError, match="reverted"):
        led.attribute_revenue(b"\x01" * 32, [utid_for("x", d(5))], [100], 100)  # unknown UTID
    tx, events = led.attribute_revenue(b"\x01" * 32, [a.utid], [100], 100)
    assert events[0]["amount_cents"] == 100 and led.receipt_events(tx, "RevenueAttributed") == events


def test_two_processes_register_at_once_and_both_land(tmp_path):
    code = (
        "import sys, hashlib; from pathlib import Path; "
        "from iv_pipelines.ledger.chain import EmbeddedLedger; "
        "led = EmbeddedLedger(Path(sys.argv[1])); "
        "[led.register(f'{sys.argv[2]}-{i}', hashlib.sha256(f'{sys.argv[2]}{i}'.encode()).digest()) "
        "for i in range(3)]"
    )
    EmbeddedLedger(tmp_path).register("warmup", d(0))  # deploy first, so both race on registers
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), name], cwd=REPO, stderr=subprocess.PIPE)
        for name in ("alpha", "beta")
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
    led = EmbeddedLedger(tmp_path)
    for name in ("alpha", "beta"):
        for i in range(3):
            digest = hashlib.sha256(f"{name}{i}".encode()).digest()
            rec = led.lookup(utid_for(f"{name}-{i}", digest))
            assert rec is not None and rec.digest == digest, (name, i)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def anvil():
    if not ANVIL.exists():
        if shutil.which("npm") is None:
            pytest.skip("npm missing: cannot install anvil")
        pytest.fail("tools/node_modules/.bin/anvil missing: run `make install`")
    port = _free_port()
    proc = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_rpc_backend_against_local_anvil(anvil, tmp_path):
    addr_file = tmp_path / "registry-address.txt"
    led = RpcLedger(anvil, ANVIL_KEY, address_file=addr_file)
    a = led.register("acme", d(1))
    assert a.created and a.gas_used > 0 and addr_file.read_text().strip() == a.contract
    assert not led.register("acme", d(1)).created
    again = RpcLedger(anvil, ANVIL_KEY, address_file=addr_file)  # reuses the deployed registry
    assert again.lookup(a.utid).digest == d(1)
    assert again.receipt_events(a.tx_hash, "Registered")[0]["dac_id"] == "acme"
    with pytest.raises(LedgerError, match="reverted"):
        again.attribute_revenue(b"\x02" * 32, [a.utid], [1], 2)


def test_rpc_backend_errors_name_the_problem(anvil):
    with pytest.raises(LedgerError, match="cannot reach the JSON-RPC node"):
        RpcLedger("http://127.0.0.1:9", ANVIL_KEY)
    with pytest.raises(LedgerError, match="not a valid private key"):
        RpcLedger(anvil, "0x1234")


def test_ledger_resource_rpc_needs_url_and_key(monkeypatch):
    from resources.ledger import LedgerResource

    monkeypatch.delenv("IV_LEDGER_PRIVATE_KEY", raising=False)
    with pytest.raises(LedgerError, match="needs rpc_url"):
        LedgerResource(backend="rpc").get()
    with pytest.raises(LedgerError, match="needs a private key"):
        LedgerResource(backend="rpc", rpc_url="http://127.0.0.1:8545").get()


def test_utid_asset_registers_once_across_rematerializations(storage, tmp_path, proof_env):
    import dagster as dg

    from defs.proof import lineage_proof, utid

    validated_stub, instance, resources = proof_env()
    runs = [
        dg.materialize(
            [validated_stub, lineage_proof, utid],
            partition_key="acme",
            instance=instance,
            resources=resources,
        )
        for _ in range(2)
    ]
    first, second = (r.output_for_node("utid") for r in runs)
    assert first["utid"] == second["utid"] and first["created"] and not second["created"]
    assert second["tx_hash"] == first["tx_hash"]  # the original transaction is kept
    md = runs[1].asset_materializations_for_node("utid")[0].metadata
    assert md["newly_registered"].value is False and md["utid"].value == first["utid"]
    rec = resources["ledger"].get().lookup(bytes.fromhex(first["utid"].removeprefix("utid:")))
    assert rec.dac_id == "acme" and rec.digest.hex() == first["digest"]


def test_blockchain_sync_names_every_out_of_sync_dac(storage, tmp_path, proof_env):
    import dagster as dg

    from defs.proof import ledger_in_sync, ledger_in_sync_job, lineage_proof, utid
    from iv_pipelines.ledger.compile import load_artifact
    from resources.ledger import LedgerResource

    validated_stub, instance, resources = proof_env(("acme", "beta"), zk=False)
    assets = [validated_stub, lineage_proof, utid]
    for pk in ("acme", "beta"):
        assert dg.materialize(assets, partition_key=pk, instance=instance, resources=resources).success
    defs = dg.Definitions(
        assets=assets, asset_checks=[ledger_in_sync], jobs=[ledger_in_sync_job], resources=resources
    )

    def sync():
        r = defs.resolve_job_def("ledger_in_sync_job").execute_in_process(instance=instance)
        (ev,) = r.get_asset_check_evaluations()
        return ev

    ev = sync()
    assert ev.passed and ev.metadata["verified"].value == 2
    # a byte of a bundled file flips: that DAC, and only it, is named
    f = storage.dac_dir("beta") / "validated_hypothesis.json"
    original = f.read_bytes()
    f.write_bytes(original.replace(b"0.97", b"0.98"))
    ev = sync()
    assert not ev.passed and list(ev.metadata["out_of_sync"].value) == ["beta"] and "beta" in ev.description
    f.write_bytes(original)
    assert sync().passed
    # the on-chain digest differs by one byte: a chain where that UTID holds another digest
    reg = json.loads((storage.dac_dir("acme") / "lineage" / "registration.json").read_text())
    forged = bytearray.fromhex(reg["digest"])
    forged[0] ^= 1
    other = EmbeddedLedger(tmp_path / "other-chain")
    other.register("warmup", d(0))
    with other._session(write=True) as (w3, address):
        c = w3.eth.contract(address=address, abi=load_artifact("UtidRegistry")["abi"])
        c.functions.register(bytes.fromhex(reg["utid"][5:]), bytes(forged), "acme").transact({"gas": 300_000})
    resources["ledger"] = LedgerResource(state_dir=str(tmp_path / "other-chain"))
    defs = dg.Definitions(
        assets=assets, asset_checks=[ledger_in_sync], jobs=[ledger_in_sync_job], resources=resources
    )
    ev = sync()
    problems = ev.metadata["out_of_sync"].value
    assert not ev.passed and any("on-chain digest" in p for p in problems["acme"])
    assert any("is not on the chain" in p for p in problems["beta"])


def test_utid_asset_can_anchor_the_zk_proof_on_chain(storage, tmp_path, proof_env):
    import dagster as dg

    from defs.proof import lineage_proof, utid

    validated_stub, instance, resources = proof_env(anchor_zk_proof=True)
    r = dg.materialize(
        [validated_stub, lineage_proof, utid], partition_key="acme", instance=instance, resources=resources
    )
    md = r.asset_materializations_for_node("utid")[0].metadata
    assert md["zk_proof_checked_on_chain"].value is True and md["gas_used"].value > 250_000


# anvil's second well-known development account: the attacker (or a second factory)
ANVIL_KEY_2 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def test_l1_a_second_key_cannot_squat_a_dacs_digest(anvil, tmp_path):
    """Issue #14 L1, on a shared chain with two keys: an unauthorised key cannot bind the DAC's
    digest to a UTID of its own (the registry refuses), and when a binding by another registrar
    exists, the factory refuses to adopt it and says whose it is."""
    from web3 import Web3

    from iv_pipelines.ledger.compile import load_artifact

    factory = RpcLedger(anvil, ANVIL_KEY, address_file=tmp_path / "registry.txt")
    factory.register("warmup", d(0))  # deploys the registry
    registry = factory.address
    w3 = Web3(Web3.HTTPProvider(anvil))
    attacker = w3.eth.account.from_key(ANVIL_KEY_2)
    c = w3.eth.contract(address=registry, abi=load_artifact("UtidRegistry")["abi"])
    squat = c.functions.register(b"\xee" * 32, d(7), "acme")
    with pytest.raises(Exception, match="not an authorised registrar"):
        squat.call({"from": attacker.address, "gas": 300_000})
    # the attacker as a client of the same registry: refused before any transaction
    as_attacker = RpcLedger(anvil, ANVIL_KEY_2, contract_address=registry)
    with pytest.raises(LedgerError, match="not an authorised registrar"):
        as_attacker.register("acme", d(7))
    # the owner authorises a second registrar, which binds the digest first: the factory
    # refuses to adopt a binding that is not its own
    factory.set_registrar(attacker.address, True)
    as_attacker.register("acme", d(7))
    with pytest.raises(LedgerError, match=f"registered by {attacker.address}, not by this factory"):
        factory.register("acme", d(7))
    assert factory.register("acme", d(8)).created  # its own registrations go on


def test_l1_ledger_in_sync_names_a_registrant_that_is_not_ours(tmp_path):
    from iv_pipelines.ledger.chain import Record
    from iv_pipelines.ledger.sync import verify_dac
    from iv_pipelines.proof.dsse import load_or_create_signing_key

    reg_dir = tmp_path / "dacs" / "acme" / "lineage"
    reg_dir.mkdir(parents=True)
    utid = utid_for("acme", d(1))
    (reg_dir / "registration.json").write_text(
        json.dumps({"utid": "utid:" + utid.hex(), "digest": d(1).hex(), "contract": "0xAA", "backend": "rpc"})
    )

    class Chain:
        def registry(self):
            return "0xAA", "0xFACTORY"

        def lookup(self, u):
            return Record(u, d(1), "0xATTACKER", 1, "acme")

        def receipt_events(self, *_):
            return []

    out = verify_dac(
        reg_dir / "registration.json", Chain(), load_or_create_signing_key(tmp_path / "k").public
    )
    assert any(
        "registered by 0xATTACKER, not by this factory's registrar 0xFACTORY" in p for p in out.problems
    )


def test_l3_a_registration_on_another_registry_is_named_and_re_registered(tmp_path):
    """After the registry changed (a new contract, another chain), a DAC's registration names
    the registry it belongs to instead of "transaction unreadable", and registering again lands
    on the current registry."""
    from iv_pipelines.ledger.sync import verify_dac
    from iv_pipelines.proof.dsse import load_or_create_signing_key

    led = EmbeddedLedger(tmp_path / "chain")
    first = led.register("acme", d(1))
    reg_dir = tmp_path / "dacs" / "acme" / "lineage"
    reg_dir.mkdir(parents=True)
    (reg_dir / "registration.json").write_text(json.dumps(first.to_json() | {"backend": "embedded"}))
    meta = tmp_path / "chain" / "chain.json"
    m = json.loads(meta.read_text())
    meta.write_text(json.dumps(m | {"registry_source": "an older contract"}))
    again = led.register("acme", d(1))  # a new registry is deployed for the new contract
    assert again.created and again.contract != first.contract
    assert first.contract in json.loads(meta.read_text())["previous_registries"]
    out = verify_dac(reg_dir / "registration.json", led, load_or_create_signing_key(tmp_path / "k").public)
    assert out.problems and f"registered on the registry at {first.contract}" in out.problems[0]
    assert "re-materialize utid" in out.problems[0] and "unreadable" not in " ".join(out.problems)
