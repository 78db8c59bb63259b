#!/usr/bin/env python3
"""mv-register-bug-drop-siblings (BUGGY): keeps only one sibling on merge.

Same state and messages as mv-register.py (`read` -> value + context,
`write{value, context}`, `gossip{siblings, vv}`), but after every gossip
merge only the sibling with the greatest dot (replica id, n) is kept, as if
the register were last-writer-wins. Replicas still converge, but concurrent
writes that no write's context covered are silently dropped.
Must be caught by: data-loss for the MV-Register (a read must return exactly
the writes that are maximal by causal context; here concurrent siblings
vanish).
"""
import os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, GOSSIP_PERIOD, is_int, sort_values

node = Node()
siblings = {}  # (replica, n) -> value
vv = {}  # replica -> highest n seen


def covered(dot, context):
    return context.get(dot[0], 0) >= dot[1]


def fold(context):
    for replica, n in context.items():
        if not is_int(n):
            raise ValueError("bad context")
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
    n = vv.get(node.replica_id, 0) + 1
    vv[node.replica_id] = n
    siblings[(node.replica_id, n)] = value
    node.reply(msg, {"type": "write_ok", "dot": [node.replica_id, n]})


@node.handler("gossip")
def gossip(msg):
    theirs = {(r, n): v for r, n, v in msg["body"]["siblings"]}
    their_vv = msg["body"]["vv"]
    for dot in [d for d in siblings if d not in theirs and covered(d, their_vv)]:
        del siblings[dot]
    for dot, value in theirs.items():
        if dot not in siblings and not covered(dot, vv):
            siblings[dot] = value
    fold(their_vv)
    if len(siblings) > 1:  # BUG: concurrent siblings are dropped
        keep = max(siblings)
        for dot in [d for d in siblings if d != keep]:
            del siblings[dot]


def push():
    state = [[r, n, v] for (r, n), v in siblings.items()]
    node.send_to_peers({"type": "gossip", "siblings": state, "vv": vv})


node.every(GOSSIP_PERIOD, push)
node.run()
