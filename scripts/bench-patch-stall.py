#!/usr/bin/env python3
"""How much one source's big PATCHes hold up another source's writes (issue 13).

Usage: bench-patch-stall.py PORT SCIM_TOKEN ADMIN_TOKEN, against a fresh `roster serve`.
Sends a 10,000-operation PATCH (refused) and a 1,000-operation one, then, while two clients
send 1,000-operation PATCHes to one user without pause, times 200 creates from another source.
"""
import json, sys, threading, time, urllib.request
port, token, admin = sys.argv[1], sys.argv[2], sys.argv[3]
base = f"http://127.0.0.1:{port}"
def req(method, url, tok, body=None):
    r = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                               headers={"Authorization": f"Bearer {tok}", "Content-Type": "application/scim+json"})
    try:
        with urllib.request.urlopen(r, timeout=30) as resp: return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e: return e.code, json.loads(e.read() or b"null")
_, src = req("POST", f"{base}/admin/v1/sources", admin, {"slug": "other"})
other = src["token"]["token"]
_, u = req("POST", f"{base}/source/scim/default/v2/Users", token, {"userName": "big"})
url = f"{base}/source/scim/default/v2/Users/{u['id']}"
big = {"Operations": [{"op": "replace", "path": "title", "value": f"t{i}"} for i in range(1000)]}
huge = {"Operations": [{"op": "add", "path": "emails", "value": [{"value": f"e{i}@x"}]} for i in range(10000)]}
t = time.time(); s, _ = req("PATCH", url, token, huge); print(f"10,000-operation PATCH: {s} in {(time.time()-t)*1000:.1f} ms")
t = time.time(); s, _ = req("PATCH", url, token, big); print(f"1,000-operation PATCH: {s} in {(time.time()-t)*1000:.1f} ms")
stop = False
deadline = time.time() + 120
def hammer():
    while not stop and time.time() < deadline: req("PATCH", url, token, big)
th = [threading.Thread(target=hammer) for _ in range(2)]
for x in th: x.start()
lat = []
for i in range(200):
    t = time.time(); s, _ = req("POST", f"{base}/source/scim/other/v2/Users", other, {"userName": f"o{i}"}); lat.append((time.time()-t)*1000)
    assert s == 201, s
stop = True
for x in th: x.join()
lat.sort()
print(f"POSTs of another source while two clients send 1,000-operation PATCHes: p50 {lat[100]:.1f} ms, p99 {lat[197]:.1f} ms, max {lat[-1]:.1f} ms")
