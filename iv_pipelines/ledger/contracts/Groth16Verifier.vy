# pragma version 0.4.3
# @title Groth16 verifier on BN254 (3 public inputs), written for this project
# @notice Checks e(-A, B) e(alpha, beta) e(vk_x, gamma) e(C, delta) == 1 with the EVM
#         precompiles ecAdd (0x06), ecMul (0x07) and ecPairing (0x08). The verification key
#         is given at deployment (from zk/build/verification_key.json). G2 points use the EVM
#         order (x_imag, x_real, y_imag, y_real): snarkjs writes (x_real, x_imag), so callers
#         swap each pair.
# @license Apache-2.0

N_PUBLIC: constant(uint256) = 3
P: constant(uint256) = 21888242871839275222246405745257275088696311157297823662689037894645226208583
R: constant(uint256) = 21888242871839275222246405745257275088548364400416034343698204186575808495617

alpha: public(uint256[2])
beta: public(uint256[4])
gamma: public(uint256[4])
delta: public(uint256[4])
ic: public(uint256[2][4])


@deploy
def __init__(alpha: uint256[2], beta: uint256[4], gamma: uint256[4], delta: uint256[4], ic: uint256[2][4]):
    self.alpha = alpha
    self.beta = beta
    self.gamma = gamma
    self.delta = delta
    self.ic = ic


@internal
@view
def _ec_add(a: uint256[2], b: uint256[2]) -> uint256[2]:
    ok: bool = False
    out: Bytes[64] = b""
    ok, out = raw_call(
        0x0000000000000000000000000000000000000006,
        abi_encode(a, b),
        max_outsize=64,
        is_static_call=True,
        revert_on_failure=False,
    )
    assert ok and len(out) == 64, "ecAdd failed"
    return [convert(slice(out, 0, 32), uint256), convert(slice(out, 32, 32), uint256)]


@internal
@view
def _ec_mul(a: uint256[2], s: uint256) -> uint256[2]:
    ok: bool = False
    out: Bytes[64] = b""
    ok, out = raw_call(
        0x0000000000000000000000000000000000000007,
        abi_encode(a, s),
        max_outsize=64,
        is_static_call=True,
        revert_on_failure=False,
    )
    assert ok and len(out) == 64, "ecMul failed"
    return [convert(slice(out, 0, 32), uint256), convert(slice(out, 32, 32), uint256)]


@external
@view
def verify(a: uint256[2], b: uint256[4], c: uint256[2], pub: uint256[N_PUBLIC]) -> bool:
    for i: uint256 in range(N_PUBLIC):
        if pub[i] >= R:
            return False
    for v: uint256 in [a[0], a[1], c[0], c[1], b[0], b[1], b[2], b[3]]:
        if v >= P:
            return False
    vk_x: uint256[2] = self.ic[0]
    for i: uint256 in range(N_PUBLIC):
        vk_x = self._ec_add(vk_x, self._ec_mul(self.ic[i + 1], pub[i]))
    neg_a_y: uint256 = 0
    if a[1] != 0:
        neg_a_y = P - a[1]
    inp: uint256[24] = [
        a[0], neg_a_y, b[0], b[1], b[2], b[3],
        self.alpha[0], self.alpha[1], self.beta[0], self.beta[1], self.beta[2], self.beta[3],
        vk_x[0], vk_x[1], self.gamma[0], self.gamma[1], self.gamma[2], self.gamma[3],
        c[0], c[1], self.delta[0], self.delta[1], self.delta[2], self.delta[3],
    ]
    ok: bool = False
    out: Bytes[32] = b""
    ok, out = raw_call(
        0x0000000000000000000000000000000000000008,
        abi_encode(inp),
        max_outsize=32,
        is_static_call=True,
        revert_on_failure=False,
    )
    if not ok or len(out) != 32:
        return False
    return convert(out, uint256) == 1
