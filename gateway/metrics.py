"""The gateway's Prometheus metrics: requests by route and status, their latency, time spent in Triton, bytes in;
and what each team used (namespace and project labels, named in core.usage.FIGURES): Prometheus keeps these
counters through the replicas' restarts, and `increase()` over a window adds up all replicas."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Histogram, start_http_server

LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUESTS = Counter("kubevision_gateway_requests_total", "Requests answered, by route template and status.",
                   ["route", "status"])
REQUEST_SECONDS = Histogram("kubevision_gateway_request_seconds", "Time to answer a request, by route template.",
                            ["route"], buckets=LATENCY_BUCKETS)
TRITON_SECONDS = Histogram("kubevision_gateway_triton_seconds", "Time of one Triton inference call.",
                           buckets=LATENCY_BUCKETS)
REQUEST_BYTES = Counter("kubevision_gateway_request_bytes_total", "Bytes of request bodies, by route template.",
                        ["route"])
STORED_PREDICTIONS = Counter("kubevision_gateway_stored_predictions_total", "Predictions kept, by outcome.",
                             ["outcome"])

# Usage. A project label is one series a project (a thousand projects are a thousand series); never a label per image,
# key or caller.
USAGE_PREDICTIONS = Counter("kubevision_usage_predictions_total", "Images predicted, by namespace, project and "
                            "whether the prediction is stored.", ["namespace", "project", "stored"])
USAGE_IMAGES = Counter("kubevision_usage_images_stored_total", "Training images stored (new content only), by "
                       "namespace and project.", ["namespace", "project"])
USAGE_IMAGE_BYTES = Counter("kubevision_usage_image_bytes_stored_total", "Bytes of the training images stored, by "
                            "namespace and project.", ["namespace", "project"])
USAGE_EXPORTS = Counter("kubevision_usage_exports_total", "Iteration exports (ONNX), by namespace and project.",
                        ["namespace", "project"])


def serve(host: str, port: int) -> WSGIServer:
    """The metrics on their own port, in a thread of this process; the API's port never serves them (they name
    routes and Triton timings, for the platform's Prometheus, not for the API's callers)."""
    server, _ = start_http_server(port, addr=host)
    return server
