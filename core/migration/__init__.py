"""Bringing projects over from a Custom Vision account (or any service that speaks its training API v3.3) into a
KubeVision namespace, through the training APIs of both: `client` (the HTTP calls, their waits and errors), `source`
(what a source project holds, read and checked), `copy` (one project brought over, resumable) and `domains` (the
KubeVision domain nearest to a source's)."""
