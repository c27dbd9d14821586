# Fact f: CreatePartitions (API key 37) — supported? does metadata show the new partitions?
from common import *
from confluent_kafka.admin import NewPartitions
t = uniq("f-topic"); create_topic(t, 3)
a = admin()
print("before:", sorted(a.list_topics(t, timeout=10).topics[t].partitions.keys()))
try:
    fs = a.create_partitions([NewPartitions(t, 5)], request_timeout=10)
    for k, f in fs.items():
        print("create_partitions result:", f.result(15))
except Exception as e:
    print("create_partitions FAILED:", repr(e))
time.sleep(1)
print("after (fresh AdminClient):", sorted(AdminClient({"bootstrap.servers": BOOT}).list_topics(t, timeout=10).topics[t].partitions.keys()))
# Can we produce to partition 4 anyway?
p = Producer({"bootstrap.servers": BOOT, "message.timeout.ms": 5000}); res = []
p.produce(t, value=b"x", partition=4, on_delivery=lambda e, m: res.append(str(e)))
p.flush(8); print("produce to partition 4 ->", res)
