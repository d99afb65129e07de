"""The Energy Atlas: the seed's temporal graph behind one interface, two engines.

Embedded default: `ladybug` (in-process Cypher, the maintained Kùzu fork). Production: Neo4j
through the official driver. The seed's four queries live once in `queries/*.cypher`
(timestamps are epoch ms, windows are parameters); `queries/<dialect>/` holds the few texts
that differ (schema DDL). Never import `kuzu` in the same process as ladybug (segfault).
"""
