# SPDX-License-Identifier: GPL-3.0-or-later
"""Count upstream connections nginx opens to Gunicorn while serving requests.

Runs on an app host. Client threads send N requests through nginx, each on a
new client connection, while the main thread samples /proc/net/unix for the
server-side sockets of the Gunicorn socket path. Every accepted upstream
connection is a socket with its own inode that lives at least as long as one
request, so the distinct inodes seen are the upstream connections used.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import threading
import time


def connected_inodes(path: str) -> set[str]:
    found = set()
    with open("/proc/net/unix", encoding="ascii", errors="replace") as table:
        next(table)
        for line in table:
            fields = line.split()
            # Num RefCount Protocol Flags Type St Inode Path; St 03 = connected.
            if len(fields) >= 8 and fields[7] == path and fields[5] == "03":
                found.add(fields[6])
    return found


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--path", default="/health")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + args.seconds
    lock = threading.Lock()
    counts = {"sent": 0, "ok": 0, "failed": 0}

    def client() -> None:
        while time.monotonic() < deadline:
            with lock:
                if counts["sent"] >= args.requests:
                    return
                counts["sent"] += 1
            try:
                conn = http.client.HTTPSConnection(args.host, 443, timeout=10, context=context)
                conn.request("GET", args.path, headers={"Connection": "close"})
                status = conn.getresponse().status
                conn.close()
                ok = status == 200
            except OSError:
                ok = False
            with lock:
                counts["ok" if ok else "failed"] += 1

    before = connected_inodes(args.socket)
    threads = [threading.Thread(target=client) for _thread in range(args.threads)]
    for thread in threads:
        thread.start()
    seen: set[str] = set()
    while any(thread.is_alive() for thread in threads):
        seen |= connected_inodes(args.socket)
        time.sleep(0.005)
    seen |= connected_inodes(args.socket)
    print(json.dumps({
        "requests": counts["ok"] + counts["failed"],
        "ok": counts["ok"],
        "failed": counts["failed"],
        "upstream_connections": len(seen - before) + len(seen & before),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
