# Probe: Fetch v4 at/after the end of a partition and on an empty partition: response shape and latency.
import socket, struct, sys, time
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
corr = 0
for part, off, wait, minb, pmax in [(0, 76, 100, 1, 1<<20), (0, 76, 500, 1, 1<<20), (0, 76, 500, 0, 1<<20), (0, 0, 0, 1, 1<<20),
                                    (0, 0, 500, 1, 100), (0, 1000, 100, 1, 1<<20)]:
    corr += 1
    body = struct.pack(">iiiib", -1, wait, minb, 1 << 20, 0) + struct.pack(">ih", 1, len(tb)) + tb \
        + struct.pack(">iiqi", 1, part, off, pmax)
    t0 = time.time(); r = req(1, 4, body, corr); dt = time.time() - t0
    print(f"p{part} off={off} wait={wait} min={minb} pmax={pmax}: {dt*1000:.0f}ms len={len(r)} head={r[:90].hex()}")
