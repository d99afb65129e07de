"""Launch and follow a DAC's lifecycle run through Dagster's GraphQL API, as the UI does.

The gateway never executes anything itself: it asks the Dagster webserver (`dagster dev`,
`dagster-webserver`, or the Helm chart's webserver) to add the DAC's `dac` partition if it is
new and to launch `dac_lifecycle_job` for it, with the run's origin in its tags; the
instance's run launcher and coordinator do the rest, exactly as for a launch from the UI.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

JOB = "dac_lifecycle_job"
ACTIVE = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED"]

_ADD_PARTITION = """
mutation($repo: RepositorySelector!, $def: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: $def, partitionKey: $key) {
    __typename ... on PythonError { message } ... on UnauthorizedError { message }
  }
}"""

_ACTIVE_RUNS = """
query($filter: RunsFilter) {
  runsOrError(filter: $filter, limit: 5) {
    __typename ... on Runs { results { runId status } } ... on PythonError { message }
  }
}"""

_LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on UnauthorizedError { message }
    ... on PipelineNotFoundError { message }
    ... on RunConflict { message }
    ... on PresetNotFoundError { message }
    ... on ConflictingExecutionParamsError { message }
    ... on NoModeProvidedError { message }
  }
}"""

_RUN = """
query($id: ID!) {
  runOrError(runId: $id) {
    __typename
    ... on Run {
      runId status jobName startTime endTime
      tags { key value }
      stats { ... on RunStatsSnapshot { stepsSucceeded stepsFailed } }
      executionPlan { steps { key } }
    }
  }
}"""


class DagsterUnavailable(RuntimeError):
    """The webserver did not answer, or answered with an error (the message says which)."""


class RunConflict(RuntimeError):
    """A lifecycle run of this DAC is already queued or running."""


class DagsterRuns:
    def __init__(
        self,
        graphql_url: str,
        location: str = "iv_pipelines",
        repository: str = "__repository__",
        job: str = JOB,
        partitions_def: str = "dac",
        timeout_s: float = 30.0,
    ):
        self.url = graphql_url
        self.repo = {"repositoryLocationName": location, "repositoryName": repository}
        self.job = job
        self.partitions_def = partitions_def
        self.timeout_s = timeout_s

    def _query(self, query: str, variables: dict) -> dict:
        body = json.dumps({"query": query, "variables": variables}).encode()
        req = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                out = json.loads(r.read())
        except (OSError, ValueError) as e:
            raise DagsterUnavailable(f"Dagster GraphQL at {self.url}: {e}") from None
        if out.get("errors"):
            raise DagsterUnavailable(f"Dagster GraphQL: {out['errors'][0].get('message')}")
        return out["data"]

    def active_run(self, dac: str) -> str | None:
        flt = {
            "pipelineName": self.job,
            "tags": [{"key": "dagster/partition", "value": dac}],
            "statuses": ACTIVE,
        }
        res = self._query(_ACTIVE_RUNS, {"filter": flt})["runsOrError"]
        if res["__typename"] != "Runs":
            raise DagsterUnavailable(f"runsOrError: {res.get('message', res['__typename'])}")
        return res["results"][0]["runId"] if res["results"] else None

    def launch(self, dac: str, tags: dict[str, str]) -> dict:
        """Add the `dac` partition (if new) and launch the lifecycle job for it; refuses with
        RunConflict while one is queued or running. Returns {run_id, status}."""
        added = self._query(_ADD_PARTITION, {"repo": self.repo, "def": self.partitions_def, "key": dac})[
            "addDynamicPartition"
        ]
        if added["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            raise DagsterUnavailable(f"addDynamicPartition: {added.get('message', added['__typename'])}")
        running = self.active_run(dac)
        if running is not None:
            raise RunConflict(f"run {running} of {dac} is already queued or running")
        params = {
            "selector": self.repo | {"jobName": self.job},
            "executionMetadata": {
                "tags": [{"key": "dagster/partition", "value": dac}]
                + [{"key": k, "value": v} for k, v in sorted(tags.items())]
            },
        }
        res = self._query(_LAUNCH, {"params": params})["launchRun"]
        if res["__typename"] != "LaunchRunSuccess":
            detail = res.get("message") or res.get("errors") or res.get("invalidStepKey") or ""
            raise DagsterUnavailable(f"launchRun: {res['__typename']} {detail}".strip())
        return {"run_id": res["run"]["runId"], "status": res["run"]["status"]}

    def run(self, run_id: str) -> dict | None:
        """The run's status and progress, or None if Dagster has no such run."""
        res = self._query(_RUN, {"id": run_id})["runOrError"]
        if res["__typename"] != "Run":
            return None
        stats = res.get("stats") or {}
        plan = res.get("executionPlan") or {}
        return {
            "run_id": res["runId"],
            "job": res["jobName"],
            "status": res["status"],
            "tags": {t["key"]: t["value"] for t in res["tags"]},
            "steps_succeeded": stats.get("stepsSucceeded"),
            "steps_failed": stats.get("stepsFailed"),
            "steps_total": len(plan.get("steps") or []) or None,
            "start_time": res.get("startTime"),
            "end_time": res.get("endTime"),
        }
