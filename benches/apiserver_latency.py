#!/usr/bin/env python3
"""Latency of real writes through kube-apiserver: N ConfigMap creates by C concurrent
clients, each a new HTTPS request with a user's bearer token, timed by the client from
send to answer. Prints one JSON line: count, failures, p50, p90, p99, max (ms), req/s.

    apiserver_latency.py --server URL --ca FILE --token FILE --namespace NS [-n 500] [-c 16]

Used by benches/apiserver.sh, which starts the cluster and runs it with and without
jitguard's webhooks registered. Python's standard library only.
"""

import argparse
import concurrent.futures
import http.client
import json
import ssl
import sys
import threading
import time
import urllib.parse


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--prefix", default="lat")
    p.add_argument("-n", type=int, default=500)
    p.add_argument("-c", type=int, default=16)
    args = p.parse_args()

    url = urllib.parse.urlparse(args.server)
    context = ssl.create_default_context(cafile=args.ca)
    token = open(args.token).read().strip()
    path = f"/api/v1/namespaces/{args.namespace}/configmaps"
    local = threading.local()

    def connection() -> http.client.HTTPSConnection:
        # One keep-alive connection per client thread, as client-go keeps them.
        if getattr(local, "conn", None) is None:
            local.conn = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=30)
        return local.conn

    def create(i: int) -> tuple[float, int]:
        body = json.dumps({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{args.prefix}-{i}"},
            "data": {"i": str(i)},
        })
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        start = time.perf_counter()
        try:
            conn = connection()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            local.conn = None
            status = 0
        return (time.perf_counter() - start) * 1000.0, status

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.c) as pool:
        results = list(pool.map(create, range(args.n)))
    elapsed = time.perf_counter() - started

    latencies = sorted(ms for ms, status in results if status == 201)
    failures = [status for _, status in results if status != 201]

    def pct(q: float) -> float:
        if not latencies:
            return float("nan")
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)

    print(json.dumps({
        "namespace": args.namespace,
        "count": len(latencies),
        "failures": len(failures),
        "failure_statuses": sorted(set(failures)),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1], 2) if latencies else None,
        "req_per_s": round(len(results) / elapsed, 1),
    }))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
