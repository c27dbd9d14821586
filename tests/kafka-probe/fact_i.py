# Probe: a producer is killed (SIGKILL) with a transaction open on a partition. Does that
# leftover defer, for good, the group offsets of later transactions by another producer on
# the same partition? (tansu's txn_end applies a commit's offsets only when every overlapping
# transaction on a shared partition is prepared; fact_h showed the deferral while the other
# transaction is merely open.) And does re-initialising the killed producer's transactional
# id (what a restarted weir sink subtask does) release it?
import os, signal, subprocess, sys, time, uuid
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
bs = sys.argv[1]
if len(sys.argv) > 2 and sys.argv[2] == "child":
    # The producer to be killed: opens a transaction on partition 0 and waits.
    tid, topic = sys.argv[3], sys.argv[4]
    p = Producer({"bootstrap.servers": bs, "transactional.id": tid, "linger.ms": 0})
    p.init_transactions(30)
    p.begin_transaction(); p.produce(topic, value=b"leftover", partition=0); p.flush(30)
    print("open", flush=True)
    time.sleep(600)
    sys.exit(0)
run = uuid.uuid4().hex[:6]
topic, src, group = f"out-{run}", f"src-{run}", f"g-{run}"
adm = AdminClient({"bootstrap.servers": bs})
for f in adm.create_topics([NewTopic(topic, 1, 1), NewTopic(src, 1, 1)]).values():
    f.result()
killed_tid = f"k-{run}"
child = subprocess.Popen([sys.executable, __file__, bs, "child", killed_tid, topic], stdout=subprocess.PIPE, text=True)
assert child.stdout.readline().strip() == "open"
os.kill(child.pid, signal.SIGKILL); child.wait()
print("producer K killed with its transaction open on partition 0")
g = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False})
def committed():
    return g.committed([TopicPartition(src, 0)], 30)[0].offset
b = Producer({"bootstrap.servers": bs, "transactional.id": f"b-{run}", "linger.ms": 0})
b.init_transactions(30)
for n, off in enumerate([10, 20]):
    b.begin_transaction(); b.produce(topic, value=b"b%d" % n, partition=0); b.flush(30)
    b.send_offsets_to_transaction([TopicPartition(src, 0, off)], g.consumer_group_metadata(), 30)
    b.commit_transaction(30)
    time.sleep(1.0)
    print(f"B committed offset {off}: group offset {committed()}")
time.sleep(5)
print(f"5 s later: group offset {committed()}")
k = Producer({"bootstrap.servers": bs, "transactional.id": killed_tid, "linger.ms": 0})
k.init_transactions(30)
time.sleep(1.0)
print(f"after K's transactional id is initialised again: group offset {committed()}")
b.begin_transaction(); b.produce(topic, value=b"b2", partition=0); b.flush(30)
b.send_offsets_to_transaction([TopicPartition(src, 0, 30)], g.consumer_group_metadata(), 30)
b.commit_transaction(30)
time.sleep(1.0)
print(f"B committed offset 30: group offset {committed()}")
