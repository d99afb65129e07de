# pragma version 0.4.3
# @title UTID registry of the Industriverse DAC factory
# @notice Maps a DAC's content digest to its UTID (and back). Registration is idempotent by
#         digest: registering a digest again returns the UTID it already has and emits nothing.
#         Only registrars the owner authorised may register (on a shared chain anyone could
#         otherwise bind a DAC's digest to a UTID of their own first). A registration with a
#         proof checks that the proof is about the digest registered: the digest must be
#         sha256("iv-dac-digest-v2" 0x00 dac_id 0x00 merkle_root poseidon_root) with the
#         proof's public Poseidon root, so a valid proof for one DAC cannot anchor another.
#         Revenue attributions are recorded as events only (readers rebuild them from receipts).
# @license Apache-2.0

event Registered:
    utid: indexed(bytes32)
    digest: indexed(bytes32)
    registrant: indexed(address)
    dac_id: String[128]

event ProofAnchored:
    utid: indexed(bytes32)
    poseidon_root: uint256
    threshold: uint256
    commitment: uint256

event RegistrarSet:
    registrar: indexed(address)
    allowed: bool

event RevenueAttributed:
    period: indexed(bytes32)
    utid: indexed(bytes32)
    amount_cents: uint256
    total_cents: uint256

struct Record:
    digest: bytes32
    registrant: address
    block_number: uint256
    dac_id: String[128]

interface Groth16Verifier:
    def verify(a: uint256[2], b: uint256[4], c: uint256[2], pub: uint256[3]) -> bool: view

owner: public(immutable(address))
verifier: public(immutable(address))
registrars: public(HashMap[address, bool])
utid_of_digest: public(HashMap[bytes32, bytes32])
records: HashMap[bytes32, Record]
count: public(uint256)


@deploy
def __init__(groth16_verifier: address):
    owner = msg.sender
    verifier = groth16_verifier
    self.registrars[msg.sender] = True


@external
def set_registrar(registrar: address, allowed: bool):
    assert msg.sender == owner, "only the owner manages registrars"
    self.registrars[registrar] = allowed
    log RegistrarSet(registrar=registrar, allowed=allowed)


@external
def register(utid: bytes32, digest: bytes32, dac_id: String[128]) -> bytes32:
    return self._register(utid, digest, dac_id)


@external
def register_with_proof(
    utid: bytes32,
    digest: bytes32,
    dac_id: String[128],
    merkle_root: bytes32,
    a: uint256[2],
    b: uint256[4],
    c: uint256[2],
    pub: uint256[3],
) -> bytes32:
    """Registers only if the Groth16 lineage/score proof verifies on-chain and is about this
    digest (its public Poseidon root is part of the digest); reverts otherwise."""
    assert verifier != empty(address), "no verifier configured"
    bound: bytes32 = sha256(
        concat(
            b"iv-dac-digest-v2\x00",
            convert(dac_id, Bytes[128]),
            b"\x00",
            merkle_root,
            convert(pub[0], bytes32),
        )
    )
    assert digest == bound, "the proof does not commit to this digest"
    assert staticcall Groth16Verifier(verifier).verify(a, b, c, pub), "zk proof does not verify"
    out: bytes32 = self._register(utid, digest, dac_id)
    log ProofAnchored(utid=out, poseidon_root=pub[0], threshold=pub[1], commitment=pub[2])
    return out


@internal
def _register(utid: bytes32, digest: bytes32, dac_id: String[128]) -> bytes32:
    assert self.registrars[msg.sender], "not an authorised registrar"
    assert utid != empty(bytes32), "empty utid"
    assert digest != empty(bytes32), "empty digest"
    existing: bytes32 = self.utid_of_digest[digest]
    if existing != empty(bytes32):
        return existing
    assert self.records[utid].digest == empty(bytes32), "utid already bound to another digest"
    self.utid_of_digest[digest] = utid
    self.records[utid] = Record(
        digest=digest, registrant=msg.sender, block_number=block.number, dac_id=dac_id
    )
    self.count += 1
    log Registered(utid=utid, digest=digest, registrant=msg.sender, dac_id=dac_id)
    return utid


@view
@external
def lookup(utid: bytes32) -> (bytes32, address, uint256, String[128]):
    r: Record = self.records[utid]
    return r.digest, r.registrant, r.block_number, r.dac_id


@external
def attribute_revenue(period: bytes32, utids: DynArray[bytes32, 64], amounts_cents: DynArray[uint256, 64], total_cents: uint256):
    assert msg.sender == owner, "only the owner records revenue"
    assert len(utids) == len(amounts_cents), "one amount per utid"
    s: uint256 = 0
    for i: uint256 in range(len(utids), bound=64):
        assert self.records[utids[i]].digest != empty(bytes32), "unknown utid"
        s += amounts_cents[i]
        log RevenueAttributed(period=period, utid=utids[i], amount_cents=amounts_cents[i], total_cents=total_cents)
    assert s == total_cents, "shares must add up to the total"
