"""What schemathesis cannot know from the OpenAPI documents alone: how to make a value of each
of the platform's own string formats that the server will accept. A format's syntax is in the
document (a pattern or a length); these strategies make values that are also genuine."""

import base64
import os
import uuid
from datetime import timezone

import schemathesis
from hypothesis import strategies as st

# A consistency token names a write the platform answered: the harness passes one it got.
schemathesis.openapi.format(
    "consistency-token", st.just(os.environ["BOOKING_CONSISTENCY_TOKEN"])
)

# A key a client has not used before, so that a generated request is never a replay of another.
schemathesis.openapi.format(
    "idempotency-key", st.builds(lambda: f"st-{uuid.uuid4()}")
)


def _cursor(at, key):
    text = f"{at.isoformat()}|{key}".encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


# The next_cursor of a page: a time and the sort key of the last item seen.
schemathesis.openapi.format(
    "cursor",
    st.builds(
        _cursor,
        st.datetimes(timezones=st.just(timezone.utc)),
        st.uuids().map(str),
    ),
)

# A time filter takes a day (YYYY-MM-DD) or an RFC 3339 time with its offset.
schemathesis.openapi.format(
    "date-or-date-time",
    st.one_of(
        st.dates().map(lambda d: d.isoformat()),
        st.datetimes(timezones=st.just(timezone.utc)).map(
            lambda t: t.isoformat().replace("+00:00", "Z")
        ),
    ),
)


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    """Every request with a well-formed Idempotency-Key gets a key of its own: a key is the
    client's promise that a request is new, and the generators, which know nothing of that,
    would reuse "0" across operations (which the command API rightly refuses, 422). A
    malformed key, from the negative cases, is left as it is.

    The platform's own operations (/v1/operator/) are called as its operator: the document has
    one bearer scheme, which the configuration fills with the business's credential, and a
    schemathesis operation cannot name another, so the operator's token takes its place here
    (a request sent without one, or with a forged one, is left as it is)."""
    headers = case.headers or {}
    for name in list(headers):
        value = headers[name]
        if name.lower() == "idempotency-key":
            if isinstance(value, str) and 1 <= len(value) <= 200:
                headers[name] = f"st-{uuid.uuid4()}"
        elif name.lower() == "authorization":
            if case.path.startswith("/v1/operator/") and value == _BUSINESS:
                headers[name] = _OPERATOR


_BUSINESS = f"Bearer {os.environ['BOOKING_TOKEN']}"
_OPERATOR = f"Bearer {os.environ['BOOKING_OPERATOR_TOKEN']}"
