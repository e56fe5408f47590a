"""schemathesis hooks for scripts/schemathesis.sh.

`positive_data_acceptance_documented` is schemathesis's `positive_data_acceptance` ("a
request the document calls valid is not refused"), except for the rules OpenAPI 3.0 cannot
write as keywords: between two fields, or on the state of the data. A 422 passes only when
every one of its errors is such a rule (operation, field, error type), listed here with the
reason; any other 422 (or 400) on schema-valid data fails the run. Every limit on one value
is in the document (`src/api/constraints.rs`), so none belongs here.
"""

import json
import os

import schemathesis
from schemathesis.generation.meta import CoveragePhaseData, CoverageScenario
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

EITHER = "two parameters that go together or exclude each other (OAS 3.0 has no dependencies)"
STATE = "depends on the data stored, not on the request's shape"
CLOCK = "depends on the time of the request"

# (operationId or "*", field, error type): why the document cannot say it.
RULES = {
    ("conversations_messages", "after", "value_error"): EITHER + ": before or after",
    ("*", "lat", "missing"): EITHER + ": lat and lon",
    ("*", "lon", "missing"): EITHER + ": lat and lon",
    ("*", "radius_km", "missing"): EITHER + ": radius_km with lat and lon",
    ("events_search", "sort", "value_error"): EITHER + ": sort=distance needs lat, lon, radius_km",
    ("events_search", "to", "out_of_range"): EITHER + ": to not before from",
    ("musicians_search", "min_level", "value_error"): EITHER + ": min_level needs instrument_id",
    ("*", "latitude", "missing"): EITHER + ": latitude and longitude",
    ("*", "longitude", "missing"): EITHER + ": latitude and longitude",
    ("events_create", "starts_at", "out_of_range"): CLOCK + ": an event starts in the future",
    ("events_update", "starts_at", "out_of_range"): CLOCK + ": an event starts in the future",
    ("events_create", "ends_at", "out_of_range"): EITHER + ": ends_at after starts_at, within 31 days",
    ("events_update", "ends_at", "out_of_range"): EITHER + ": ends_at after starts_at, within 31 days",
    ("notifications_send", "all", "value_error"): EITHER + ": user_id or all",
    ("notifications_send", "user_id", "missing"): EITHER + ": user_id or all",
    ("*", "cursor", "invalid_format"): STATE + ": an opaque token the server gave out",
    ("conversations_create", "participant_ids", "not_found"): STATE + ": the accounts must exist",
    ("conversations_read", "seq", "out_of_range"): STATE + ": up to the last message's number",
    ("reports_create", "target_id", "not_found"): STATE + ": something the reporter can see",
    ("blocks_put", "user_id", "invalid"): STATE + ": not oneself",
    ("users_me_password", "current_password", "invalid"): STATE + ": the password on file",
    ("users_me_delete", "password", "invalid"): STATE + ": the password on file",
    ("reports_resolve", "action", "invalid"): STATE + ": delete_content needs a reported message or event",
    # Any field: an id in the body that names nothing stored (a genre, an instrument...).
    ("*", "*", "not_found"): STATE + ": the ids must name stored things",
}


def documented(operation_id, error):
    key = (error.get("field"), error.get("type"))
    return (
        (operation_id, *key) in RULES
        or ("*", *key) in RULES
        or ("*", "*", error.get("type")) in RULES
    )


@schemathesis.check
def positive_data_acceptance_documented(ctx, response, case):
    if response.status_code == 422:
        try:
            errors = response.json().get("errors") or []
        except ValueError:
            errors = []
        operation_id = case.operation.definition.raw.get("operationId")
        if errors and all(documented(operation_id, e) for e in errors):
            return None
    return positive_data_acceptance(ctx, response, case)


# `negative_data_rejection` ("a request the document calls invalid is refused"), except
# for two kinds of case the server cannot or need not tell from valid ones:
# - form encodings carry every value as text: a negative case that breaks a type (a number
#   for a string, an object for a file) is sent as the same bytes as a valid one;
# - a query parameter the operation does not declare is ignored, as HTTP APIs do (OpenAPI
#   has no way to forbid one; schemathesis skips these too, unless a path parameter it was
#   told to keep fixed makes it believe the path was negated);
# - a body without a property the document does not require: the coverage phase builds its
#   template with every property and then calls dropping an optional one "missing required
#   property" (schemathesis 4.32.5).
FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


@schemathesis.check
def negative_data_rejection_documented(ctx, response, case):
    if (case.media_type or "").startswith(FORMS):
        return None
    declared = {p.name for p in case.operation.query}
    if set(case.query or {}) - declared:
        return None
    data = case.meta.phase.data if case.meta else None
    if (
        isinstance(data, CoveragePhaseData)
        and data.scenario == CoverageScenario.OBJECT_MISSING_REQUIRED_PROPERTY
        and data.parameter not in body_required(case)
    ):
        return None
    return negative_data_rejection(ctx, response, case)


def body_required(case):
    """The properties the document requires in the case's JSON body."""
    body = case.operation.definition.raw.get("requestBody") or {}
    for content in (body.get("content") or {}).values():
        schema = content.get("schema") or {}
        ref = schema.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            schema = case.operation.schema.raw_schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
        return set(schema.get("required") or [])
    return set()


# The document's request examples name things by placeholder ids and show placeholder
# secrets; the examples and coverage phases send them as they are, and every one would
# be refused as naming nothing stored ("Schema validation mismatch"). schemathesis.sh
# gives the ids and values of what it stored: the placeholders are swapped for them in
# valid (positive) cases, just before they are sent. Random ids the fuzzer invents stay as they are and still reach
# the 404 and 422 paths.
STORED = json.loads(os.environ.get("ST_STORED", "{}"))
# The account's passwords, the one on file last.
PASSWORDS = [os.environ.get("ST_PASSWORD", "")]


def swap(value):
    if isinstance(value, dict):
        return {k: swap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [swap(v) for v in value]
    if isinstance(value, str):
        return STORED.get(value, value)
    return value


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    # Every phase's cases go through here (`map_case` is not run on the examples and
    # coverage phases' cases).
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return
    if isinstance(case.body, (dict, list)):
        case.body = swap(case.body)
        operation_id = case.operation.definition.raw.get("operationId")
        # Whether the password sent is the one on file depends on the account, not on the
        # request's shape (like a stored id): a valid case sends the one on file, which
        # changes with each accepted change.
        if isinstance(case.body, dict):
            for op, field in (("users_me_password", "current_password"), ("users_me_delete", "password")):
                if operation_id == op and isinstance(case.body.get(field), str):
                    case.body[field] = PASSWORDS[-1]
        # A read marker can only be at or below the last message's number.
        if operation_id == "conversations_read" and isinstance(case.body, dict):
            seq = case.body.get("seq")
            if isinstance(seq, int) and seq > 1:
                case.body["seq"] = 1


@schemathesis.hook
def after_call(ctx, case, response):
    operation_id = case.operation.definition.raw.get("operationId")
    if operation_id == "users_me_password" and response.status_code == 200:
        PASSWORDS.append(case.body["new_password"])
