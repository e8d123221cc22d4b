"""The data plane through the gateway with the real databricks-sdk: warehouses, the Statement
Execution API over the `samples` TPC-H tables (every value compared with DuckDB reading the same
Parquet files), credential passthrough with grants, cancel, async statements and chunked results.

Run by the Rust e2e test `sdk::data_plane` with DATABRICKS_HOST, DATABRICKS_TOKEN,
REQUESTS_CA_BUNDLE, LAKEWARD_LAKE (the lake's directory) and TPCH_QUERIES (bench/tpch/queries).
Exits non-zero on the first failure.
"""
import base64
import datetime
import decimal
import math
import os
import pathlib
import time
import uuid

import duckdb
import pyarrow.ipc
from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.errors import PermissionDenied, InvalidParameterValue, NotFound
from databricks.sdk.service import sql as dbsql
from databricks.sdk.service.catalog import PermissionsChange, Privilege
from databricks.sdk.service.iam import AccessControlRequest, PermissionLevel

HOST = os.environ["DATABRICKS_HOST"]
LAKE = pathlib.Path(os.environ["LAKEWARD_LAKE"])
QUERIES = pathlib.Path(os.environ["TPCH_QUERIES"])
RUN = uuid.uuid4().hex[:8]
TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]

w = WorkspaceClient(config=Config(retry_timeout_seconds=30))


def expect(kind, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except kind as e:
        return e
    raise AssertionError(f"{fn.__qualname__} did not raise {kind}")


def wait_done(client, resp, timeout=120):
    """Polls get_statement until the statement leaves PENDING/RUNNING."""
    deadline = time.monotonic() + timeout
    while resp.status.state in (dbsql.StatementState.PENDING, dbsql.StatementState.RUNNING):
        assert time.monotonic() < deadline, f"statement {resp.statement_id} still {resp.status.state}"
        time.sleep(0.1)
        resp = client.statement_execution.get_statement(resp.statement_id)
    return resp


def run(client, statement, warehouse_id, **kwargs):
    kwargs.setdefault("wait_timeout", "50s")
    resp = client.statement_execution.execute_statement(
        statement=statement, warehouse_id=warehouse_id, **kwargs)
    return wait_done(client, resp)


def rows_of(client, resp):
    """Every row of a SUCCEEDED statement, fetching the chunks after the first."""
    assert resp.status.state == dbsql.StatementState.SUCCEEDED, (resp.status.state, resp.status.error)
    rows = list(resp.result.data_array or []) if resp.result else []
    next_index = resp.result.next_chunk_index if resp.result else None
    while next_index is not None:
        chunk = client.statement_execution.get_statement_result_chunk_n(resp.statement_id, next_index)
        assert chunk.chunk_index == next_index, (chunk.chunk_index, next_index)
        rows.extend(chunk.data_array or [])
        next_index = chunk.next_chunk_index
    assert len(rows) == resp.manifest.total_row_count, (len(rows), resp.manifest.total_row_count)
    return rows


def same(ours, theirs):
    """One value from the gateway (a string or None) against DuckDB's Python value."""
    if theirs is None or ours is None:
        return theirs is None and ours is None
    if isinstance(theirs, (int, float, decimal.Decimal)) and not isinstance(theirs, bool):
        return math.isclose(float(ours), float(theirs), rel_tol=1e-9, abs_tol=1e-6)
    if isinstance(theirs, datetime.date):
        return ours[:10] == theirs.isoformat()
    return ours == str(theirs)


# --- A warehouse, created and waited for as the SDK does it.
wh = w.warehouses.create_and_wait(
    name=f"acceptance-{RUN}", cluster_size="Small", auto_stop_mins=10, max_num_clusters=1,
    timeout=datetime.timedelta(seconds=60))
assert wh.state == dbsql.State.RUNNING, wh.state
assert wh.cluster_size == "Small" and wh.auto_stop_mins == 10, wh
assert any(x.id == wh.id for x in w.warehouses.list())
e = expect(InvalidParameterValue, w.warehouses.create, name=f"bad-{RUN}", cluster_size="Huge")
assert "cluster_size" in str(e), e

# --- TPC-H on `samples`, every value against DuckDB over the same Parquet files. The samples
# are generated in the background on first start; a statement on them waits for them.
resp = run(w, "select count(*) from samples.tpch.region", wh.id)
assert rows_of(w, resp) == [["5"]], resp.status
duck = duckdb.connect()
for table in TABLES:
    files = sorted((LAKE / "samples" / "tpch" / table).glob("*.parquet"))
    assert files, f"no Parquet files for samples.tpch.{table} under {LAKE}"
    duck.execute(f"create view {table} as select * from read_parquet({[str(f) for f in files]!r})")
for path in sorted(QUERIES.glob("q*.sql")):
    text = path.read_text()
    resp = run(w, text, wh.id, catalog="samples", schema="tpch")
    ours = rows_of(w, resp)
    theirs = duck.execute(text).fetchall()
    assert len(ours) == len(theirs), f"{path.name}: {len(ours)} rows, DuckDB {len(theirs)}"
    assert resp.manifest.schema.column_count == len(theirs[0]) if theirs else True, path.name
    for i, (a, b) in enumerate(zip(ours, theirs)):
        for j, (x, y) in enumerate(zip(a, b)):
            assert same(x, y), f"{path.name} row {i} column {j}: gateway {x!r}, DuckDB {y!r}"
print(f"tpch: {len(list(QUERIES.glob('q*.sql')))} queries agree with DuckDB")

# --- Types and values as Databricks sends them.
resp = run(w, "select cast(1 as int) as i, cast(2 as bigint) as l, cast(1.5 as decimal(10,2)) as d, "
              "'x' as s, true as b, date '2024-01-31' as dt, cast(null as string) as n", wh.id)
cols = [(c.name, c.type_name.value) for c in resp.manifest.schema.columns]
assert cols == [("i", "INT"), ("l", "LONG"), ("d", "DECIMAL"), ("s", "STRING"), ("b", "BOOLEAN"),
                ("dt", "DATE"), ("n", "STRING")], cols
assert resp.result.data_array == [["1", "2", "1.50", "x", "true", "2024-01-31", None]], resp.result.data_array

# --- SQL errors are FAILED statements that name the problem, not HTTP errors.
resp = run(w, "select * from samples.tpch.no_such_table", wh.id)
assert resp.status.state == dbsql.StatementState.FAILED, resp.status
assert "no_such_table" in resp.status.error.message, resp.status.error

# --- Named parameters.
resp = run(w, "select n_name from samples.tpch.nation where n_nationkey = :key", wh.id,
           parameters=[dbsql.StatementParameterListItem(name="key", value="7", type="INT")])
assert rows_of(w, resp) == [["GERMANY"]], resp.result

# --- A managed table written into the lake, then credential passthrough with grants.
table = f"main.default.nations_{RUN}"
resp = run(w, f"create table {table} as select n_nationkey, n_name from samples.tpch.nation", wh.id)
assert resp.status.state == dbsql.StatementState.SUCCEEDED, resp.status
run(w, f"insert into {table} values (100, 'ATLANTIS')", wh.id)
assert rows_of(w, run(w, f"select count(*) from {table}", wh.id)) == [["26"]]

sp = w.service_principals.create(display_name=f"analyst-{RUN}")
obo = w.token_management.create_obo_token(application_id=sp.application_id, comment="analyst", lifetime_seconds=3600)
analyst = WorkspaceClient(config=Config(host=HOST, token=obo.token_value, retry_timeout_seconds=30))

# Without CAN_USE the analyst cannot use the warehouse at all.
expect(PermissionDenied, analyst.statement_execution.execute_statement,
       statement="select 1", warehouse_id=wh.id, wait_timeout="10s")
w.permissions.update("warehouses", wh.id, access_control_list=[
    AccessControlRequest(service_principal_name=sp.application_id, permission_level=PermissionLevel.CAN_USE)])

# Samples are readable by every user; the admin's new table is not, until granted.
assert rows_of(analyst, run(analyst, "select count(*) from samples.tpch.region", wh.id)) == [["5"]]
resp = run(analyst, f"select * from {table}", wh.id)
assert resp.status.state == dbsql.StatementState.FAILED, resp.status
assert table in resp.status.error.message and "SELECT" in resp.status.error.message, resp.status.error
# The SDK's ServiceErrorCode enum has no PERMISSION_DENIED, so it reads the code as None; the
# wire carries it.
raw = analyst.api_client.do("GET", f"/api/2.0/sql/statements/{resp.statement_id}")
assert raw["status"]["error"]["error_code"] == "PERMISSION_DENIED", raw["status"]
assert raw["status"]["sql_state"] == "42501", raw["status"]

run(w, f"GRANT SELECT ON TABLE {table} TO `{sp.application_id}`", wh.id)
assert len(rows_of(analyst, run(analyst, f"select * from {table}", wh.id))) == 26
# Reading is not writing.
resp = run(analyst, f"insert into {table} values (101, 'LEMURIA')", wh.id)
assert resp.status.state == dbsql.StatementState.FAILED and "MODIFY" in resp.status.error.message, resp.status

run(w, f"REVOKE SELECT ON TABLE {table} FROM `{sp.application_id}`", wh.id)
resp = run(analyst, f"select * from {table}", wh.id)
assert resp.status.state == dbsql.StatementState.FAILED, "revoked on the very next statement"

# The same through the Unity Catalog grants API.
w.grants.update("table", table, changes=[PermissionsChange(principal=sp.application_id, add=[Privilege.SELECT])])
got = w.grants.get("table", table)
assert any(a.principal == sp.application_id and Privilege.SELECT in a.privileges
           for a in got.privilege_assignments or []), got
assert rows_of(analyst, run(analyst, f"select count(*) from {table}", wh.id)) == [["26"]]
expect(PermissionDenied, analyst.grants.update, "table", table,
       changes=[PermissionsChange(principal=sp.application_id, add=[Privilege.MODIFY])])
w.grants.update("table", table, changes=[PermissionsChange(principal=sp.application_id, remove=[Privilege.SELECT])])
assert run(analyst, f"select * from {table}", wh.id).status.state == dbsql.StatementState.FAILED

# --- An async statement, polled to completion.
resp = w.statement_execution.execute_statement(
    statement="select count(*) from samples.tpch.lineitem", warehouse_id=wh.id, wait_timeout="0s")
assert resp.status.state in (dbsql.StatementState.PENDING, dbsql.StatementState.RUNNING), resp.status
resp = wait_done(w, resp)
assert resp.status.state == dbsql.StatementState.SUCCEEDED, resp.status
lineitems = int(rows_of(w, resp)[0][0])
assert lineitems == duck.execute("select count(*) from lineitem").fetchone()[0]

# --- A long query, cancelled: CANCELED within a second.
resp = w.statement_execution.execute_statement(
    statement="select count(*) from samples.tpch.lineitem a, samples.tpch.lineitem b where a.l_comment < b.l_comment",
    warehouse_id=wh.id, wait_timeout="0s")
time.sleep(0.5)
started = time.monotonic()
w.statement_execution.cancel_execution(resp.statement_id)
while True:
    resp = w.statement_execution.get_statement(resp.statement_id)
    if resp.status.state not in (dbsql.StatementState.PENDING, dbsql.StatementState.RUNNING):
        break
    assert time.monotonic() - started < 1.0, "cancel took over a second"
    time.sleep(0.05)
assert resp.status.state == dbsql.StatementState.CANCELED, resp.status

# --- A multi-chunk result fetched chunk by chunk.
resp = run(w, "select * from samples.tpch.lineitem order by l_orderkey, l_linenumber", wh.id)
assert resp.manifest.total_chunk_count > 1, resp.manifest
rows = rows_of(w, resp)
assert len(rows) == lineitems
assert [c.row_offset for c in resp.manifest.chunks] == sorted(c.row_offset for c in resp.manifest.chunks)
first = duck.execute("select l_orderkey, l_linenumber from lineitem order by l_orderkey, l_linenumber").fetchall()
assert [(int(r[0]), int(r[3])) for r in rows] == first, "chunks arrive in order and complete"

# --- Many statements at once on one warehouse queue; none is refused.
burst = [w.statement_execution.execute_statement(
    statement=f"select count(*) + {i} from samples.tpch.orders", warehouse_id=wh.id, wait_timeout="0s")
    for i in range(16)]
orders = duck.execute("select count(*) from orders").fetchone()[0]
for i, resp in enumerate(burst):
    assert rows_of(w, wait_done(w, resp)) == [[str(orders + i)]], i

# --- row_limit truncates.
resp = run(w, "select * from samples.tpch.nation", wh.id, row_limit=3)
assert resp.manifest.truncated and len(rows_of(w, resp)) == 3, resp.manifest

# --- ARROW_STREAM: the rows of JSON_ARRAY as an Arrow IPC stream, base64 in `attachment`
# (the SDK's ResultData has no field for it, so read the wire), decoded with pyarrow.
query = "select n_nationkey, n_name, n_regionkey from samples.tpch.nation order by n_nationkey"
raw = w.api_client.do("POST", "/api/2.0/sql/statements", body={
    "statement": query, "warehouse_id": wh.id, "format": "ARROW_STREAM",
    "disposition": "INLINE", "wait_timeout": "30s"})
assert raw["status"]["state"] == "SUCCEEDED", raw["status"]
assert raw["manifest"]["format"] == "ARROW_STREAM", raw["manifest"]
arrow = pyarrow.ipc.open_stream(base64.b64decode(raw["result"]["attachment"])).read_all()
assert arrow.column_names == ["n_nationkey", "n_name", "n_regionkey"], arrow.schema
assert [[str(v) for v in row.values()] for row in arrow.to_pylist()] == rows_of(w, run(w, query, wh.id))

# --- on_wait_timeout CANCEL: a statement still running when the wait ends is cancelled.
started = time.monotonic()
resp = w.statement_execution.execute_statement(
    statement="select count(*) from samples.tpch.lineitem a, samples.tpch.lineitem b where a.l_comment < b.l_comment",
    warehouse_id=wh.id, wait_timeout="5s", on_wait_timeout=dbsql.ExecuteStatementRequestOnWaitTimeout.CANCEL)
assert resp.status.state == dbsql.StatementState.CANCELED, resp.status
assert 5.0 <= time.monotonic() - started < 8.0, time.monotonic() - started
assert w.statement_execution.get_statement(resp.statement_id).status.state == dbsql.StatementState.CANCELED

# --- Stop and delete, as the SDK waits for them.
w.warehouses.stop_and_wait(wh.id, timeout=datetime.timedelta(seconds=60))
assert w.warehouses.get(wh.id).state == dbsql.State.STOPPED
w.warehouses.delete(wh.id)
assert all(x.id != wh.id for x in w.warehouses.list())

print("data plane: ok")
