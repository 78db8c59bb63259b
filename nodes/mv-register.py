#!/usr/bin/env python3
"""mv-register (reference, correct): multi-value register with causal context.

State: `siblings` {dot: value}, dot = (replica id, n), and a version vector
`vv` {replica id: max n seen}. `read` answers `read_ok{value: sorted sibling
values (one per sibling), context: vv}`. `write{value, context}` makes a new
dot; it drops exactly the siblings whose dots the context covers
(context[replica] >= n) and folds the context into vv (those dots are
obsolete here too); siblings the writer never saw survive as concurrent
values. A missing context counts as {}. Contexts are opaque to clients: echo
the one a read returned. The write is answered `write_ok{dot:[replica, n]}`
once a peer has merged the new state (`replicate` -> `replicate_ok`; error 0
if none answered in time).
Gossip `gossip{siblings:[[replica, n, value], ...], vv}` every GOSSIP_PERIOD
to every peer; merge keeps a dot if both sides have it, or if one side has it
and the other side's vv does not cover it; vv merges by max.
"""
import os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, GOSSIP_PERIOD, is_int, sort_values

node = Node()
siblings = {}  # (replica, n) -> value
vv = {}  # replica -> highest n seen


def state(kind):
    return {"type": kind, "vv": dict(vv), "siblings": [[r, n, v] for (r, n), v in siblings.items()]}


def covered(dot, context):
    return context.get(dot[0], 0) >= dot[1]


def fold(context):
    for replica, n in context.items():
        if n > vv.get(replica, 0):
            vv[replica] = n


@node.handler("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "value": sort_values(siblings.values()), "context": vv})


@node.handler("write")
def write(msg):
    value, context = msg["body"]["value"], msg["body"].get("context") or {}
    if not all(is_int(n) for n in context.values()):
        raise ValueError("context must map replica ids to integers")
    for dot in [d for d in siblings if covered(d, context)]:
        del siblings[dot]
    fold(context)
    n = vv[node.replica_id] = vv.get(node.replica_id, 0) + 1
    siblings[(node.replica_id, n)] = value
    node.ack_after_replication(msg, state("replicate"), {"type": "write_ok", "dot": [node.replica_id, n]})


@node.crdt
def merge(body):
    theirs = {(r, n): v for r, n, v in body["siblings"]}
    their_vv = body["vv"]
    for dot in [d for d in siblings if d not in theirs and covered(d, their_vv)]:
        del siblings[dot]
    for dot, value in theirs.items():
        if dot not in siblings and not covered(dot, vv):
            siblings[dot] = value
    fold(their_vv)


def gossip():
    body = state("gossip")
    node.send_to_peers(body)


node.every(GOSSIP_PERIOD, gossip)
node.run()
