# Probe: raw Fetch v4 request to tansu; print the response bytes for various max_wait/min_bytes.
import socket, struct, sys
addr, topic = sys.argv[1], sys.argv[2]
h, p = addr.split(":")
s = socket.create_connection((h, int(p)))
def rd(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b)); assert c; b += c
    return b
def req(key, ver, body, corr):
    cid = b"probe"
    m = struct.pack(">hhih", key, ver, corr, len(cid)) + cid + body
    s.sendall(struct.pack(">i", len(m)) + m)
    n, = struct.unpack(">i", rd(4)); return rd(n)
tb = topic.encode()
for corr, (wait, minb) in enumerate([(0, 0), (100, 1), (500, 1)], 1):
    body = struct.pack(">iiiib", -1, wait, minb, 1 << 20, 0) + struct.pack(">ih", 1, len(tb)) + tb \
        + struct.pack(">iiqi", 1, 0, 0, 1 << 20)
    r = req(1, 4, body, corr)
    print(f"wait={wait} min={minb}: len={len(r)} head={r[:80].hex()}")
