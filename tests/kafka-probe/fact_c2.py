# Fact c (extra): is a transactional offset commit visible to committed() while the txn is still open?
from common import *
t = uniq("c2-topic"); create_topic(t, 3)
g = uniq("G")
gc = Consumer({"bootstrap.servers": BOOT, "group.id": g, "enable.auto.commit": False})
md = gc.consumer_group_metadata()
def committed():
    c = Consumer({"bootstrap.servers": BOOT, "group.id": g, "enable.auto.commit": False})
    r = c.committed([TopicPartition(t, 0)], timeout=10); c.close(); return r[0].offset, r[0].error
p = txn_producer(uniq("tx-c2")); p.init_transactions(10)
p.begin_transaction(); p.produce(t, value=b"x", partition=1)
p.send_offsets_to_transaction([TopicPartition(t, 0, 42)], md, 10)
print("after send_offsets (txn open): committed() =", committed())
p.commit_transaction(10)
print("after commit: committed() =", committed())
