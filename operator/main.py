"""`kubevision operator`: the kopf operator on a cluster (in its pod, or from a kubeconfig for development)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import kopf
from kubernetes_asyncio import client, config
from prometheus_client import start_http_server

from kubevision.core.settings import OperatorSettings, S3Settings
from kubevision.operator.cluster import Cluster, mlflow_request_limits, operator_settings
from kubevision.operator.handlers import register


async def _kubernetes_client() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()


def run(settings: OperatorSettings | None = None) -> None:
    settings = settings or OperatorSettings()
    os.environ.update(mlflow_request_limits(settings))

    async def main() -> None:
        registry = kopf.OperatorRegistry()

        @kopf.on.login(registry=registry)
        def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
            return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

        async with await _kubernetes_client() as api_client:
            register(registry, Cluster(api_client, settings, S3Settings(), settings.mlflow_tracking_uri))
            start_http_server(settings.metrics_port)
            # One replica (the chart's Deployment uses the Recreate strategy), so no peering is needed.
            await kopf.operator(registry=registry, settings=operator_settings(), standalone=True,
                                clusterwide=not settings.namespaces, namespaces=settings.namespaces)

    asyncio.run(main())
