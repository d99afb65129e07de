// A self-healing action, attached to its DAC.
MERGE (d:DAC {id: $dac_id})
CREATE (h:HealingAction {id: $id, issue: $issue, strategy: $strategy, ok: $ok, ts: $ts, details: $details})
CREATE (d)-[:HEALED]->(h)
