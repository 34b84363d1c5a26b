#!/usr/bin/env python3
"""Cross-process visibility: create a user on one Roster, then GET it from another (sharing the
same Kafka topic) every 2 ms until it answers 200. Usage:
  bench-visibility.py SCIM_BASE_A SCIM_BASE_B TOKEN N
Prints p50, p99 and max of the time from the 201 on A to the first 200 on B."""
import json, sys, time, urllib.request, statistics
a, b, token, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def req(url, method="GET", body=None):
    r = urllib.request.Request(url, method=method, data=body, headers={"Authorization": "Bearer " + token, "Content-Type": "application/scim+json"})
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
lat = []
for i in range(n):
    st, body = req(a + "/Users", "POST", json.dumps({"userName": "x%d-%f" % (i, time.time())}).encode())
    assert st == 201, (st, body)
    uid = json.loads(body)["id"]
    t0 = time.perf_counter()
    while True:
        st, _ = req(b + "/Users/" + uid)
        if st == 200:
            break
        time.sleep(0.002)
    lat.append((time.perf_counter() - t0) * 1000)
lat.sort()
print("cross-process visibility over %d writes: p50 %.1f ms, p99 %.1f ms, max %.1f ms" % (n, lat[len(lat)//2], lat[int(len(lat)*0.99)-1], lat[-1]))
