"""A project's MLflow experiment, the aliases that mark its served model versions, and the runs a dead trainer left
open, through MLflow's REST API: a few requests, without importing MLflow's client (about 150 MB resident in a
long-running controller that needs nothing else of it)."""

from __future__ import annotations

import functools
import time

import httpx

UID_TAG = "kubevision.io/uid"  # on a training run: the uid of its Iteration
FAILURE_TAG = "kubevision.io/failure"  # on a run ended by the controller: why its trainer stopped


class TrackingError(RuntimeError):
    """MLflow could not be reached or refused the request; the message says which server and why."""


def experiment_name(namespace: str, project: str) -> str:
    return f"kubevision/{namespace}/{project}"


@functools.cache
def _client() -> httpx.Client:
    """One client for the process, safe to share between threads: a new one loads the system's CA certificates
    (tens of milliseconds of CPU), which a controller reconciling thousands of projects would pay each time."""
    return httpx.Client()


def registered_model_name(namespace: str, project: str) -> str:
    return f"kubevision-{namespace}-{project}"


def published_alias(publish_name: str) -> str:
    """The alias of the model version served under `publish_name`. Prefixed: MLflow reserves "latest" and "v<n>",
    which are valid publish names."""
    return f"published-{publish_name}"


def set_published_alias(tracking_uri: str, namespace: str, project: str, run_id: str, publish_name: str,
                        timeout: float = 10) -> None:
    """Points the publish name's alias at the model version the training run registered."""
    name = registered_model_name(namespace, project)
    api = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow"
    try:
        with httpx.Client(timeout=timeout) as client:
            found = client.get(f"{api}/model-versions/search",
                               params={"filter": f"name = '{name}' and run_id = '{run_id}'"})
            if found.status_code != 200:
                raise TrackingError(f"MLflow at {tracking_uri}: {_describe(found)}")
            versions = found.json().get("model_versions", [])
            if not versions:
                raise TrackingError(f"MLflow at {tracking_uri}: no version of {name} was registered by run {run_id}")
            alias = {"name": name, "alias": published_alias(publish_name), "version": versions[0]["version"]}
            response = client.post(f"{api}/registered-models/alias", json=alias)
            if response.status_code != 200:
                raise TrackingError(f"MLflow at {tracking_uri}: {_describe(response)}")
    except (httpx.HTTPError, ValueError, KeyError) as error:
        raise TrackingError(f"MLflow at {tracking_uri}: {error}") from error


def delete_published_alias(tracking_uri: str, namespace: str, project: str, publish_name: str,
                           timeout: float = 10) -> None:
    """Removes the publish name's alias; one already gone (or a model never registered) is no error."""
    alias = {"name": registered_model_name(namespace, project), "alias": published_alias(publish_name)}
    try:
        with httpx.Client(timeout=timeout) as client:
            response = client.request("DELETE", f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/registered-models/alias",
                                      json=alias)
    except httpx.HTTPError as error:
        raise TrackingError(f"MLflow at {tracking_uri}: {error}") from error
    if response.status_code != 200 and _error_code(response) != "RESOURCE_DOES_NOT_EXIST":
        raise TrackingError(f"MLflow at {tracking_uri}: {_describe(response)}")


def ensure_experiment(tracking_uri: str, name: str, timeout: float = 10) -> str:
    """The id of the experiment called `name`, created if missing; if a concurrent caller creates it first, its id."""
    api = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/experiments"
    try:
        found = _existing(api, name, timeout)
        if found is not None:
            return found
        created = _client().post(f"{api}/create", json={"name": name}, timeout=timeout)
        if created.status_code == 200:
            return created.json()["experiment_id"]
        if _error_code(created) == "RESOURCE_ALREADY_EXISTS" and (found := _existing(api, name, timeout)):
            return found
        raise TrackingError(f"MLflow at {tracking_uri}: {_describe(created)}")
    except (httpx.HTTPError, ValueError, KeyError) as error:
        raise TrackingError(f"MLflow at {tracking_uri}: {error}") from error


def end_unfinished_runs(tracking_uri: str, namespace: str, project: str, iteration_uid: str, why: str,
                        timeout: float = 10) -> int:
    """Ends as FAILED the Iteration's runs still RUNNING, which a trainer killed before it could end them leaves so
    for good, tagged with why it stopped; returns how many."""
    api = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow"
    try:
        experiment = _existing(f"{api}/experiments", experiment_name(namespace, project), timeout)
        if experiment is None:
            return 0
        found = _client().post(f"{api}/runs/search", timeout=timeout, json={
            "experiment_ids": [experiment],
            "filter": f"tags.`{UID_TAG}` = '{iteration_uid}' and attributes.status = 'RUNNING'"})
        if found.status_code != 200:
            raise TrackingError(f"MLflow at {tracking_uri}: {_describe(found)}")
        runs = [run["info"]["run_id"] for run in found.json().get("runs", [])]
        for run_id in runs:
            for call, body in (("set-tag", {"run_id": run_id, "key": FAILURE_TAG, "value": why[:5000]}),
                               ("update", {"run_id": run_id, "status": "FAILED",
                                           "end_time": int(time.time() * 1000)})):
                response = _client().post(f"{api}/runs/{call}", json=body, timeout=timeout)
                if response.status_code != 200:
                    raise TrackingError(f"MLflow at {tracking_uri}: {_describe(response)}")
        return len(runs)
    except (httpx.HTTPError, ValueError, KeyError) as error:
        raise TrackingError(f"MLflow at {tracking_uri}: {error}") from error


def _existing(api: str, name: str, timeout: float) -> str | None:
    response = _client().get(f"{api}/get-by-name", params={"experiment_name": name}, timeout=timeout)
    if response.status_code == 200:
        return response.json()["experiment"]["experiment_id"]
    if _error_code(response) == "RESOURCE_DOES_NOT_EXIST":
        return None
    raise httpx.HTTPStatusError(_describe(response), request=response.request, response=response)


def _error_code(response: httpx.Response) -> str:
    try:
        return response.json().get("error_code", "")
    except ValueError:
        return ""


def _describe(response: httpx.Response) -> str:
    return f"HTTP {response.status_code}: {response.text[:200]}"
