#!/usr/bin/env python3
"""lww-register (reference, correct): last-writer-wins register.

`write{value}` stamps the value with (clock, replica id) and is answered
`write_ok{ts:[clock, replica]}` once a peer has merged it (`replicate` ->
`replicate_ok`; error 0 if none answered in time); `read` answers
`read_ok{value}` (null if never written). The clock is a hybrid logical
clock: a Lamport clock (it follows every stamp seen and adds 1 per write, so
a write that causally follows another wins over it) that never lags the wall
clock in microseconds, so a write that starts after another one ended wins
too, even on a node just restarted empty. Gossip `gossip{stamp:[clock,
replica], value}` every GOSSIP_PERIOD to every peer; merge keeps the greater
stamp, compared as (clock, node number, replica id): no ties, since the
replica id is unique per process start.
"""
import os, sys, time
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, GOSSIP_PERIOD, is_int, replica_order

node = Node()
state = {"stamp": None, "value": None, "clock": 0}


def order(stamp):
    return (stamp[0], replica_order(stamp[1]))


@node.handler("write")
def write(msg):
    value = msg["body"]["value"]
    state["clock"] = max(state["clock"] + 1, time.time_ns() // 1000)
    state["stamp"], state["value"] = [state["clock"], node.replica_id], value
    node.ack_after_replication(msg, {"type": "replicate", "stamp": state["stamp"], "value": value},
                               {"type": "write_ok", "ts": state["stamp"]})


@node.handler("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "value": state["value"]})


@node.crdt
def merge(body):
    clock, replica = body["stamp"]
    if not is_int(clock) or not isinstance(replica, str):
        raise ValueError("bad stamp")
    state["clock"] = max(state["clock"], clock)
    if state["stamp"] is None or order([clock, replica]) > order(state["stamp"]):
        state["stamp"], state["value"] = [clock, replica], body["value"]


def gossip():
    if state["stamp"] is not None:
        node.send_to_peers({"type": "gossip", "stamp": state["stamp"], "value": state["value"]})


node.every(GOSSIP_PERIOD, gossip)
node.run()
