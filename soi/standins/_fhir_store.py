"""The resources the FHIR stand-in holds, and the transaction, batch and search logic.

No HTTP here: :mod:`soi.standins.fhir` serves it. Each resource is validated with the
R4B models of ``fhir.resources``; refusals are :class:`FhirError` with the issues of an
OperationOutcome.

References
----------
HL7 FHIR R4 (4.0.1): ``http.html`` 3.1.0.8.1 (conditional create), 3.1.0.11
(batch/transaction); ``search.html`` (token and reference parameters).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

__all__ = [
    "REFERENCE_PARAMETERS",
    "FhirError",
    "Issue",
    "ResourceStore",
    "batch_entry",
    "outcome",
    "parse_resource",
    "resource_class",
]

_STATUS_TEXT = {200: "200 OK", 201: "201 Created"}
#: Search parameters on references, and the elements each one searches.
REFERENCE_PARAMETERS = {"subject": ("subject",), "patient": ("subject", "patient", "for")}
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_ESCAPED = re.compile(r"\\(.)")


class Issue(NamedTuple):
    """One OperationOutcome issue: its IssueType code, the text and where it applies."""

    code: str
    diagnostics: str
    expression: str = ""


class FhirError(Exception):
    """A request refused with an HTTP status and the issues of an OperationOutcome."""

    def __init__(self, status: int, *issues: Issue) -> None:
        self.status, self.issues = status, issues
        super().__init__("; ".join(issue.diagnostics for issue in issues))


def outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": issue.code, "diagnostics": issue.diagnostics}
            | ({"expression": [issue.expression]} if issue.expression else {})
            for issue in issues
        ],
    }


def resource_class(resource_type: str) -> type[Resource] | None:
    """The R4B model of a resource type, or None when the name is no resource's."""
    try:
        model = get_fhir_model_class(resource_type)
    except ValueError:
        return None
    return model if issubclass(model, Resource) else None


def _validate(resource: object, where: str) -> list[Issue]:
    """The problems the R4B models find in one resource (none when it is valid)."""
    if not isinstance(resource, dict):
        return [Issue("required", "a resource (JSON object) is required here", where)]
    resource_type = str(resource.get("resourceType", ""))
    model = resource_class(resource_type)
    if model is None:
        text = f"resourceType {resource_type!r} is not a FHIR R4 resource type"
        return [Issue("structure", text, f"{where}.resourceType")]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return [
            Issue(
                "structure",
                f"{resource_type}: {error['msg']}",
                where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]),
            )
            for error in exc.errors()
        ]
    return []


def _split(text: str, separator: str, maxsplit: int = -1) -> list[str]:
    """Split a search value on ``separator`` where it is not escaped with ``\\``."""
    parts, index = [""], 0
    while index < len(text):
        step = 2 if text[index] == "\\" else 1
        if text[index] == separator and (maxsplit < 0 or len(parts) <= maxsplit):
            parts.append("")
        else:
            parts[-1] += text[index : index + step]
        index += step
    return parts


def _token_matches(resource: dict[str, Any], token: str) -> bool:
    """Whether an identifier of the resource matches ``[system|]value`` (``,``: or)."""
    identifiers = resource.get("identifier")
    identifiers = identifiers if isinstance(identifiers, list) else [identifiers]
    for alternative in _split(token, ",") if token else []:
        pieces = [_ESCAPED.sub(r"\1", piece) for piece in _split(alternative, "|", 1)]
        system, value = (pieces[0], pieces[1]) if len(pieces) == 2 else (None, pieces[0])
        for identifier in (i for i in identifiers if isinstance(i, dict)):
            if system is not None and identifier.get("system", "") != system:
                continue
            if (value or system is not None) and value in ("", identifier.get("value")):
                return True
    return False


def _references(node: Any) -> Iterator[str]:
    """Every ``reference`` string anywhere in a JSON structure."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def _resolved(node: Any, targets: dict[str, str]) -> Any:
    """A copy of ``node`` with references to Bundle ``fullUrl``\\ s made ``Type/id``."""
    if isinstance(node, dict):
        return {
            key: targets.get(value, value)
            if key == "reference" and isinstance(value, str)
            else _resolved(value, targets)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_resolved(item, targets) for item in node]
    return node


def parse_resource(body: bytes, resource_type: str) -> dict[str, Any]:
    """The JSON resource of a request body, which must be a ``resource_type``."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FhirError(400, Issue("structure", f"the body is not JSON: {exc}")) from None
    found = data.get("resourceType") if isinstance(data, dict) else type(data).__name__
    if found != resource_type:
        text = f"expected a {resource_type} resource, got resourceType {found!r}"
        raise FhirError(400, Issue("structure", text, "resourceType"))
    return dict(data)


def _check_entry(index: int, entry: object) -> list[Issue]:
    """What stops one transaction entry from being run."""
    where = f"Bundle.entry[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
        return [Issue("required", "the entry has no request", f"{where}.request")]
    method, url = entry["request"].get("method"), str(entry["request"].get("url") or "")
    if method not in ("POST", "PUT"):
        text = f"request.method {method!r} is not supported by this stand-in (POST or PUT)"
        return [Issue("not-supported", text, f"{where}.request.method")]
    issues = _validate(entry.get("resource"), f"{where}.resource")
    if issues:
        return issues
    resource_type = entry["resource"]["resourceType"]
    path, _, query = url.partition("?")
    if method == "POST":
        fits = path == resource_type and not query
    else:
        kind, _, resource_id = path.partition("/")
        fits = kind == resource_type and (bool(_ID.fullmatch(resource_id)) != bool(query))
    if not fits:
        text = f"request.url {url!r} does not fit a {method} of a {resource_type}"
        return [Issue("invalid", text, f"{where}.request.url")]
    return []


class ResourceStore:
    """The resources received, by type and id, and the transaction logic."""

    def __init__(self, store_dir: Path | None) -> None:
        self.lock = threading.RLock()
        self.resources: dict[str, dict[str, dict[str, Any]]] = {}
        self.store_dir = store_dir

    def search(self, resource_type: str, parameters: Iterable[tuple[str, str]]) -> list[Any]:
        """The stored resources of a type that match every search parameter."""
        found = list(self.resources.get(resource_type, {}).values())
        for name, value in parameters:
            if name == "identifier":
                found = [r for r in found if _token_matches(r, value)]
            elif name == "_id":
                found = [r for r in found if r["id"] in value.split(",")]
            elif name in REFERENCE_PARAMETERS:
                wanted = f"Patient/{value}" if name == "patient" and "/" not in value else value
                found = [r for r in found if self._refers(r, name, wanted)]
            else:
                text = f"search parameter {name!r} is not supported by this stand-in"
                raise FhirError(400, Issue("not-supported", text))
        return found

    @staticmethod
    def _refers(resource: dict[str, Any], name: str, wanted: str) -> bool:
        elements = [resource.get(element) for element in REFERENCE_PARAMETERS[name]]
        return any(
            reference == wanted or ("/" not in wanted and reference.endswith(f"/{wanted}"))
            for reference in _references(elements)
        )

    def _match(self, resource_type: str, query: str, where: str) -> str | None:
        """The id of the one resource a conditional query matches, if any."""
        matches = self.search(resource_type, parse_qsl(query, keep_blank_values=True))
        if len(matches) > 1:
            text = f"{len(matches)} {resource_type} resources match {query!r}"
            raise FhirError(412, Issue("multiple-matches", text, where))
        return str(matches[0]["id"]) if matches else None

    def transaction(self, entries: list[Any]) -> list[dict[str, Any]]:
        """Run the entries all or nothing; return the response entries."""
        issues = [issue for i, entry in enumerate(entries) for issue in _check_entry(i, entry)]
        if issues:
            raise FhirError(400, *issues)
        with self.lock:
            targets: dict[str, str] = {}
            plans: list[tuple[dict[str, Any], str, int]] = []
            for index, entry in enumerate(entries):
                resource, request = entry["resource"], entry["request"]
                resource_type = resource["resourceType"]
                path, _, query = str(request["url"]).partition("?")
                if request["method"] == "POST":
                    query = str(request.get("ifNoneExist") or "")
                if query:
                    found = self._match(resource_type, query, f"Bundle.entry[{index}].request")
                    target, status = (found, 200) if found else (uuid.uuid4().hex, 201)
                else:  # a POST without a condition, or a PUT to Type/id
                    target = path.partition("/")[2] or uuid.uuid4().hex
                    status = 200 if target in self.resources.get(resource_type, {}) else 201
                if entry.get("fullUrl"):
                    targets[str(entry["fullUrl"])] = f"{resource_type}/{target}"
                keep = request["method"] == "POST" and status == 200
                plans.append(({} if keep else resource, f"{resource_type}/{target}", status))
            dangling = {
                reference
                for resource, _, _ in plans
                for reference in _references(resource)
                if reference.startswith("urn:uuid:") and reference not in targets
            }
            if dangling:
                text = f"references to no entry of this Bundle: {', '.join(sorted(dangling))}"
                raise FhirError(400, Issue("invalid", text))
            return [self._commit(resource, at, status, targets) for resource, at, status in plans]

    def _commit(
        self, resource: dict[str, Any], at: str, status: int, targets: dict[str, str]
    ) -> dict[str, Any]:
        """Store one planned entry (an empty ``resource`` stores nothing)."""
        resource_type, _, resource_id = at.partition("/")
        stored = self.resources.setdefault(resource_type, {})
        if resource:
            version = int(stored.get(resource_id, {}).get("meta", {}).get("versionId", 0)) + 1
            now = datetime.now(UTC).isoformat(timespec="milliseconds")
            resource = _resolved(resource, targets) | {"id": resource_id}
            resource["meta"] = (resource.get("meta") or {}) | {
                "versionId": str(version),
                "lastUpdated": now,
            }
            self._write(resource_type, resource_id, resource)
            stored[resource_id] = resource
        meta = stored[resource_id]["meta"]
        location = f"{at}/_history/{meta['versionId']}"
        return {"response": {"status": _STATUS_TEXT[status], "location": location}}

    def _write(self, resource_type: str, resource_id: str, resource: dict[str, Any]) -> None:
        if self.store_dir is None:
            return
        path = self.store_dir / resource_type / f"{resource_id}.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(resource, ensure_ascii=False, indent=2), encoding="utf-8")
        except OSError as exc:
            raise FhirError(500, Issue("exception", f"cannot write {path}: {exc}")) from exc


def batch_entry(store: ResourceStore, entry: object) -> dict[str, Any]:
    """One batch entry run as a transaction of its own; a refusal becomes its response."""
    try:
        [answer] = store.transaction([entry])
    except FhirError as exc:
        return {"response": {"status": str(exc.status), "outcome": outcome(exc.issues)}}
    return answer
