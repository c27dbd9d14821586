# Probe: does tansu honour Fetch max_bytes / partition_max_bytes? (fetch a ~20 MB partition)
import socket, struct, sys, time
addr, topic = sys.argv[1], sys.argv[2]
h, p = addr.split(":")
s = socket.create_connection((h, int(p)))
def rd(n):
    b = bytearray()
    while len(b) < n:
        c = s.recv(min(1 << 20, n - len(b))); assert c; b += c
    return bytes(b)
def req(key, ver, body, corr):
    cid = b"probe"
    m = struct.pack(">hhih", key, ver, corr, len(cid)) + cid + body
    s.sendall(struct.pack(">i", len(m)) + m)
    n, = struct.unpack(">i", rd(4)); return rd(n)
tb = topic.encode()
for corr, (mx, pmax) in enumerate([(1 << 20, 1 << 20), (100, 100), (50 << 20, 50 << 20)], 1):
    body = struct.pack(">iiiib", -1, 100, 1, mx, 0) + struct.pack(">ih", 1, len(tb)) + tb \
        + struct.pack(">iiqi", 1, 0, 0, pmax)
    r = req(1, 4, body, corr)
    # records length is at a fixed position for a single topic/partition with empty aborted list
    off = 4 + 4 + 4 + 2 + len(tb) + 4 + 4 + 2 + 8 + 8 + 4
    rec_len, = struct.unpack(">i", r[off:off + 4])
    # count batches and last offset
    i, nb, last = off + 4, 0, None
    while i + 12 <= off + 4 + rec_len:
        base, blen = struct.unpack(">qi", r[i:i + 12])
        if i + 12 + blen > off + 4 + rec_len: break
        lod, = struct.unpack(">i", r[i + 23:i + 27]); last = base + lod; nb += 1; i += 12 + blen
    print(f"max_bytes={mx} partition_max_bytes={pmax}: response {len(r)} bytes, records {rec_len} bytes, {nb} whole batches, last offset {last}")
