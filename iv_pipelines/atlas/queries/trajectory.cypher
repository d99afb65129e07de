// A DAC's energy trajectory in a time window (epoch ms, half-open [since_ms, until_ms)).
MATCH (d:DAC {id: $dac_id})-[:HAS_STATE]->(e:EnergyState)
WHERE e.ts >= $since_ms AND e.ts < $until_ms
RETURN e.ts AS ts, e.E AS E, e.dE AS dE_dt, e.S AS S, e.source AS source, e.run_id AS run_id
ORDER BY ts, run_id
