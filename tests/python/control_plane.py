"""Issue 3 acceptance: the control-plane API through the gateway with the unmodified databricks-sdk.

Run by the Rust e2e test `sdk::control_plane` against a fresh Lakeward with DATABRICKS_HOST,
DATABRICKS_TOKEN, DATABRICKS_ACCOUNT_ID and REQUESTS_CA_BUNDLE set. Each section asserts what a
user would see; the first failure exits non-zero with its traceback.
"""
import os
import uuid

import requests
from databricks.sdk import AccountClient, WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.errors import (
    BadRequest,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    Unauthenticated,
)
from databricks.sdk.service import iam, settings

HOST = os.environ["DATABRICKS_HOST"]
TOKEN = os.environ["DATABRICKS_TOKEN"]
ACCOUNT = os.environ["DATABRICKS_ACCOUNT_ID"]
WORKSPACE_ID = os.environ["EXPECTED_WORKSPACE_ID"]
RUN = uuid.uuid4().hex[:8]


def client(host=HOST, token=TOKEN, source=None):
    w = WorkspaceClient(config=Config(host=host, token=token, retry_timeout_seconds=20))
    if source:
        bind_source(w, source)
    return w


class SourceAddressAdapter(requests.adapters.HTTPAdapter):
    """Connects from a chosen loopback address, to exercise IP access lists."""

    def __init__(self, source, **kwargs):
        self._source = (source, 0)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = self._source
        super().init_poolmanager(*args, **kwargs)


def bind_source(sdk_client, source):
    sdk_client.api_client._api_client._session.mount("https://", SourceAddressAdapter(source))


def expect(exception, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exception as e:
        return e
    raise AssertionError(f"{getattr(fn, '__qualname__', fn)} did not raise {exception.__name__}")


w = client()
a = AccountClient(config=Config(host=HOST, token=TOKEN, account_id=ACCOUNT, retry_timeout_seconds=20))

# --- Identity (SCIM) --------------------------------------------------------------------------
me = w.current_user.me()
assert me.user_name == "admin@lakeward.local"
assert str(w.get_workspace_id()) == WORKSPACE_ID

alice = w.users.create(user_name=f"alice-{RUN}@example.com", display_name="Alice")
assert w.users.get(alice.id).user_name == alice.user_name
found = list(w.users.list(filter=f'userName eq "{alice.user_name}"'))
assert [u.id for u in found] == [alice.id], found
expect(ResourceAlreadyExists, w.users.create, user_name=alice.user_name)
everyone = list(w.users.list(count=1))  # one per page: paging must end cleanly
assert len({u.id for u in everyone}) == len(everyone) >= 2, everyone

group = w.groups.create(display_name=f"analysts-{RUN}")
w.groups.patch(
    group.id,
    operations=[iam.Patch(op=iam.PatchOp.ADD, value={"members": [{"value": alice.id}]})],
    schemas=[iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP],
)
assert alice.id in [m.value for m in (w.groups.get(group.id).members or [])]

sp = w.service_principals.create(display_name=f"etl-{RUN}")
assert sp.application_id, sp
account_users = list(a.users.list(filter=f'userName eq "{alice.user_name}"'))
assert [u.id for u in account_users] == [alice.id], account_users
expect(ResourceDoesNotExist, w.users.get, "999999999")

# --- Tokens -----------------------------------------------------------------------------------
created = w.tokens.create(comment=f"acceptance {RUN}", lifetime_seconds=3600)
assert created.token_value.startswith("dapi")
listed = {t.token_id: t for t in w.tokens.list()}
assert created.token_info.token_id in listed
assert not hasattr(listed[created.token_info.token_id], "token_value")
second = client(token=created.token_value)
assert second.current_user.me().user_name == me.user_name
w.tokens.delete(token_id=created.token_info.token_id)
expect(Unauthenticated, second.current_user.me)  # refused on the very next request
expect(ResourceDoesNotExist, w.tokens.delete, token_id=created.token_info.token_id)

w.workspace_conf.set_status({"maxTokenLifetimeDays": "1"})
assert w.workspace_conf.get_status(keys="maxTokenLifetimeDays")["maxTokenLifetimeDays"] == "1"
expect(InvalidParameterValue, w.tokens.create, comment="too long", lifetime_seconds=2 * 86400)
w.workspace_conf.set_status({"maxTokenLifetimeDays": "0"})
expect(BadRequest, w.workspace_conf.set_status, {"noSuchSetting": "true"})

# --- Token management and a non-admin -----------------------------------------------------------
obo = w.token_management.create_obo_token(application_id=sp.application_id, comment="etl", lifetime_seconds=3600)
etl = client(token=obo.token_value)
assert etl.current_user.me().user_name == sp.application_id
expect(PermissionDenied, etl.token_management.list)
expect(PermissionDenied, etl.ip_access_lists.list)
mine = [t for t in w.token_management.list(created_by_username=me.user_name)]
assert all(t.created_by_username == me.user_name for t in mine) and mine
assert w.token_management.get(obo.token_info.token_id).token_info.owner_id is not None

# Usage permission: without CAN_USE the service principal's token stops working at once.
levels = w.token_management.get_permissions()
assert any(acl.group_name == "users" for acl in levels.access_control_list), levels
w.token_management.set_permissions(access_control_list=[])
expect((Unauthenticated, PermissionDenied), etl.current_user.me)
w.token_management.update_permissions(
    access_control_list=[settings.TokenAccessControlRequest(group_name="users", permission_level=settings.TokenPermissionLevel.CAN_USE)]
)
assert etl.current_user.me().user_name == sp.application_id

# Turning tokens off refuses non-admin PATs; the admin keeps a way back in.
w.workspace_conf.set_status({"enableTokensConfig": "false"})
expect((Unauthenticated, PermissionDenied), etl.current_user.me)
expect(PermissionDenied, w.tokens.create, comment="off")
w.workspace_conf.set_status({"enableTokensConfig": "true"})
assert etl.current_user.me().user_name == sp.application_id

# --- IP access lists --------------------------------------------------------------------------
expect(InvalidParameterValue, w.ip_access_lists.create, label="bad", list_type=settings.ListType.BLOCK, ip_addresses=["300.1.1.1"])
expect(BadRequest, w.ip_access_lists.create, label="huge", list_type=settings.ListType.ALLOW,
       ip_addresses=[f"10.{i // 250}.{i % 250}.1" for i in range(1001)])
block = w.ip_access_lists.create(label="block .2", list_type=settings.ListType.BLOCK, ip_addresses=["127.0.0.2"])
list_id = block.ip_access_list.list_id
assert w.ip_access_lists.get(list_id).ip_access_list.address_count == 1
assert list_id in [l.list_id for l in w.ip_access_lists.list()]
from_2 = client(source="127.0.0.2")
assert from_2.current_user.me().user_name == me.user_name  # the feature is off: no effect yet
w.workspace_conf.set_status({"enableIpAccessLists": "true"})
e = expect(PermissionDenied, from_2.current_user.me)
assert f"Source IP address: 127.0.0.2 is blocked by Databricks IP ACL for workspace: {WORKSPACE_ID}" in str(e), e
assert w.current_user.me().user_name == me.user_name  # 127.0.0.1 keeps working
# The lockout guard: a change that would block the caller is refused and changes nothing.
expect(InvalidState, w.ip_access_lists.update, list_id, ip_addresses=["127.0.0.1", "127.0.0.2"])
expect(InvalidState, w.ip_access_lists.create, label="office only", list_type=settings.ListType.ALLOW, ip_addresses=["10.0.0.0/8"])
w.ip_access_lists.update(list_id, enabled=False)
assert from_2.current_user.me().user_name == me.user_name
w.ip_access_lists.replace(list_id, label="block .3", list_type=settings.ListType.BLOCK, enabled=True, ip_addresses=["127.0.0.3"])
assert from_2.current_user.me().user_name == me.user_name
expect(PermissionDenied, client(source="127.0.0.3").current_user.me)
w.ip_access_lists.delete(list_id)
expect(ResourceDoesNotExist, w.ip_access_lists.get, list_id)
assert client(source="127.0.0.3").current_user.me().user_name == me.user_name
w.workspace_conf.set_status({"enableIpAccessLists": "false"})

# Account lists govern account APIs.
acct_block = a.ip_access_lists.create(label="acct block", list_type=settings.ListType.BLOCK, ip_addresses=["127.0.0.2"])
acct_from_2 = AccountClient(config=Config(host=HOST, token=TOKEN, account_id=ACCOUNT, retry_timeout_seconds=20))
bind_source(acct_from_2, "127.0.0.2")
expect(PermissionDenied, lambda: list(acct_from_2.workspaces.list()))
assert list(a.workspaces.list())
expect(InvalidState, a.ip_access_lists.update, acct_block.ip_access_list.list_id, ip_addresses=["127.0.0.1"])
a.ip_access_lists.delete(acct_block.ip_access_list.list_id)

# --- Account workspaces -----------------------------------------------------------------------
ws = a.workspaces.create(workspace_name=f"analytics {RUN}", deployment_name=f"analytics-{RUN}").result()
assert ws.workspace_status.value == "RUNNING", ws
assert any(x.workspace_id == ws.workspace_id for x in a.workspaces.list())
assert a.workspaces.get(ws.workspace_id).workspace_name == f"analytics {RUN}"
in_new = client(host=f"{HOST}/w/{ws.workspace_id}")
assert in_new.current_user.me().user_name == me.user_name  # usable at once by its creator
assert in_new.get_workspace_id() == ws.workspace_id
# The service principal belongs to the default workspace only: it gets nothing from the new one.
expect((Unauthenticated, PermissionDenied), client(host=f"{HOST}/w/{ws.workspace_id}", token=obo.token_value).current_user.me)
# A workspace-id header naming another workspace than the one addressed is refused.
expect(BadRequest, w.api_client.do, "GET", "/api/2.0/preview/scim/v2/Me",
       headers={"X-Databricks-Workspace-Id": str(ws.workspace_id)})

# --- Errors name the field --------------------------------------------------------------------
e = expect(BadRequest, w.api_client.do, "POST", "/api/2.0/token/create", body={"lifetime_seconds": "soon"})
assert "lifetime_seconds" in str(e), e
e = expect(BadRequest, w.api_client.do, "POST", "/api/2.0/ip-access-lists", body={"list_type": "ALLOW", "ip_addresses": []})
assert "label" in str(e), e
expect(NotFound, w.api_client.do, "GET", "/api/2.0/no-such-endpoint")

# --- Removing an admin takes effect on the next request -------------------------------------------
admins = next(g for g in w.groups.list(filter='displayName eq "admins"'))
w.groups.patch(admins.id, operations=[iam.Patch(op=iam.PatchOp.ADD, value={"members": [{"value": sp.id}]})],
               schemas=[iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP])
assert list(etl.ip_access_lists.list()) is not None  # now an admin
w.groups.patch(admins.id, operations=[iam.Patch(op=iam.PatchOp.REMOVE, path=f'members[value eq "{sp.id}"]')],
               schemas=[iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP])
expect(PermissionDenied, etl.ip_access_lists.list)

print("control plane acceptance: ok")
