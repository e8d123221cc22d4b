"""Runs the TPC-H queries three ways and prints the comparison (see bench/tpch.sh)."""
import argparse
import os
import pathlib
import subprocess
import time

import duckdb
import requests

TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]

p = argparse.ArgumentParser()
for flag in ["host", "token", "ca", "tables", "queries", "inprocess", "sf"]:
    p.add_argument(f"--{flag}", required=True)
p.add_argument("--runs", type=int, default=3)
args = p.parse_args()
queries = sorted(pathlib.Path(args.queries).glob("q*.sql"))
session = requests.Session()
session.headers["Authorization"] = f"Bearer {args.token}"


def api(method, path, body=None):
    # verify= per request: requests lets REQUESTS_CA_BUNDLE override a session's `verify`.
    r = session.request(method, args.host + path, json=body, timeout=600, verify=args.ca)
    r.raise_for_status()
    return r.json()


# The samples are generated in the background on first start: wait for them.
deadline = time.monotonic() + 1800
wh = api("POST", "/api/2.0/sql/warehouses",
         {"name": f"tpch-bench-{os.getpid()}", "cluster_size": "Medium", "auto_stop_mins": 0})["id"]
while api("GET", f"/api/2.0/sql/warehouses/{wh}")["state"] != "RUNNING":
    time.sleep(0.2)


def gateway(sql):
    resp = api("POST", "/api/2.0/sql/statements", {
        "statement": sql, "warehouse_id": wh, "catalog": "samples", "schema": "tpch",
        "wait_timeout": "50s", "on_wait_timeout": "CONTINUE", "format": "JSON_ARRAY"})
    while resp["status"]["state"] in ("PENDING", "RUNNING"):
        time.sleep(0.01)
        resp = api("GET", f"/api/2.0/sql/statements/{resp['statement_id']}")
    if resp["status"]["state"] != "SUCCEEDED":
        raise RuntimeError(f"{resp['status']}")
    rows = len(resp.get("result", {}).get("data_array") or [])
    n = resp.get("result", {}).get("next_chunk_index")
    while n is not None:
        chunk = api("GET", f"/api/2.0/sql/statements/{resp['statement_id']}/result/chunks/{n}")
        rows += len(chunk.get("data_array") or [])
        n = chunk.get("next_chunk_index")
    return rows


while True:
    try:
        gateway("select count(*) from lineitem")
        break
    except RuntimeError as e:
        if time.monotonic() > deadline:
            raise
        time.sleep(2)

# The three engines take turns on each query (in-process, gateway, DuckDB, then again), so
# drift in the machine's speed over the run falls on all of them alike.
inprocess = subprocess.Popen([args.inprocess, args.tables], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)


def datafusion(path):
    inprocess.stdin.write(f"{path}\n")
    inprocess.stdin.flush()
    seconds, rows = inprocess.stdout.readline().split()
    return float(seconds), int(rows)


duck = duckdb.connect()
for t in TABLES:
    duck.execute(f"create view {t} as select * from read_parquet('{args.tables}/{t}/*.parquet')")


def timed(run):
    started = time.perf_counter()
    rows = run()
    return time.perf_counter() - started, rows


results = {"datafusion": {}, "gateway": {}, "duckdb": {}}
for q in queries:
    sql = q.read_text()
    best = {}
    rows = {}
    for _ in range(args.runs):
        took = {
            "datafusion": datafusion(q.resolve()),
            "gateway": timed(lambda: gateway(sql)),
            "duckdb": timed(lambda: len(duck.execute(sql).fetchall())),
        }
        for engine, (seconds, n) in took.items():
            best[engine] = min(best.get(engine, seconds), seconds)
            rows.setdefault(engine, n)
    if len(set(rows.values())) != 1:
        raise RuntimeError(f"{q.stem}: the engines disagree on the row count: {rows}")
    for engine in results:
        results[engine][q.stem] = best[engine]
inprocess.stdin.close()
inprocess.wait()

print(f"TPC-H SF {args.sf}, best of {args.runs} runs, seconds")
print(f"{'query':6} {'datafusion':>11} {'gateway':>9} {'duckdb':>8} {'gw/df':>7} {'gw/duck':>8}")
totals = {k: 0.0 for k in results}
for q in queries:
    row = {k: results[k][q.stem] for k in results}
    for k in row:
        totals[k] += row[k]
    print(f"{q.stem:6} {row['datafusion']:11.3f} {row['gateway']:9.3f} {row['duckdb']:8.3f} "
          f"{row['gateway'] / row['datafusion']:7.2f} {row['gateway'] / row['duckdb']:8.2f}")
print(f"{'total':6} {totals['datafusion']:11.3f} {totals['gateway']:9.3f} {totals['duckdb']:8.3f} "
      f"{totals['gateway'] / totals['datafusion']:7.2f} {totals['gateway'] / totals['duckdb']:8.2f}")
ratio = totals["gateway"] / totals["datafusion"]
print(f"gateway / in-process DataFusion: {ratio:.3f}x (bar: <= 1.15x) -> {'PASS' if ratio <= 1.15 else 'FAIL'}")
