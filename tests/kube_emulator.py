"""
KubeEmulator: kmock 0.8's ``KubernetesEmulator``, made strict enough to run a real kopf
operator against it in pytest. What it fixes or adds (each one was a gap with kopf 1.45):

* server-set metadata on create: uid, resourceVersion (one cluster-wide counter), generation,
  creationTimestamp, namespace, apiVersion/kind; PUT/PATCH cannot change them;
* a failed JSON-patch ``test`` op (kopf's finalizer patches) and other bad patches: 422, not 500;
  a stale ``metadata.resourceVersion`` in a PUT or merge-patch: 409;
* ``/status`` changes only ``.status``, the main resource never changes ``.status`` (if the resource
  has a status subresource); ``generation`` grows only when something outside metadata/status
  changes, and once when deletionTimestamp is set (as k8s does);
* deletion with finalizers: deletionTimestamp is set, the object stays until its finalizers are
  empty; then dependents whose owners (ownerReferences) are all gone are deleted (background GC);
* watches: ``?watch=`` any true value the API server takes (``True`` from kubernetes_asyncio);
  ``?resourceVersion=N`` replays all events after N (410 if too old), no gap between the
  replay and the live stream; ``timeoutSeconds``, ``sendInitialEvents``, label/field selectors;
* PUT (replace) is served; no-op writes keep the resourceVersion and emit no watch-event;
* CRDs from YAML files; kmock's bundled built-in resources (batch, apps, v1, coordination, ...);
* bounded request logs, request matching in O(1) of the log size, and an RBAC-style log of
  (verb, group, resource) plus ``missing_permissions(role_rules)``;
* per-request work that does not grow with the number of objects of other resources: lists and
  watches look at their resource's objects only, a watch resumption at the events after its
  resourceVersion only, garbage collection at the deleted owner's dependents only.

It relies on kmock 0.8 internals (``_objects``, ``_requests``, ``_payloads``, ``_lock``): pin kmock==0.8.
"""

import asyncio
import collections
import copy
import datetime
import itertools
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import jsonpatch
import kmock
import yaml
from kmock._internal import aiobus, dicts

SERVER_SET = (
    "uid",
    "creationTimestamp",
    "generation",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)  # metadata that only the server sets
GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}  # what the API server's strconv.ParseBool takes for ?watch=
ALL_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rbac_verb(request: kmock.Request) -> str:
    if request.action == kmock.action.WATCH:
        return "watch"
    return {
        "GET": "get" if request.name else "list",
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if request.name else "deletecollection",
    }.get(request.method.value, request.method.lower())


def _match_labels(selector: str, body: Mapping[str, Any]) -> bool:
    """Label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``, ``a notin (x,y)``."""
    labels = body.get("metadata", {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in re.split(r",(?![^()]*\))", selector))):
        if m := re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", term):
            ok = (labels.get(m[1]) in {v.strip() for v in m[3].split(",")}) == (m[2] == "in")
        elif m := re.fullmatch(r"(.+?)\s*(!=|==|=)\s*(.*)", term):
            ok = (labels.get(m[1]) == m[3]) == (m[2] != "!=")
        else:
            ok = (term.lstrip("!") in labels) != term.startswith("!")
        if not ok:
            return False
    return True


def _match_fields(selector: str, body: Mapping[str, Any]) -> bool:
    """Field selectors on any dotted path: ``metadata.name=x``, ``status.phase!=Done``."""
    for path, op, value in re.findall(r"([^,=!]+)(!=|==|=)([^,]*)", selector):
        actual: Any = body
        for part in path.strip().split("."):
            actual = actual.get(part) if isinstance(actual, Mapping) else None
        if (str("" if actual is None else actual) == value) != (op != "!="):
            return False
    return True


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    crds: Iterable[str | Path] = ()  # CRD YAML files to serve, besides kmock's bundled built-ins
    log_limit: int = 300  # requests kept for kmock[...] assertions
    event_limit: int = 5000  # watch-events kept for ?resourceVersion=N resumption (older: 410)

    permissions: set = attrs.field(init=False, factory=set)  # distinct (verb, group, resource), not by kmock's client
    request_counts: collections.Counter = attrs.field(init=False, factory=collections.Counter)  # the same, counted
    created: collections.Counter = attrs.field(init=False, factory=collections.Counter)  # plural -> successful POSTs
    create_requests: collections.Counter = attrs.field(init=False, factory=collections.Counter)  # answered or not
    _rv: int = attrs.field(init=False, default=0)  # the cluster-wide resourceVersion counter
    _dropped_rv: int = attrs.field(init=False, default=0)  # the newest event that fell off _events
    _events: collections.deque = attrs.field(init=False, default=None)  # (rv, key, event, old body)
    _bus: aiobus.Bus = attrs.field(init=False, factory=aiobus.Bus)  # the same, live, for watchers
    _results: dict = attrs.field(init=False, factory=dict)  # request -> response body of a write
    _counted: int = attrs.field(init=False, default=0)  # objects known to carry server metadata (_adopt_seeded)
    _keys: dict = attrs.field(init=False, factory=dict)  # resource -> {key: None} of its objects, deleted or not
    _live_uids: set = attrs.field(init=False, factory=set)  # of the objects not deleted
    _dependents: dict = attrs.field(init=False, factory=dict)  # owner uid -> keys of objects that name it
    _declared: tuple = attrs.field(init=False, default=((), set()))  # (what it was built from, the resources)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()  # kmock's discovery endpoints and fallback reactions
        self._events = collections.deque(maxlen=self.event_limit)
        self.resources.load_bundled()
        self.load_crds(*self.crds)
        self.fallback[kmock.method.PUT] << self._serve_result  # kmock has no "replace" action

    def load_crds(self, *paths: str | Path) -> None:
        """Serve the resources of CustomResourceDefinition YAML files (all served versions)."""
        for path in paths:
            for crd in yaml.safe_load_all(Path(path).read_text()):
                if crd and crd.get("kind") == "CustomResourceDefinition":
                    spec, names = crd["spec"], crd["spec"]["names"]
                    for version in (v for v in spec["versions"] if v.get("served", True)):
                        self.resources[kmock.resource(spec["group"], version["name"], names["plural"])] = (
                            kmock.ResourceInfo(
                                kind=names["kind"],
                                singular=names.get("singular", names["kind"].lower()),
                                namespaced=spec.get("scope") == "Namespaced",
                                verbs=ALL_VERBS,
                                shortnames=names.get("shortNames", []),
                                categories=names.get("categories", []),
                                subresources=set(version.get("subresources") or {}),
                            )
                        )  # status, scale

    def missing_permissions(self, rules: Iterable[Mapping[str, Any]]) -> set[tuple[str, str, str]]:
        """The (verb, group, resource) used so far that a Role's/ClusterRole's ``rules`` do not grant."""

        def ok(want: str, rule: Mapping[str, Any], field: str) -> bool:
            return want in rule.get(field, []) or "*" in rule.get(field, [])

        return {
            (verb, group, res)
            for verb, group, res in self.permissions
            if not any(ok(verb, r, "verbs") and ok(group, r, "apiGroups") and ok(res, r, "resources") for r in rules)
        }

    # -- requests -------------------------------------------------------------------------------
    async def _handle(self, request: kmock.Request) -> Any:
        if request.method == "GET" and request.params.get("watch") in GO_TRUE and request.action != kmock.action.WATCH:
            request = attrs.evolve(request, action=kmock.action.WATCH)  # kmock knows only ?watch=true
        for log in [self._requests] + [p._requests for p in self._payloads]:  # bound the logs
            if len(log) > 2 * self.log_limit:
                del log[: -self.log_limit]
        if (res := request.resource) is None or res.plural is None:  # not a resource URL
            return await self._dispatch(request)
        # the plural, with '/subresource' if any: 'iterations/status'
        resource = res.plural + (f"/{request.subresource}" if request.subresource else "")
        # the test's own requests (kmock.get()/.post()/...) need no RBAC and create nothing the operator did
        by_operator = not request.headers.get("User-Agent", "").startswith("kmock/")
        if by_operator:
            self.permissions.add((_rbac_verb(request), res.group, resource))
            self.request_counts[(_rbac_verb(request), res.group, resource)] += 1
            if request.method == "POST":
                self.create_requests[resource] += 1
        try:
            async with self._lock:
                self._adopt_seeded()
                if request.method in ("POST", "PUT", "PATCH", "DELETE"):
                    self._results[request] = await self._mutate(request)
                    if request.method == "POST" and by_operator:  # a 409 raised above: it counts nowhere
                        self.created[resource] += 1
            return await self._dispatch(request)  # user-defined reactions first, then our _serve_*()
        except kmock.KubernetesError as e:
            if e.status >= 500:
                raise
            return await self._render_error(e)  # a normal API answer: not in kmock.errors
        finally:
            self._results.pop(request, None)

    async def _dispatch(self, request: kmock.Request) -> Any:
        """
        kmock's RawHandler._handle() (skipping KubernetesEmulator's: the state is ours), but faster:
        kmock 0.8 checks `request in reaction` by re-filtering the whole request log for each
        reaction (O(log size) per request); here, each reaction is matched against this request only.
        So views over history, e.g. ``kmock['get'][:1] << ...``, do not work as reactions.
        """
        width = max((len(p.priorities) for p in self._payloads), default=0)
        ordered = sorted(
            self._payloads, key=lambda p: tuple(-x for x in p.priorities) + (0,) * (width - len(p.priorities))
        )
        log, self._requests = self._requests, [request]  # synchronous: restored before any await
        try:
            matching = [p for p in ordered if not p._disabled.is_set() and request in p._source]
        finally:
            self._requests = log
        for payload in matching:
            try:
                return await payload(request)
            except kmock.ReactionMismatchError:  # a depleted reaction (or one that returned None)
                payload._disabled.set()
            except NotImplementedError:
                pass
        raise NotImplementedError("No reaction matches the request; add one: kmock[...] << payload")

    async def _serve_result(self, request: kmock.Request) -> Any:
        if request not in self._results:  # e.g. PUT to a non-resource URL; never return None here:
            raise kmock.KubernetesEndpointNotFoundError()  # kmock would disable this reaction
        return self._results[request]

    _serve_create = _serve_update = _serve_delete = _serve_result

    # -- writes (under self._lock) --------------------------------------------------------------
    async def _mutate(self, request: kmock.Request) -> dict[str, Any]:
        res, namespace, name, data = request.resource, request.namespace, request.name, request.data
        if res not in self._get_resources():
            raise kmock.KubernetesResourceNotFoundError()
        if request.method == "POST" and name is None:
            return await self._create(res, namespace, copy.deepcopy(data or {}))
        if name is None or request.method == "POST" or request.subresource not in (None, "status"):
            raise kmock.KubernetesError(
                405,
                "MethodNotAllowed",
                "Not emulated (deletecollection, pods/eviction, deployments/scale, ...): add a reaction for it",
            )
        key = (res, namespace, name)
        if key not in self._objects or self._objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        old = copy.deepcopy(self._objects[key].raw)
        if request.method == "DELETE":
            return await self._delete(key, old)
        try:
            new = (
                copy.deepcopy(data)
                if request.method == "PUT"
                else jsonpatch.apply_patch(old, data)
                if "json-patch" in request.headers.get("Content-Type", "")
                else copy.deepcopy(dicts.merge_patch_dict(old, data))
            )  # merge- & strategic-merge-patch
        except (jsonpatch.JsonPatchException, ValueError, TypeError, AttributeError) as e:
            raise kmock.KubernetesError(422, "Invalid", f"The request is invalid: {e}") from e
        sent_rv = data.get("metadata", {}).get("resourceVersion") if isinstance(data, dict) else None
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:  # optimistic concurrency
            raise kmock.KubernetesError(
                409,
                "Conflict",
                "The object has been modified; please apply your changes to the latest version and try again",
            )
        return await self._update(key, old, new, status_only=request.subresource == "status")

    async def _create(self, res: kmock.resource, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        info = self.resources[res] if res in self.resources else kmock.ResourceInfo()
        key = (res, None if info.namespaced is False else namespace or meta.get("namespace"), meta.get("name"))
        if not key[2]:
            raise kmock.KubernetesError(422, "Invalid", "metadata.name: Required value")
        if key in self._objects and not self._objects[key].deleted:
            raise kmock.KubernetesError(409, "AlreadyExists", f'{res.plural} "{key[2]}" already exists')
        for field in SERVER_SET:
            meta.pop(field, None)
        meta.update(
            uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1, **({"namespace": key[1]} if key[1] else {})
        )
        body.setdefault("apiVersion", f"{res.group}/{res.version}".lstrip("/"))
        body.setdefault("kind", info.kind or res.plural.capitalize())
        if "status" in info.subresources:
            body.pop("status", None)  # can be set only via /status, as in k8s
        await self._emit("ADDED", key, body)
        return body

    async def _update(self, key: tuple, old: dict[str, Any], new: dict[str, Any], status_only: bool) -> dict[str, Any]:
        has_status = key[0] in self.resources and "status" in self.resources[key[0]].subresources
        if status_only or has_status:  # /status takes only .status; the main resource never does
            new, status = (copy.deepcopy(old), new.get("status")) if status_only else (new, old.get("status"))
            new.pop("status", None)
            new.update({} if status is None else {"status": status})
        new.update(apiVersion=old["apiVersion"], kind=old["kind"])  # immutable; optional in a PUT
        meta, old_meta = new.setdefault("metadata", {}), old["metadata"]
        for field in SERVER_SET + ("name", "namespace"):  # immutable for clients
            meta.pop(field, None)
            meta.update({field: old_meta[field]} if field in old_meta else {})
        if old_meta.get("deletionTimestamp") and set(meta.get("finalizers", [])) - set(old_meta.get("finalizers", [])):
            raise kmock.KubernetesError(422, "Invalid", "no new finalizers can be added if the object is being deleted")
        if new == old:
            return old  # a no-op: k8s keeps the resourceVersion and sends no watch-event
        skipped = ("metadata", "status") if has_status else ("metadata",)
        if any(new.get(k) != old.get(k) for k in set(new) | set(old) if k not in skipped):
            meta["generation"] = old_meta.get("generation", 0) + 1  # the spec (or alike) has changed
        await self._emit("MODIFIED", key, new, old)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            await self._remove(key, new)  # the last finalizer is gone: delete for real
        return new

    async def _delete(self, key: tuple, old: dict[str, Any]) -> dict[str, Any]:
        meta = old["metadata"]
        if not meta.get("finalizers"):
            await self._remove(key, old)
            return old
        if meta.get("deletionTimestamp"):
            return old  # already being deleted: waiting for the finalizers
        new = copy.deepcopy(old)
        new["metadata"].update(
            deletionTimestamp=_now(), deletionGracePeriodSeconds=0, generation=meta.get("generation", 0) + 1
        )
        await self._emit("MODIFIED", key, new, old)
        return new

    async def _remove(self, key: tuple, body: dict[str, Any]) -> None:
        self._objects[key].delete()  # kmock's soft-deletion: .history stays for assertions
        await self._emit("DELETED", key, copy.deepcopy(body))
        uid = body["metadata"]["uid"]
        self._live_uids.discard(uid)
        # Garbage collection (background propagation): delete the dependents with no owners left.
        for child_key in sorted(self._dependents.pop(uid, ()), key=str):
            if child_key not in self._objects or self._objects[child_key].deleted:
                continue
            child = self._objects[child_key].raw
            owners = {r.get("uid") for r in child["metadata"].get("ownerReferences") or []}
            if uid in owners and not owners & self._live_uids:
                await self._delete(child_key, copy.deepcopy(child))

    async def _emit(self, type_: str, key: tuple, body: dict[str, Any], old: dict[str, Any] | None = None) -> None:
        """Give the change a new resourceVersion, store it, remember it, send it to the watchers."""
        self._rv += 1
        body["metadata"]["resourceVersion"] = str(self._rv)
        if type_ != "DELETED" and key in self._objects:
            self._objects[key].history.append(body)
        elif type_ != "DELETED":
            self._objects[key] = body
            self._counted += self._counted == len(self._objects) - 1  # still in step: no scan needed
        if type_ != "DELETED":
            self._index(key, body)
        if len(self._events) == self._events.maxlen:
            self._dropped_rv = self._events[0][0]
        self._events.append(event := (self._rv, key, {"type": type_, "object": body}, old))
        await self._bus.put(event)

    def _index(self, key: tuple, body: Mapping[str, Any]) -> None:
        """Remember a live object by resource, by uid, and under each of its owners."""
        self._keys.setdefault(key[0], {})[key] = None
        meta = body.get("metadata", {})
        self._live_uids.add(meta.get("uid"))
        for owner in meta.get("ownerReferences") or []:
            self._dependents.setdefault(owner.get("uid"), set()).add(key)

    def _adopt_seeded(self) -> None:
        """Add the server-set metadata to objects put by tests directly into ``kmock.objects[...]``, and index them.
        Only when the number of objects moved without a request: scanning them all on every request is quadratic at
        scale."""
        if len(self._objects) == self._counted:
            return
        self._counted = len(self._objects)
        self._keys.clear()
        self._live_uids.clear()
        self._dependents.clear()
        for key, obj in self._objects.items():
            _, namespace, name = key
            if not obj.deleted and "uid" not in obj.raw.get("metadata", {}):
                self._rv += 1
                obj["metadata"] = dict(
                    obj.raw.get("metadata", {}),
                    name=name,
                    uid=str(uuid.uuid4()),
                    generation=1,
                    resourceVersion=str(self._rv),
                    creationTimestamp=_now(),
                    **({"namespace": namespace} if namespace else {}),
                )
            if not obj.deleted:
                self._index(key, obj.raw)

    def _live(self, resource: kmock.resource) -> Iterable[tuple[tuple, Any]]:
        """The live objects of one resource, without a look at any other's."""
        for key in self._keys.get(resource, ()):
            if not (obj := self._objects[key]).deleted:
                yield key, obj

    def _get_resources(self) -> list[kmock.resource]:
        """kmock's: the declared resources, the reactions', the objects'; without walking every reaction and every
        object on each request. The first two are kept while their numbers stay, the last come from the index."""
        stamp = (len(self._resources), len(self._payloads))
        if self._declared[0] != stamp:
            self._declared = (stamp, set(kmock.KubernetesScaffold._get_resources(self)))
        return list(self._declared[1] | self._keys.keys())

    # -- reads ----------------------------------------------------------------------------------
    async def _serve_fetch(self, request: kmock.Request) -> Any:
        """One object, by its key: kmock's own looks at every object for it."""
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self._objects or self._objects[key].deleted:
                raise kmock.KubernetesObjectNotFoundError()
            return self._objects[key].raw

    def _selected(self, request: kmock.Request, key: tuple, body: Mapping[str, Any] | None) -> bool:
        res, namespace, name = key
        return (
            body is not None
            and res == request.resource
            and request.namespace in (None, namespace)
            and request.name in (None, name)
            and _match_labels(request.params.get("labelSelector", ""), body)
            and _match_fields(request.params.get("fieldSelector", ""), body)
        )

    async def _serve_list(self, request: kmock.Request) -> Any:
        if request.resource not in self._get_resources():
            raise kmock.KubernetesResourceNotFoundError()
        kind = self.resources[request.resource].kind if request.resource in self.resources else None
        async with self._lock:
            return {
                "apiVersion": f"{request.resource.group}/{request.resource.version}".lstrip("/"),
                "kind": f"{kind or 'Object'}List",
                "metadata": {"resourceVersion": str(self._rv)},
                "items": [
                    obj.raw for key, obj in self._live(request.resource) if self._selected(request, key, obj.raw)
                ],
            }

    async def _serve_watch(self, request: kmock.Request) -> Any:
        yield b""  # send the headers now, even if no events come
        params = request.params
        since = int(params["resourceVersion"]) if params.get("resourceVersion", "").isdigit() else 0
        if since and since < self._dropped_rv:  # the events after it are lost: the client must re-list
            yield {
                "type": "ERROR",
                "object": {
                    "apiVersion": "v1",
                    "kind": "Status",
                    "status": "Failure",
                    "code": 410,
                    "reason": "Expired",
                    "message": "too old resource version",
                },
            }
            return
        async with self._lock:  # no event can slip in between the replay and the live stream
            if since:  # the events after it, found from the newest back
                replay = list(itertools.takewhile(lambda event: event[0] > since, reversed(self._events)))[::-1]
            else:
                replay = [
                    (0, key, {"type": "ADDED", "object": obj.raw}, None) for key, obj in self._live(request.resource)
                ]
            marker, current_rv = await self._bus.mark(), self._rv
        try:
            for event in replay:
                if (filtered := self._filter_event(request, event)) is not None:
                    yield filtered
            if params.get("sendInitialEvents") == "true":
                yield {
                    "type": "BOOKMARK",
                    "object": {
                        "metadata": {
                            "resourceVersion": str(current_rv),
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        }
                    },
                }
            loop = asyncio.get_running_loop()
            deadline = loop.time() + float(params["timeoutSeconds"]) if "timeoutSeconds" in params else None
            stream = aiter(self._bus.stream(since=marker))
            while True:
                try:  # NB: not asyncio.timeout() around the yields: it would cancel kmock's response writer
                    event = await asyncio.wait_for(anext(stream), None if deadline is None else deadline - loop.time())
                except TimeoutError:
                    return  # the server-side timeout: the client re-watches from its last resourceVersion
                if (filtered := self._filter_event(request, event)) is not None:
                    yield filtered
        finally:
            await self._bus.unmark(marker)

    def _filter_event(self, request: kmock.Request, event: tuple) -> dict[str, Any] | None:
        _, key, raw_event, old = event
        new_ok, old_ok = self._selected(request, key, raw_event["object"]), self._selected(request, key, old)
        if raw_event["type"] == "MODIFIED" and new_ok != old_ok:  # moved into/out of the selectors
            return {"type": "ADDED" if new_ok else "DELETED", "object": raw_event["object"]}
        return raw_event if new_ok else None
