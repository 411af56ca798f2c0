"""The Kubernetes API emulator's answer times: keep-alive GETs, and pages of a big list.

1. Keep-alive: one HTTP/1.1 connection (what the kubernetes client's pool keeps), REQUESTS
   GETs of one pod and REQUESTS one-page LISTs of the staging namespace's pods; then the same
   GET on a new connection each time, for comparison. Target: at most 2 ms per keep-alive GET
   (it was 44-47 ms when headers and body went out as two writes: Nagle + delayed ACK).
2. Pages: a cluster with PODS extra pods, listed across all namespaces with limit=500; the
   first, middle and last pages, REPEATS times each. Serving a page must not depend on where
   it is in the list (a page is a slice of an index built at load, not a scan of the store).

Prints min / median / max in milliseconds for each.

    .venv/bin/python benchmarks/kube_emulator.py [REQUESTS] [PODS]
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pytest_vcci.sandbox.kube import KubeComponent

NS = "vcci-staging"
TARGET_MS = 2.0


def figures(label: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"{label:<44} min {min(ms):7.2f}  median {statistics.median(ms):7.2f}  "
        f"max {max(ms):7.2f} ms  (n={len(ms)})"
    )


def timed(call: Callable[[], object], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        began = time.perf_counter()
        call()
        samples.append(time.perf_counter() - began)
    return samples


def getter(
    kube: KubeComponent, connection: http.client.HTTPConnection | None
) -> Callable[[str], bytes]:
    def get(path: str) -> bytes:
        conn = connection or http.client.HTTPConnection("127.0.0.1", kube.port, timeout=30)
        conn.request("GET", path, headers={"Authorization": f"Bearer {kube.token}"})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, (response.status, body[:200])
        if connection is None:
            conn.close()
        return body

    return get


def keep_alive(work: Path, requests: int) -> None:
    kube = KubeComponent(workdir=work / "staging", manifests_repository=False)
    kube.start()
    try:
        pods = kube.get(f"/api/v1/namespaces/{NS}/pods")["items"]
        one = f"/api/v1/namespaces/{NS}/pods/{pods[0]['metadata']['name']}"
        connection = http.client.HTTPConnection("127.0.0.1", kube.port, timeout=30)
        get = getter(kube, connection)
        get(one)  # connect first: only the requests on the open connection count
        print(figures("keep-alive GET of one pod", timed(lambda: get(one), requests)))
        page = f"/api/v1/namespaces/{NS}/pods?limit=500"
        print(
            figures("keep-alive LIST of the namespace's pods", timed(lambda: get(page), requests))
        )
        connection.close()
        fresh = getter(kube, None)
        print(figures("GET of one pod, new connection each", timed(lambda: fresh(one), requests)))
    finally:
        kube.stop()


def pages(work: Path, pods: int, repeats: int) -> None:
    kube = KubeComponent(workdir=work / "scale", extra_pods=pods, manifests_repository=False)
    began = time.perf_counter()
    kube.start()
    print(f"emulator with {pods} extra pods up in {time.perf_counter() - began:.1f} s")
    try:
        connection = http.client.HTTPConnection("127.0.0.1", kube.port, timeout=60)
        get = getter(kube, connection)
        tokens = [""]
        while True:  # walk the whole list once, keeping every page's continue token
            token = tokens[-1]
            body = json.loads(
                get("/api/v1/pods?limit=500" + (f"&continue={token}" if token else ""))
            )
            following = body["metadata"].get("continue")
            if not following:
                break
            tokens.append(following)
        for label, index in (("first", 0), ("middle", len(tokens) // 2), ("last", len(tokens) - 1)):
            token = tokens[index]
            path = "/api/v1/pods?limit=500" + (f"&continue={token}" if token else "")
            samples = timed(lambda path=path: get(path), repeats)
            print(figures(f"page {index + 1} of {len(tokens)} ({label}), 500 pods", samples))
        connection.close()
    finally:
        kube.stop()


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    pods = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
    with tempfile.TemporaryDirectory() as tmp:
        keep_alive(Path(tmp), requests)
        print(f"target: keep-alive GET median <= {TARGET_MS} ms")
        pages(Path(tmp), pods, repeats=20)


if __name__ == "__main__":
    main()
