// Services that provide a capability, cheapest first by mean TTF node cost in the window.
MATCH (s:Service)-[:PROVIDES_CAPABILITY]->(:Capability {name: $capability})
MATCH (s)-[:HAS_STATE]->(e:EnergyState)
WHERE e.ts >= $since_ms AND e.ts < $until_ms
WITH s, avg(e.E + 0.5 * e.dE + 2.0 * e.S) AS cost, count(e) AS states
RETURN s.id AS service, cost, states
ORDER BY cost ASC, service ASC
LIMIT $limit
