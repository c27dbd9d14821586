# Fact e (extra): offsets_for_times on a partition holding only single-record batches,
# and with timestamps in the future / past relative to all records.
from common import *
t = uniq("e2-topic"); create_topic(t, 3)
c = Consumer({"bootstrap.servers": BOOT, "group.id": uniq("g"), "enable.auto.commit": False})
p = Producer({"bootstrap.servers": BOOT, "linger.ms": 0})
base_ts = int(time.time() * 1000) - 100000
for i in range(10):
    p.produce(t, value=b"m%d" % i, partition=0, timestamp=base_ts + i * 1000); p.flush(10)
print("watermarks p0:", c.get_watermark_offsets(TopicPartition(t, 0), timeout=10, cached=False))
for i in (0, 1, 5, 9):
    r = c.offsets_for_times([TopicPartition(t, 0, base_ts + i * 1000)], timeout=10)
    print(f"  offsets_for_times(ts of record {i}) -> {r[0].offset} (expected {i})")
for label, ts in (("ts before all records", base_ts - 50000), ("ts after all records", base_ts + 10**7)):
    r = c.offsets_for_times([TopicPartition(t, 0, ts)], timeout=10)
    print(f"  offsets_for_times({label}) -> {r[0].offset}")
c.close()
