# Probe: how long does a fresh subscribe() take to get an assignment from tansu's group coordinator?
from common import *
t = uniq("j-topic"); create_topic(t, 3)
g = uniq("G")
c = Consumer({"bootstrap.servers": BOOT, "group.id": g, "enable.auto.commit": False,
              "auto.offset.reset": "earliest", "session.timeout.ms": 10000,
              "max.poll.interval.ms": 10000})
t0 = time.time(); c.subscribe([t])
while not c.assignment() and time.time() - t0 < 90:
    c.poll(0.5)
print("assignment after %.1fs:" % (time.time() - t0), [x.partition for x in c.assignment()])
print("metadata:", c.consumer_group_metadata())
c.close()
