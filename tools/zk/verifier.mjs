// Long-running Groth16 verifier: one JSON request per stdin line
//   {"id": ..., "proof": {...}, "public": [...]}
// one JSON answer per stdout line
//   {"id": ..., "ok": true|false, "ms": <verification time>}
// The verification key path is argv[2]. It keeps snarkjs's curve tables warm, so each
// verification costs ~20 ms instead of ~400 ms for a fresh `snarkjs groth16 verify`.
// Licence: Apache-2.0 (this file). It runs snarkjs (GPL-3.0) in this separate node process;
// the Python package never imports it (see NOTICE).
import fs from "fs";
import readline from "readline";
import * as snarkjs from "snarkjs";

const vk = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const quiet = { info() {}, debug() {}, warn() {}, error() {} };
const rl = readline.createInterface({ input: process.stdin });
process.stdout.write(JSON.stringify({ ready: true }) + "\n");
for await (const line of rl) {
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    process.stdout.write(JSON.stringify({ id: null, ok: false, error: "bad json" }) + "\n");
    continue;
  }
  const t = performance.now();
  let ok = false;
  try {
    ok = await snarkjs.groth16.verify(vk, req.public, req.proof, quiet);
  } catch (e) {
    ok = false;
  }
  process.stdout.write(JSON.stringify({ id: req.id, ok: ok === true, ms: performance.now() - t }) + "\n");
}
process.exit(0);
