# Fact e: high watermarks (ListOffsets latest / get_watermark_offsets) and offsets_for_times
# after multi-record batches.
from common import *

t = uniq("e-topic"); create_topic(t, 3)
c = Consumer({"bootstrap.servers": BOOT, "group.id": uniq("g"), "enable.auto.commit": False})

def wm(label):
    for part in (0, 1):
        lo, hi = c.get_watermark_offsets(TopicPartition(t, part), timeout=10, cached=False)
        print(f"  {label}: p{part} low={lo} high={hi}")

# Producer with large linger so 100 messages go in one batch to partition 0.
p = Producer({"bootstrap.servers": BOOT, "linger.ms": 200, "batch.num.messages": 10000})
base_ts = int(time.time() * 1000) - 100000
for i in range(100):
    # explicit, increasing timestamps: base, base+1000, ... so offsets_for_times can be checked
    p.produce(t, value=b"m%d" % i, partition=0, timestamp=base_ts + i * 1000)
p.flush(10)
print("after 100 msgs flushed together to p0 (expected high=100):"); wm("watermarks")

# Then single-record sends (one batch each)
for i in range(3):
    p.produce(t, value=b"s%d" % i, partition=0, timestamp=base_ts + (100 + i) * 1000); p.flush(10)
print("after 3 more single-record batches (expected high=103):"); wm("watermarks")

# Second batch of 50
for i in range(50):
    p.produce(t, value=b"b%d" % i, partition=0, timestamp=base_ts + (103 + i) * 1000)
p.flush(10)
print("after another 50-record batch (expected high=153):"); wm("watermarks")

# Count the records actually stored
recs = consume_all(t, "read_uncommitted", partitions=[0], timeout=4)
print("records consumed from p0:", len(recs), "max offset:", max(r[1] for r in recs))

# offsets_for_times: timestamp of record i is base_ts + i*1000 -> expect offset i
for i in (0, 1, 50, 99, 100, 120, 152):
    r = c.offsets_for_times([TopicPartition(t, 0, base_ts + i * 1000)], timeout=10)
    print(f"  offsets_for_times(ts of record {i}) -> {r[0].offset} (expected {i})")
r = c.offsets_for_times([TopicPartition(t, 0, base_ts + 10**9)], timeout=10)
print(f"  offsets_for_times(future ts) -> {r[0].offset} (Kafka: -1 / end)")
c.close()
