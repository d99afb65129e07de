"""Ledger backends for the UTID registry.

- `EmbeddedLedger`: an in-process EVM (web3 `EthereumTesterProvider` on py-evm). Its state is a
  snapshot of the chain database in one file (e.g. `$DAGSTER_HOME/ledger/chain.pickle`);
  every write takes an exclusive `flock` on a sibling lock file, loads the snapshot, sends the
  transaction, and replaces the snapshot atomically, so two run processes registering at once
  both land and a crash never leaves half a state. Reads take a shared lock.
- `RpcLedger`: any JSON-RPC node; transactions are signed locally with the configured key
  (`IV_LEDGER_PRIVATE_KEY`) and sent raw. Tested against a local anvil node.
Both deploy the registry on first use and remember its address beside the state (embedded)
or in the configured `contract_address` / an address file (rpc). Every receipt's `status` is
checked (an explicit gas limit turns a revert into status 0 instead of an exception), and
events are decoded from the receipt of the transaction that emitted them, never by scanning
logs.

UTID: sha256(b"iv-utid-v1" 0x00 dac_id 0x00 digest) as bytes32 — deterministic, so the same
DAC content always proposes the same UTID; the contract returns the UTID already bound to a
digest when the digest is registered again (idempotent).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

from iv_pipelines.ledger.compile import load_artifact
from iv_pipelines.paths import atomic_write_bytes, atomic_write_text

GAS_REGISTER = 300_000
GAS_REGISTER_ZK = 700_000
GAS_DEPLOY = 2_000_000
GAS_VERIFY = 500_000  # the pairing check alone needs ~181k; give verifier calls room


def _discard():
    """web3's `errors=DISCARD` (imported lazily: web3 stays out of code-location load)."""
    from web3.logs import DISCARD

    return DISCARD


class LedgerError(RuntimeError):
    """A ledger operation failed; the message says which and why."""


def utid_for(dac_id: str, digest: bytes) -> bytes:
    if len(digest) != 32:
        raise LedgerError(f"digest must be 32 bytes, got {len(digest)}")
    return hashlib.sha256(b"iv-utid-v1\x00" + dac_id.encode() + b"\x00" + digest).digest()


def dac_digest(dac_id: str, merkle_root_hex: str, poseidon_root: int | None = None) -> bytes:
    """What the registry records for a DAC: its lineage Merkle root bound to its id (two DACs
    with byte-identical files still get different digests). With the Poseidon root of its zk
    proof (v2), the digest also commits to the proof's public root, which the registry
    recomputes on chain: a proof registered with a digest is the proof about that digest."""
    if poseidon_root is None:
        return hashlib.sha256(
            b"iv-dac-digest-v1\x00" + dac_id.encode() + b"\x00" + bytes.fromhex(merkle_root_hex)
        ).digest()
    return hashlib.sha256(
        b"iv-dac-digest-v2\x00"
        + dac_id.encode()
        + b"\x00"
        + bytes.fromhex(merkle_root_hex)
        + int(poseidon_root).to_bytes(32, "big")
    ).digest()


def utid_text(utid: bytes) -> str:
    return "utid:" + utid.hex()


@dataclass(frozen=True)
class Registration:
    utid: bytes
    digest: bytes
    dac_id: str
    tx_hash: str
    block_number: int
    gas_used: int
    created: bool  # False: the digest was registered before (idempotent return)
    contract: str
    seconds: float

    def to_json(self) -> dict:
        return {
            "utid": utid_text(self.utid),
            "digest": self.digest.hex(),
            "dac_id": self.dac_id,
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
            "gas_used": self.gas_used,
            "created": self.created,
            "contract": self.contract,
        }


@dataclass(frozen=True)
class Record:
    utid: bytes
    digest: bytes
    registrant: str
    block_number: int
    dac_id: str


def evm_g1(p) -> list[int]:
    return [int(p[0]), int(p[1])]


def evm_g2(p) -> list[int]:
    """snarkjs writes each G2 coordinate as (real, imaginary); the EVM wants (imaginary, real)."""
    return [int(p[0][1]), int(p[0][0]), int(p[1][1]), int(p[1][0])]


def verifier_args(vk: dict) -> tuple:
    return (
        evm_g1(vk["vk_alpha_1"]),
        evm_g2(vk["vk_beta_2"]),
        evm_g2(vk["vk_gamma_2"]),
        evm_g2(vk["vk_delta_2"]),
        [evm_g1(p) for p in vk["IC"]],
    )


def proof_args(proof: dict, public: list) -> tuple:
    return evm_g1(proof["pi_a"]), evm_g2(proof["pi_b"]), evm_g1(proof["pi_c"]), [int(x) for x in public]


class _RegistryOps:
    """Contract calls shared by both backends; subclasses provide `_w3()` and `_send()`."""

    backend = "?"

    def _contract(self, w3, address: str):
        art = load_artifact("UtidRegistry")
        return w3.eth.contract(address=address, abi=art["abi"])

    def _check_registrar(self, w3, address: str) -> None:
        """Fail early, and say why, when this factory's key may not register on the registry
        at `address` (or the registry predates registrar access control)."""
        try:
            allowed = self._contract(w3, address).functions.registrars(self._me(w3)).call()
        except Exception as e:  # noqa: BLE001 - an older registry has no `registrars`
            raise LedgerError(
                f"the registry at {address} predates registrar access control ({type(e).__name__}): "
                "deploy a new one (embedded: it is redeployed automatically; rpc: clear the address file)"
            ) from None
        if not allowed:
            raise LedgerError(
                f"{self._me(w3)} is not an authorised registrar of the registry at {address}: "
                "its owner must call set_registrar for this factory's key"
            )

    def _deploy(self, w3) -> str:
        """Deploy the registry, with a Groth16 verifier for the committed zk keys when they are
        there (otherwise `register_with_proof` reverts with "no verifier configured")."""
        from iv_pipelines.proof import zk

        try:
            verifier = self._deploy_verifier(w3, zk.verification_key())
        except zk.ZkError:
            verifier = "0x" + "00" * 20
        art = load_artifact("UtidRegistry")
        factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        receipt = self._send(w3, factory.constructor(verifier), GAS_DEPLOY)
        return receipt["contractAddress"]

    def _deploy_verifier(self, w3, vk: dict) -> str:
        art = load_artifact("Groth16Verifier")
        factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        return self._send(w3, factory.constructor(*verifier_args(vk)), GAS_DEPLOY)["contractAddress"]

    def _verify_proof(
        self, w3, address: str, proof: dict, public: list, measure_gas: bool
    ) -> tuple[bool, int]:
        """(verified, gas used) with the Groth16 verifier the registry at `address` was deployed
        with. With `measure_gas`, a real transaction calls `verify` and its receipt's gasUsed is
        returned (eth-tester's eth_estimateGas under-reports precompile costs); otherwise only
        an eth_call runs and gas is 0."""
        verifier = self._contract(w3, address).functions.verifier().call()
        if int(verifier, 16) == 0:
            raise LedgerError(
                "the registry has no Groth16 verifier (zk/build keys were missing at deployment)"
            )
        c = w3.eth.contract(address=verifier, abi=load_artifact("Groth16Verifier")["abi"])
        fn = c.functions.verify(*proof_args(proof, public))
        ok = bool(fn.call({"gas": GAS_VERIFY}))
        if not measure_gas:
            return ok, 0
        return ok, self._send(w3, fn, GAS_VERIFY)["gasUsed"]

    def _register(
        self,
        w3,
        address: str,
        dac_id: str,
        digest: bytes,
        zk_proof: dict | None = None,
        merkle_root: str | None = None,
    ) -> Registration:
        t0 = time.perf_counter()
        c = self._contract(w3, address)
        existing = bytes(c.functions.utid_of_digest(digest).call())
        if any(existing):  # registered before: no transaction, no second record
            rec = self._lookup(w3, address, existing)
            if rec is None or rec.registrant.lower() != self._me(w3).lower():
                who = rec.registrant if rec else "nobody"
                raise LedgerError(
                    f"digest {digest.hex()[:16]}... of {dac_id} is bound to {utid_text(existing)} registered by "
                    f"{who}, not by this factory's registrar {self._me(w3)}: refusing to adopt that binding"
                )
            return Registration(
                existing,
                digest,
                rec.dac_id,
                "",
                rec.block_number,
                0,
                False,
                address,
                time.perf_counter() - t0,
            )
        self._check_registrar(w3, address)
        if zk_proof is None:
            fn, gas = c.functions.register(utid_for(dac_id, digest), digest, dac_id), GAS_REGISTER
        else:  # the contract checks the proof is about this digest, then verifies it
            if merkle_root is None:
                raise LedgerError("a registration with a zk proof needs the lineage Merkle root")
            args = proof_args(zk_proof["proof"], zk_proof["public"])
            fn, gas = (
                c.functions.register_with_proof(
                    utid_for(dac_id, digest), digest, dac_id, bytes.fromhex(merkle_root), *args
                ),
                GAS_REGISTER_ZK,
            )
        receipt = self._send(w3, fn, gas)
        events = c.events.Registered().process_receipt(receipt, errors=_discard())
        if not events:  # a concurrent registration of the same digest won the race
            existing = bytes(c.functions.utid_of_digest(digest).call())
            if not any(existing):
                raise LedgerError(f"register({dac_id}) emitted no event and the digest is not bound")
            utid, created = existing, False
        else:
            utid, created = bytes(events[0]["args"]["utid"]), True
        return Registration(
            utid,
            digest,
            dac_id,
            receipt["transactionHash"].hex(),
            receipt["blockNumber"],
            receipt["gasUsed"],
            created,
            address,
            time.perf_counter() - t0,
        )

    def _lookup(self, w3, address: str, utid: bytes) -> Record | None:
        digest, registrant, block, dac_id = self._contract(w3, address).functions.lookup(utid).call()
        if not any(digest):
            return None
        return Record(utid, bytes(digest), registrant, block, dac_id)

    def _attribute(self, w3, address: str, period: bytes, utids: list[bytes], cents: list[int], total: int):
        c = self._contract(w3, address)
        receipt = self._send(
            w3, c.functions.attribute_revenue(period, utids, cents, total), 100_000 + 40_000 * len(utids)
        )
        return receipt, c.events.RevenueAttributed().process_receipt(receipt, errors=_discard())

    def _receipt_events(self, w3, address: str, tx_hash: str, event: str):
        receipt = w3.eth.get_transaction_receipt(tx_hash)
        return receipt, getattr(self._contract(w3, address).events, event)().process_receipt(
            receipt, errors=_discard()
        )

    @staticmethod
    def _check(receipt, what: str):
        if receipt["status"] != 1:
            raise LedgerError(f"{what}: transaction {receipt['transactionHash'].hex()} reverted (status 0)")
        return receipt


class EmbeddedLedger(_RegistryOps):
    backend = "embedded"

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.state = self.state_dir / "chain.pickle"
        self.meta = self.state_dir / "chain.json"
        self.lockfile = self.state_dir / "chain.lock"

    @contextlib.contextmanager
    def _session(self, write: bool):
        from eth.db.atomic import AtomicDB
        from eth.db.backends.memory import MemoryDB
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import EthereumTesterProvider, Web3

        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.lockfile, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            try:
                backend = PyEVMBackend()
                meta = json.loads(self.meta.read_text()) if self.meta.exists() else {}
                if self.state.exists():
                    kv = pickle.loads(self.state.read_bytes())
                    backend.chain = type(backend.chain)(AtomicDB(MemoryDB(kv)))
                w3 = Web3(EthereumTesterProvider(EthereumTester(backend)))
                w3.eth.default_account = w3.eth.accounts[0]
                current = load_artifact("UtidRegistry")["source_sha256"]
                if meta.get("registry") and meta.get("registry_source") != current:
                    # a registry of an older contract: records stay readable at their old
                    # address (`previous_registries`); new registrations go to a new one
                    if not write:
                        yield w3, None
                        return
                    meta.setdefault("previous_registries", []).append(meta.pop("registry"))
                if not meta.get("registry"):
                    if not write:
                        yield w3, None
                        return
                    meta["registry"] = self._deploy(w3)
                    meta["registry_source"] = current
                yield w3, meta["registry"]
                if write:
                    db = backend.chain.chaindb.db
                    kv = dict(db.wrapped_db.kv_store) if hasattr(db, "wrapped_db") else dict(db.kv_store)
                    atomic_write_bytes(self.state, pickle.dumps(kv, protocol=pickle.HIGHEST_PROTOCOL))
                    atomic_write_text(self.meta, json.dumps(meta) + "\n")
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _send(self, w3, fn, gas: int):
        tx_hash = fn.transact({"gas": gas})
        return self._check(w3.eth.get_transaction_receipt(tx_hash), "embedded ledger")

    def _me(self, w3) -> str:
        return w3.eth.default_account

    def registry(self) -> tuple[str | None, str]:
        """(the registry's address or None, this factory's registrar address)."""
        with self._session(write=False) as (w3, address):
            return address, self._me(w3)

    def register(
        self, dac_id: str, digest: bytes, zk_proof: dict | None = None, merkle_root: str | None = None
    ) -> Registration:
        """Register `digest` for `dac_id`; with `zk_proof` ({"proof", "public"}) and the lineage
        `merkle_root`, the contract registers only if the proof is about this digest and verifies."""
        with self._session(write=True) as (w3, address):
            return self._register(w3, address, dac_id, digest, zk_proof, merkle_root)

    def verify_proof(self, proof: dict, public: list, measure_gas: bool = False) -> tuple[bool, int]:
        """Verify a Groth16 proof with the registry's on-chain verifier (committed zk keys)."""
        with self._session(write=True) as (w3, address):
            return self._verify_proof(w3, address, proof, public, measure_gas)

    def lookup(self, utid: bytes) -> Record | None:
        with self._session(write=False) as (w3, address):
            return None if address is None else self._lookup(w3, address, utid)

    def attribute_revenue(self, period: bytes, utids: list[bytes], cents: list[int], total: int):
        with self._session(write=True) as (w3, address):
            receipt, events = self._attribute(w3, address, period, utids, cents, total)
            return receipt["transactionHash"].hex(), [dict(e["args"]) for e in events]

    def receipt_events(self, tx_hash: str, event: str) -> list[dict]:
        with self._session(write=False) as (w3, address):
            if address is None:
                raise LedgerError("no registry deployed on the embedded chain yet")
            _, events = self._receipt_events(w3, address, tx_hash, event)
            return [dict(e["args"]) for e in events]

    def block_number(self) -> int:
        with self._session(write=False) as (w3, _):
            return w3.eth.block_number


class RpcLedger(_RegistryOps):
    backend = "rpc"

    def __init__(
        self,
        url: str,
        private_key: str,
        contract_address: str | None = None,
        address_file: Path | None = None,
    ):
        from web3 import Web3

        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
        if not self.w3.is_connected():
            raise LedgerError(f"cannot reach the JSON-RPC node at {url}")
        try:
            self.account = self.w3.eth.account.from_key(private_key)
        except Exception as e:  # noqa: BLE001 - any malformed key
            raise LedgerError(
                f"IV_LEDGER_PRIVATE_KEY is not a valid private key ({type(e).__name__})"
            ) from None
        self.address_file = address_file
        self.address = contract_address or (
            address_file.read_text().strip() if address_file and address_file.exists() else None
        )

    def _send(self, w3, fn, gas: int):
        tx = fn.build_transaction(
            {
                "from": self.account.address,
                "nonce": w3.eth.get_transaction_count(self.account.address, "pending"),
                "gas": gas,
                "chainId": w3.eth.chain_id,
            }
        )
        signed = self.account.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        return self._check(w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60), "rpc ledger")

    def _registry(self) -> str:
        if self.address is None:
            self.address = self._deploy(self.w3)
            if self.address_file:
                atomic_write_text(self.address_file, self.address + "\n")
        return self.address

    def _me(self, w3) -> str:
        return self.account.address

    def registry(self) -> tuple[str | None, str]:
        return self.address, self.account.address

    def register(
        self, dac_id: str, digest: bytes, zk_proof: dict | None = None, merkle_root: str | None = None
    ) -> Registration:
        return self._register(self.w3, self._registry(), dac_id, digest, zk_proof, merkle_root)

    def set_registrar(self, registrar: str, allowed: bool = True) -> str:
        """As the registry's owner, authorise (or revoke) another registrar; the tx hash."""
        c = self._contract(self.w3, self._registry())
        return self._send(self.w3, c.functions.set_registrar(registrar, allowed), 100_000)[
            "transactionHash"
        ].hex()

    def verify_proof(self, proof: dict, public: list, measure_gas: bool = False) -> tuple[bool, int]:
        return self._verify_proof(self.w3, self._registry(), proof, public, measure_gas)

    def lookup(self, utid: bytes) -> Record | None:
        return None if self.address is None else self._lookup(self.w3, self.address, utid)

    def attribute_revenue(self, period: bytes, utids: list[bytes], cents: list[int], total: int):
        receipt, events = self._attribute(self.w3, self._registry(), period, utids, cents, total)
        return receipt["transactionHash"].hex(), [dict(e["args"]) for e in events]

    def receipt_events(self, tx_hash: str, event: str) -> list[dict]:
        _, events = self._receipt_events(self.w3, self._registry(), tx_hash, event)
        return [dict(e["args"]) for e in events]

    def block_number(self) -> int:
        return self.w3.eth.block_number
