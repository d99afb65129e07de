"""Proof of lineage: Merkle trees over DAC artifacts, signed SLSA provenance (DSSE/Ed25519)."""
