# Edge cases for kafka_raw.rs: unknown topic, empty partitions, compressed batch, large partition
# (many fetch rounds / batches larger than the initial 1 MiB fetch size), ListOffsets quirk.
import subprocess
from common import *

def dump(topic):
    t0 = time.time()
    out = subprocess.run(["./dump", BOOT, topic], capture_output=True, text=True, timeout=300).stdout
    dt = time.time() - t0
    lines = out.splitlines()
    keep = [l for l in lines if l.split(" ")[0] in ("PARTS", "PART", "SUMMARY", "ERROR")]
    return keep, lines, dt

print("== unknown topic"); print("\n".join(dump(uniq("nope"))[0]))

t = uniq("empty"); create_topic(t, 3)
print("== empty 3-partition topic"); k, _, dt = dump(t); print("\n".join(k)); print(f"  took {dt:.2f}s")

t = uniq("gzip"); create_topic(t, 1)
p = Producer({"bootstrap.servers": BOOT, "compression.type": "gzip", "linger.ms": 20})
for i in range(10): p.produce(t, value=b"compressible " * 20, partition=0)
p.flush(10)
print("== gzip-compressed batch"); print("\n".join(dump(t)[0]))

t = uniq("big"); create_topic(t, 1)
p = Producer({"bootstrap.servers": BOOT, "linger.ms": 100, "batch.size": 4_000_000,
              "message.max.bytes": 5_000_000, "compression.type": "none"})
payload = b"x" * 10_000
N = 2000
for i in range(N):
    p.produce(t, key=b"%d" % i, value=payload, partition=0)
    if i % 500 == 499: p.flush(30)
p.flush(30)
print(f"== big: {N} x 10 KB records (~{N*10//1000} MB) in batches of up to ~4 MB")
k, lines, dt = dump(t); print("\n".join(k)); print(f"  took {dt:.2f}s")
offs = [int(l.split(" ")[2]) for l in lines if l.startswith("RC ")]
print("  offsets contiguous 0..N-1:", offs == list(range(N)))
