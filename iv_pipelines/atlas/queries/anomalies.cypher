// A source's energy states more than k standard deviations (population) from their DAC's mean
// in the window (one series at a time: per-run `lifecycle` states, daily `energy_history` totals).
MATCH (d:DAC)-[:HAS_STATE]->(e:EnergyState)
WHERE e.source = $source AND e.ts >= $since_ms AND e.ts < $until_ms
WITH d, avg(e.E) AS mean, sqrt(avg(e.E * e.E) - avg(e.E) * avg(e.E)) AS sd, count(e) AS n
WHERE n >= $min_states AND sd > 0
MATCH (d)-[:HAS_STATE]->(x:EnergyState)
WHERE x.source = $source AND x.ts >= $since_ms AND x.ts < $until_ms AND abs(x.E - mean) > $k * sd
RETURN d.id AS dac, x.ts AS ts, x.E AS E, mean, sd
ORDER BY dac, ts
