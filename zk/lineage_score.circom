pragma circom 2.1.6;

// Proves, with only (root, threshold, commitment) public:
//  (a) a 256-bit digest (split into two 128-bit halves, range-checked) is a leaf of the
//      DAC's Poseidon lineage tree with that root (fixed depth DEPTH, zero-padded);
//  (b) the committed score is >= threshold, both range-checked to BITS bits so the
//      comparison cannot wrap around the field;
//  (c) the commitment is Poseidon(score, salt, leaf): the score is bound to that leaf.
// Licence: Apache-2.0 (this file). It includes circomlib (GPL-3.0) at build time only; the
// compiled artifacts are produced by zk/setup.sh and nothing from circomlib is vendored.

include "circomlib/circuits/poseidon.circom";
include "circomlib/circuits/bitify.circom";
include "circomlib/circuits/comparators.circom";

template LineageScore(DEPTH, BITS) {
    signal input root;
    signal input threshold;
    signal input commitment;

    signal input digest_hi;
    signal input digest_lo;
    signal input path_elements[DEPTH];
    signal input path_index[DEPTH];
    signal input score;
    signal input salt;

    component hi_bits = Num2Bits(128);
    hi_bits.in <== digest_hi;
    component lo_bits = Num2Bits(128);
    lo_bits.in <== digest_lo;

    component leaf = Poseidon(2);
    leaf.inputs[0] <== digest_hi;
    leaf.inputs[1] <== digest_lo;

    signal cur[DEPTH + 1];
    signal left[DEPTH];
    signal right[DEPTH];
    component node[DEPTH];
    cur[0] <== leaf.out;
    for (var i = 0; i < DEPTH; i++) {
        path_index[i] * (1 - path_index[i]) === 0;
        left[i] <== cur[i] + path_index[i] * (path_elements[i] - cur[i]);
        right[i] <== path_elements[i] + cur[i] - left[i];
        node[i] = Poseidon(2);
        node[i].inputs[0] <== left[i];
        node[i].inputs[1] <== right[i];
        cur[i + 1] <== node[i].out;
    }
    root === cur[DEPTH];

    component score_bits = Num2Bits(BITS);
    score_bits.in <== score;
    component threshold_bits = Num2Bits(BITS);
    threshold_bits.in <== threshold;
    component ge = GreaterEqThan(BITS);
    ge.in[0] <== score;
    ge.in[1] <== threshold;
    ge.out === 1;

    component c = Poseidon(3);
    c.inputs[0] <== score;
    c.inputs[1] <== salt;
    c.inputs[2] <== leaf.out;
    commitment === c.out;
}

component main {public [root, threshold, commitment]} = LineageScore(6, 32);
