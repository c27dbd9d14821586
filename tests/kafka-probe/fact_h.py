# Probe: does a transaction's commit apply its group offsets while another producer's
# transaction on the same partition is still open (Begin)?
import sys, time, uuid
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
bs = sys.argv[1]
run = uuid.uuid4().hex[:6]
topic, src, group = f"out-{run}", f"src-{run}", f"g-{run}"
adm = AdminClient({"bootstrap.servers": bs})
for f in adm.create_topics([NewTopic(topic, 1, 1), NewTopic(src, 1, 1)]).values():
    f.result()
def producer(tid):
    p = Producer({"bootstrap.servers": bs, "transactional.id": tid, "linger.ms": 0})
    p.init_transactions(30)
    return p
g = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False})
def committed():
    return g.committed([TopicPartition(src, 0)], 30)[0].offset
a, b = producer(f"a-{run}"), producer(f"b-{run}")
a.begin_transaction(); a.produce(topic, value=b"a1"); a.flush(30)
a.send_offsets_to_transaction([TopicPartition(src, 0, 10)], g.consumer_group_metadata(), 30)
b.begin_transaction(); b.produce(topic, value=b"b1"); b.flush(30)
a.commit_transaction(30)
time.sleep(0.5)
print(f"A committed (offset 10) while B's transaction is open: group offset {committed()}")
b.commit_transaction(30)
time.sleep(0.5)
print(f"after B commits too: group offset {committed()}")
# the same again with no overlap: A alone
a.begin_transaction(); a.produce(topic, value=b"a2"); a.flush(30)
a.send_offsets_to_transaction([TopicPartition(src, 0, 20)], g.consumer_group_metadata(), 30)
a.commit_transaction(30)
time.sleep(0.5)
print(f"A commits offset 20 with no other transaction open: group offset {committed()}")
c = Consumer({"bootstrap.servers": bs, "group.id": f"r-{run}", "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
c.assign([TopicPartition(topic, 0, 0)])
vals, end = [], time.time() + 5
while time.time() < end:
    m = c.poll(0.5)
    if m is not None and not m.error(): vals.append(m.value().decode())
print(f"read_committed consumer sees {vals}")
