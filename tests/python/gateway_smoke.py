"""The real databricks-sdk through the gateway: client start-up, identity, tokens.

Run by the Rust e2e test `sdk::gateway_smoke` with DATABRICKS_HOST, DATABRICKS_TOKEN and
REQUESTS_CA_BUNDLE pointing at a freshly started Lakeward. Exits non-zero on the first failure.
"""
import os
import time

from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.errors import PermissionDenied, Unauthenticated, NotFound

started = time.monotonic()
w = WorkspaceClient(config=Config(retry_timeout_seconds=30))
# Built from host and token alone: the /.well-known probe answered fast with the workspace id.
assert time.monotonic() - started < 5, "client start-up was slow: the host-metadata probe retried"

me = w.current_user.me()
assert me.user_name == "admin@lakeward.local", me
assert any(g.display == "admins" for g in (me.groups or [])), me.groups
assert str(w.get_workspace_id()) == os.environ["EXPECTED_WORKSPACE_ID"], w.get_workspace_id()

created = w.tokens.create(comment="sdk smoke", lifetime_seconds=3600)
assert created.token_value.startswith("dapi"), "token value is returned at creation"
ids = [t.token_id for t in w.tokens.list()]
assert created.token_info.token_id in ids, ids

other = WorkspaceClient(config=Config(host=os.environ["DATABRICKS_HOST"], token=created.token_value, retry_timeout_seconds=30))
assert other.current_user.me().user_name == "admin@lakeward.local"
w.tokens.delete(token_id=created.token_info.token_id)
try:
    other.current_user.me()
    raise AssertionError("a deleted token still works")
except Unauthenticated:
    pass

try:
    w.api_client.do("GET", "/api/2.0/no-such-endpoint")
    raise AssertionError("unknown endpoint answered")
except NotFound:
    pass

print("gateway smoke: ok")
