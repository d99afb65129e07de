// A DAC's healing actions, oldest first.
MATCH (d:DAC {id: $dac_id})-[:HEALED]->(h:HealingAction)
RETURN h.ts AS ts, h.issue AS issue, h.strategy AS strategy, h.ok AS ok, h.details AS details
ORDER BY ts
