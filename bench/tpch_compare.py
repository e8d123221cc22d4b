"""Runs the TPC-H queries three ways and prints the comparison (see bench/tpch.sh)."""
import argparse
import json
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
session.verify = args.ca
session.headers["Authorization"] = f"Bearer {args.token}"


def api(method, path, body=None):
    r = session.request(method, args.host + path, json=body, timeout=600)
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

results = {}
out = subprocess.run([args.inprocess, args.tables, args.queries, str(args.runs)],
                     check=True, capture_output=True, text=True).stdout
results["datafusion"] = {k: min(v) for k, v in json.loads(out).items()}

timings = {}
for q in queries:
    sql = q.read_text()
    best = None
    for _ in range(args.runs):
        started = time.perf_counter()
        gateway(sql)
        took = time.perf_counter() - started
        best = took if best is None else min(best, took)
    timings[q.stem] = best
results["gateway"] = timings

duck = duckdb.connect()
for t in TABLES:
    duck.execute(f"create view {t} as select * from read_parquet('{args.tables}/{t}/*.parquet')")
timings = {}
for q in queries:
    sql = q.read_text()
    best = None
    for _ in range(args.runs):
        started = time.perf_counter()
        duck.execute(sql).fetchall()
        took = time.perf_counter() - started
        best = took if best is None else min(best, took)
    timings[q.stem] = best
results["duckdb"] = timings

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
