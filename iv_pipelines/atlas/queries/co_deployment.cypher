// Pairs of DACs that use the same services, most shared first.
MATCH (a:DAC)-[:USES_SERVICE]->(s:Service)<-[:USES_SERVICE]-(b:DAC)
WHERE a.id < b.id
RETURN a.id AS a, b.id AS b, count(DISTINCT s) AS shared
ORDER BY shared DESC, a ASC, b ASC
LIMIT $limit
