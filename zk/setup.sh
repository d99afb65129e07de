#!/usr/bin/env bash
# Regenerate the Groth16 (BN254) keys of zk/lineage_score.circom into zk/build/ (committed).
# Slow: the powers-of-tau phase at 2^12 takes a few minutes on 2 cores; run it only when the
# circuit changes (tests/test_zk.py fails when zk/build/ is out of date with the circuit).
#
# This is a single-party DEVELOPMENT setup: whoever runs it could keep the toxic waste (the
# random contributions are drawn from /dev/urandom and discarded, but nobody else can check
# that). A production deployment needs a multi-party ceremony or a public Hermez/perpetual
# powers-of-tau file, which cannot be downloaded on these machines.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=tools/node_modules/.bin
OUT=zk/build
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
rand() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
mkdir -p "$OUT"
$BIN/circom2 zk/lineage_score.circom --r1cs --wasm --O2 -l tools/node_modules -o "$TMP"
$BIN/snarkjs powersoftau new bn128 12 "$TMP/pot_0.ptau"
$BIN/snarkjs powersoftau contribute "$TMP/pot_0.ptau" "$TMP/pot_1.ptau" --name=iv-dev -e="$(rand)"
$BIN/snarkjs powersoftau prepare phase2 "$TMP/pot_1.ptau" "$TMP/pot_final.ptau"
$BIN/snarkjs groth16 setup "$TMP/lineage_score.r1cs" "$TMP/pot_final.ptau" "$TMP/z0.zkey"
$BIN/snarkjs zkey contribute "$TMP/z0.zkey" "$OUT/lineage_score.zkey" --name=iv-dev -e="$(rand)"
$BIN/snarkjs zkey export verificationkey "$OUT/lineage_score.zkey" "$OUT/verification_key.json"
cp "$TMP/lineage_score_js/lineage_score.wasm" "$OUT/lineage_score.wasm"
sha256sum zk/lineage_score.circom | cut -d' ' -f1 > "$OUT/circuit.sha256"
echo "zk keys written to $OUT"
