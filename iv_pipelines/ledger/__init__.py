"""The ledger: a UTID registry contract (Vyper) on an embedded EVM or any JSON-RPC chain."""
