// Idempotent bulk insert of per-step states of a DAC (HAS_STEP_STATE) (MERGE on the state id).
UNWIND $rows AS r
MERGE (d:DAC {id: r.owner})
MERGE (e:EnergyState {id: r.id})
ON CREATE SET e.entity = r.entity, e.ts = r.ts, e.E = r.E, e.dE = r.dE, e.S = r.S, e.source = r.source, e.run_id = r.run_id, e._new = true
MERGE (d)-[:HAS_STEP_STATE]->(e)
WITH e, coalesce(e._new, false) AS created
REMOVE e._new
RETURN count(CASE WHEN created THEN 1 END) AS created
