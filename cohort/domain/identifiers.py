"""The one shape of every id a request names: in a path, a query or a body, in both services.

Ids are keys in DynamoDB and parts of S3 keys. An empty one makes pynamodb raise, a long one passes
DynamoDB's key limit, and a '/' or a control character has no place in an object key; so each is
refused at the door with a 422 that says what an id looks like, before any lookup.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

MAX_ID_LENGTH = 128

# Every id the platform issues (uuid4 hex, key ids, request keys) and every device id fits this.
Identifier = Annotated[str, StringConstraints(pattern=rf"^[A-Za-z0-9_.:-]{{1,{MAX_ID_LENGTH}}}$")]
