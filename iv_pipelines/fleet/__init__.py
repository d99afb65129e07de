"""Fleet learning (issue #20): M2N2 merging of the fleet's adapters (`m2n2`, `merge`) and the
Text-to-LoRA hypernetwork (`t2l`), on simulated clients (`clients`), run weekly (`weekly`).

Both are off by default until `bench/fleet.py` shows they win on held-out rooms and devices;
`FLEET_DEFAULTS` records the switch and why (docs/fleet.md quotes the bench)."""

FLEET_DEFAULTS = {
    "m2n2": False,
    "m2n2_why": "off by default: bench/fleet.py has not shown a merge beating the best parent on held-out homes",
    "t2l": False,
    "t2l_why": "off by default: bench/fleet.py has not shown the zero-shot adapter beating the base on held-out homes",
}
