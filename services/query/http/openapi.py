"""The OpenAPI 3.1 description of the dashboard's HTTP API (a test keeps it true to the routes)."""

from __future__ import annotations

from typing import Any

from duhub.domain import metrics as m

Json = dict[str, Any]


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _param(name: str, where: str, description: str, required: bool = False, **schema: Any) -> Json:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _ok(schema: Json, description: str = "OK", media: str = "application/json") -> Json:
    return {"200": {"description": description, "content": {media: {"schema": schema}}}}


def _errors(*codes: int) -> Json:
    text = {
        400: "a parameter is wrong or unknown; the message names it",
        401: "no credentials, or unknown ones (a hub with --tokens or --tls-dir)",
        403: "a unit outside the caller's scope",
        404: "unknown campaign or unit",
        503: "the read model is unreachable, or the server holds all the connections it may",
    }
    return {
        str(c): {
            "description": text[c],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        for c in codes
    }


# What a route answering for a scope may say besides 200.
API_ERRORS = (400, 401, 403, 404, 503)
# An id: text without NUL, nor whitespace at either end, which no id holds (refused 400
# naming the parameter); empty where the parameter may be left out.
ID = {"type": "string", "pattern": "^([^\\s\\x00]([^\\x00]*[^\\s\\x00])?)?$"}
SCOPE = _param("scope", "query", "unit id: only its subtree counts; empty for the whole city", **ID)
# A time parameter: a date (midnight UTC) or an RFC 3339 time, nothing else.
WHEN = {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}]}
AS_OF = _param(
    "as_of", "query", "answer with what the hub had recorded then (RFC 3339 or date)", **WHEN
)
# The moments a coverage question is asked at (both coverage routes).
ON = _param(
    "on",
    "query",
    "the coverage on this day (event time): only visits that occurred "
    "before its end, in time_zone, count; not with occurred_before",
    type="string",
    format="date",
)
OCCURRED_BEFORE = _param(
    "occurred_before",
    "query",
    "only visits that occurred (event time) before this moment count "
    "(RFC 3339, or a date: its midnight); not with on",
    **WHEN,
)
COVERAGE_ZONE = _param(
    "time_zone",
    "query",
    "the zone on, and a bare as_of or occurred_before date, are read in:"
    " an IANA name (Asia/Shanghai) or an offset (+08:00); left out for UTC",
    type="string",
)
TIME = {"type": "string", "description": "RFC 3339 time"}
INT = {"type": "integer"}
TALLY = {
    "targets": INT,
    "covered": INT,
    "ratio": {"type": "number"},
    "full": {"type": "boolean"},
}
NAMED_UNIT = {
    "type": "object",
    "properties": {
        "unitId": {"type": "string"},
        "name": {"type": "string"},
        "level": _ref("Level"),
        "parentId": {"type": "string"},
        "parentName": {"type": "string"},
        "sample": {"type": "boolean", "description": "sample reference data, not real"},
    },
}


def _object(required: list[str], **properties: Json) -> Json:
    return {"type": "object", "required": required, "properties": properties}


SCHEMAS: Json = {
    "Error": _object(["error"], error={"type": "string", "description": "names the field"}),
    "Level": {
        "type": "string",
        "enum": ["LEVEL_CITY", "LEVEL_COUNTY", "LEVEL_TOWNSHIP", "LEVEL_VILLAGE"],
    },
    "Tier": {"type": "string", "enum": ["TIER_TASK_FORCE", "TIER_CITY", "TIER_COUNTY"]},
    "NamedUnit": NAMED_UNIT,
    "Unit": _object(
        ["unitId", "parentId", "level", "name"],
        unitId={"type": "string"},
        parentId={"type": "string"},
        level=_ref("Level"),
        name={"type": "string"},
        sample={"type": "boolean", "description": "sample reference data, not real"},
        localCode={"type": "boolean", "description": "a local id, no GB/T 2260 code"},
        childCount=INT,
    ),
    "Group": _object(
        ["groupId", "name", "tier", "targetUnitIds"],
        groupId={"type": "string"},
        name={"type": "string"},
        tier=_ref("Tier"),
        targetUnitIds={"type": "array", "items": {"type": "string"}},
        targets={
            "type": "array",
            "items": _ref("NamedUnit"),
            "description": "the targets, named (GET /api/campaigns/{campaignId} only)",
        },
    ),
    "Campaign": _object(
        ["campaignId", "name", "area", "startsAt", "endsAt", "groups"],
        campaignId={"type": "string"},
        name={"type": "string"},
        area={"type": "string"},
        startsAt=TIME,
        endsAt=TIME,
        source={"type": "string"},
        groups={"type": "array", "items": _ref("Group")},
    ),
    "Coverage": _object(
        ["campaignId", "full", "tiers", "groups", "counties", "totals"],
        campaignId={"type": "string"},
        name={"type": "string"},
        scopeUnitId={"type": "string"},
        full={"type": "boolean", "description": "every group's targets covered (督导全覆盖)"},
        asOf=TIME,
        occurredBefore={
            "type": "string",
            "description": "RFC 3339 time: only visits that occurred before it counted (on, "
            "occurred_before)",
        },
        totals={
            "type": "object",
            "properties": {k: TALLY[k] for k in ("targets", "covered", "ratio")},
        },
        tiers={
            "type": "array",
            "items": {"type": "object", "properties": {"tier": _ref("Tier"), **TALLY}},
        },
        groups={
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "groupId": {"type": "string"},
                    "name": {"type": "string"},
                    "tier": _ref("Tier"),
                    **TALLY,
                    "uncoveredUnitIds": {"type": "array", "items": {"type": "string"}},
                    "uncoveredUnits": {
                        "type": "array",
                        "items": _ref("NamedUnit"),
                        "description": "the first uncovered units named (uncovered_named)",
                    },
                    "coveredUnitIds": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "the targets inside the scope that are covered",
                    },
                    "fullAt": {**TIME, "description": "when the last target was first covered"},
                },
            },
        },
        counties={
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "unitId": {"type": "string"},
                    "name": {"type": "string"},
                    **TALLY,
                    "fullAt": TIME,
                },
            },
        },
    ),
    "CoveringVisit": _object(
        ["groupId", "unitId", "unitName", "occurredAt", "recordedAt"],
        groupId={"type": "string"},
        unitId={"type": "string"},
        unitName={"type": "string", "description": "empty for a unit the hub does not know"},
        eventId={
            "type": "string",
            "description": "the visit that first covered the target; empty where a read model "
            "made before visits were named cannot tell which (the times are then the target's)",
        },
        source={"type": "string"},
        seq=INT,
        occurredAt={**TIME, "description": "when the target was first covered (event time)"},
        recordedAt=TIME,
        partition=INT,
        offset=INT,
    ),
    "CoverageExplanation": _object(
        ["campaignId", "targets", "covered", "visits", "truncated"],
        campaignId={"type": "string"},
        groupId={"type": "string", "description": "as asked; empty for every group"},
        targets={**INT, "description": "the scope's targets (of the group), as coverage counts"},
        covered={**INT, "description": "how many of them are covered: the whole figure"},
        visits={
            "type": "array",
            "items": _ref("CoveringVisit"),
            "description": "the first `limit` covered targets' covering visits, in target order",
        },
        truncated={"type": "boolean", "description": "more are covered than listed"},
        asOf=TIME,
        occurredBefore=TIME,
    ),
    "DeadLetter": _object(
        ["partition", "offset", "eventId", "source", "reason"],
        partition=INT,
        offset={**INT, "description": "where the refused record lies in the log"},
        eventId={"type": "string", "description": "empty when the record names no valid one"},
        source={"type": "string"},
        recordedAt={**TIME, "description": "when the hub recorded it; absent when unknown"},
        reason={"type": "string", "description": "why it was refused, naming the field"},
    ),
    "DeadLetters": _object(
        ["deadLetters", "total", "truncated"],
        deadLetters={"type": "array", "items": _ref("DeadLetter"), "description": "newest first"},
        total={**INT, "description": "every one asked about, listed or not"},
        truncated={"type": "boolean", "description": "more than limit were found"},
    ),
    "StatisticsRow": _object(
        ["key", "values"],
        key={
            "type": "string",
            "description": "empty when not grouped; the child unit id or period start",
        },
        name={"type": "string", "description": "the child unit's name (by unit)"},
        values={"type": "object", "additionalProperties": INT},
        events={
            "type": "object",
            "additionalProperties": INT,
            "description": "how many events make up each value",
        },
    ),
    "Statistics": _object(
        ["rows", "metrics"],
        rows={"type": "array", "items": _ref("StatisticsRow")},
        own={
            "allOf": [_ref("StatisticsRow")],
            "description": "by unit only: the scope's own events, in no child's row (key and "
            "name the scope's); read with the rows, with them it adds up to the scope's figures",
        },
        metrics={"type": "array", "items": {"type": "string", "enum": list(m.ALL)}},
        scopeUnitId={"type": "string"},
        area={"type": "string"},
        groupBy={"type": "string"},
        timeZone={"type": "string", "description": "as asked; left out for UTC"},
        **{"from": TIME, "to": TIME},
        asOf=TIME,
    ),
}


def document() -> Json:
    """Return the OpenAPI document of every route the server answers."""
    campaign_id = _param("campaignId", "path", "campaign id", **ID)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "duhub dashboard API",
            "version": "1",
            "description": (
                "Coverage and statistics for the city command, as the gRPC QueryService answers"
                " them, in its canonical JSON, with unit names joined in. Times are RFC 3339 or"
                " dates (midnight UTC, or in time_zone where one is given); periods are"
                " half-open [from, to) in event time."
                ' Errors are {"error": "FIELD: reason"}: 400 or 404; 401 and 403 on a hub'
                " with credentials; 503 when the read model is unreachable. groupBy, asOf"
                " and timeZone are accepted for group_by, as_of and time_zone."
            ),
        },
        "paths": {
            "/": {"get": {"summary": "the dashboard page", **_static("text/html")}},
            "/app.js": {"get": {"summary": "the page's script", **_static("text/javascript")}},
            "/app.css": {"get": {"summary": "the page's styles", **_static("text/css")}},
            "/healthz": {
                "get": {
                    "summary": "liveness (version: to callers with credentials where asked)",
                    "responses": _ok(_object(["status"], status={"type": "string"}, version=INT))
                    | _errors(503),
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "this document",
                    "responses": _ok({"type": "object"}) | _errors(503),
                }
            },
            "/api/campaigns": {
                "get": {
                    "summary": "every campaign",
                    "parameters": [
                        _param(
                            "omit_targets",
                            "query",
                            "true: the groups without their targetUnitIds (a listing that does "
                            "not grow with the targets; /api/campaigns/{campaignId} names them)",
                            type="string",
                            enum=["", "true", "false"],
                        )
                    ],
                    "responses": _ok(
                        _object(
                            ["campaigns"], campaigns={"type": "array", "items": _ref("Campaign")}
                        )
                    )
                    | _errors(400, 401, 503),
                }
            },
            "/api/campaigns/{campaignId}": {
                "get": {
                    "summary": "one campaign, its groups' targets named",
                    "parameters": [campaign_id],
                    "responses": {**_ok(_ref("Campaign")), **_errors(400, 401, 404, 503)},
                }
            },
            "/api/campaigns/{campaignId}/coverage": {
                "get": {
                    "summary": "coverage per tier, group and county; uncovered units named",
                    "parameters": [
                        campaign_id,
                        SCOPE,
                        AS_OF,
                        _param(
                            "uncovered_named",
                            "query",
                            "name at most this many uncovered units a group in uncoveredUnits "
                            "(their first); uncoveredUnitIds still lists them all. Left out: "
                            "every one is named",
                            type="string",
                            pattern="^[0-9]{1,9}$",
                        ),
                        ON,
                        OCCURRED_BEFORE,
                        COVERAGE_ZONE,
                    ],
                    "responses": {**_ok(_ref("Coverage")), **_errors(*API_ERRORS)},
                }
            },
            "/api/campaigns/{campaignId}/coverage/visits": {
                "get": {
                    "summary": "which visit first covered each covered target (lineage)",
                    "parameters": [
                        campaign_id,
                        SCOPE,
                        _param("group", "query", "only this group's targets; empty for all", **ID),
                        AS_OF,
                        ON,
                        OCCURRED_BEFORE,
                        COVERAGE_ZONE,
                        _param(
                            "limit",
                            "query",
                            "list at most this many covered targets (0 or left out: 1000; more "
                            "than 50000 is refused); covered and targets are the whole figure",
                            type="string",
                            pattern="^[0-9]{1,9}$",
                        ),
                    ],
                    "responses": {**_ok(_ref("CoverageExplanation")), **_errors(*API_ERRORS)},
                }
            },
            "/api/statistics": {
                "get": {
                    "summary": "figures for a scope, area and period, optionally grouped",
                    "parameters": [
                        _param(
                            "metric",
                            "query",
                            (
                                "metric names, repeated or comma-separated; at least one; "
                                "each is answered once"
                            ),
                            required=True,
                            type="array",
                            items={"type": "string", "enum": list(m.ALL)},
                        ),
                        SCOPE,
                        _param("area", "query", "policy area, e.g. ecology; empty for all", **ID),
                        _param(
                            "from", "query", "period start, inclusive (RFC 3339 or date)", **WHEN
                        ),
                        _param("to", "query", "period end, exclusive (RFC 3339 or date)", **WHEN),
                        _param(
                            "group_by",
                            "query",
                            "child units or a period (needs from and to); empty for none",
                            type="string",
                            enum=["", "unit", "day", "week", "month", "quarter", "year"],
                        ),
                        AS_OF,
                        _param(
                            "time_zone",
                            "query",
                            "the zone periods start in, keyed by its dates, and bare dates in"
                            " from, to and as_of are read in: an IANA name (Asia/Shanghai) or an"
                            " offset (+08:00); left out for UTC",
                            type="string",
                        ),
                    ],
                    "responses": {**_ok(_ref("Statistics")), **_errors(*API_ERRORS)},
                }
            },
            "/api/deadletters": {
                "get": {
                    "summary": "records refused from the log (dead letters), newest first; a "
                    "county's user sees its own sources' only",
                    "parameters": [
                        _param("source", "query", "only this source's; empty for all", **ID),
                        _param(
                            "since",
                            "query",
                            "only those recorded at or after this moment (RFC 3339 or date)",
                            **WHEN,
                        ),
                        _param(
                            "limit",
                            "query",
                            "list at most this many (0 or left out: 1000; more than 50000 is "
                            "refused); total counts them all",
                            type="string",
                            pattern="^[0-9]{1,9}$",
                        ),
                        _param(
                            "time_zone",
                            "query",
                            "the zone a bare date in since is read in: an IANA name or an "
                            "offset; left out for UTC",
                            type="string",
                        ),
                    ],
                    "responses": {**_ok(_ref("DeadLetters")), **_errors(*API_ERRORS)},
                }
            },
            "/api/units": {
                "get": {
                    "summary": "the children of a unit (the city when parent is empty)",
                    "parameters": [_param("parent", "query", "parent unit id", **ID)],
                    "responses": _ok(
                        _object(["units"], units={"type": "array", "items": _ref("Unit")})
                    )
                    | _errors(*API_ERRORS),
                }
            },
            "/api/units/{unitId}": {
                "get": {
                    "summary": "one unit, with its ancestors from the city down",
                    "parameters": [_param("unitId", "path", "unit id", **ID)],
                    "responses": {
                        **_ok(
                            {
                                "allOf": [
                                    _ref("Unit"),
                                    {
                                        "type": "object",
                                        "properties": {
                                            "ancestors": {
                                                "type": "array",
                                                "items": _ref("NamedUnit"),
                                            }
                                        },
                                    },
                                ]
                            }
                        ),
                        **_errors(*API_ERRORS),
                    },
                }
            },
            "/api/events": {
                "get": {
                    "summary": "live changes as server-sent events",
                    "description": (
                        '`hello` on connect (data {"version": N, "heartbeat": 15.0}), then'
                        ' `change` events with data {"version": N, "coverage": bool}'
                        " (coverage: the campaign asked about changed), at most one every"
                        ' 0.2 s; a `heartbeat` event ({"version": N}) after 15 s without one.'
                        " The stream ends when the caller's token is revoked."
                    ),
                    "parameters": [_param("campaign", "query", "campaign to report on", **ID)],
                    "responses": {
                        **_ok({"type": "string"}, "an event stream", "text/event-stream"),
                        **_errors(400, 401, 404, 503),
                    },
                }
            },
            "/api/session": SESSION,
        },
        "components": {"schemas": SCHEMAS},
    }


SESSION_REPLY = _object(
    ["cookie"],
    principal={"type": "string", "description": "who the caller is (duhub:user:420581:alice)"},
    cookie={"type": "boolean", "description": "whether the duhub_token cookie is held"},
)
SESSION = {
    "get": {
        "summary": "who the caller is, and whether it sent the duhub_token cookie",
        "responses": _ok(SESSION_REPLY) | _errors(400, 401, 503),
    },
    "post": {
        "summary": "sign in: keep the request's bearer token in an HttpOnly cookie",
        "description": (
            "The token goes in `Authorization: Bearer TOKEN`, as on every route. The hub checks"
            " it and answers `Set-Cookie: duhub_token=TOKEN; Path=/; HttpOnly; SameSite=Strict`"
            " (`Secure` over TLS), which the browser then sends on every route, the event"
            " stream included; no script of the page can read it. A token missing, unknown or"
            " revoked is 401 and no cookie is set; a hub without --tokens answers 400."
        ),
        "responses": _ok(SESSION_REPLY) | _errors(400, 401, 503),
    },
    "delete": {
        "summary": "sign out: the duhub_token cookie is forgotten (Max-Age=0)",
        "responses": _ok(SESSION_REPLY) | _errors(400, 503),
    },
}


def _static(media: str) -> Json:
    return {"responses": _ok({"type": "string"}, "a file of the page", media) | _errors(503)}
