// Offline Cypher check with Neo4j's own parser (@neo4j-cypher/language-support, Apache-2.0).
// stdin: JSON list of {"name", "query", "parameters"}; stdout: JSON list of
// {"name", "diagnostics": [{"severity", "message", "line", "character"}]} (severity 1 = error).
import { lintCypherQuery } from "@neo4j-cypher/language-support";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map(({ name, query, parameters }) => ({
  name,
  diagnostics: lintCypherQuery(query, { parameters: parameters ?? {} }).diagnostics.map((d) => ({
    severity: d.severity,
    message: d.message,
    line: d.range.start.line + 1,
    character: d.range.start.character + 1,
  })),
}));
process.stdout.write(JSON.stringify(out));
