#!/usr/bin/env python3
"""or-set (reference, correct): add-wins observed-remove set.

State: `entries` {element: set of dots}, a dot being (replica id, n), and a
causal context `ctx` {replica id: max n seen}. `add{element}` makes a new
dot, answered `add_ok{dot:[replica, n]}`; `remove{element}` drops the
element's dots this node has seen, answered `remove_ok{removed:[dots]}` (the
removed dots stay covered by ctx, which acts as the tombstone). Concurrent
adds elsewhere carry dots outside our ctx, so they survive the merge: add
wins. Both are answered once a peer has merged the new state (`replicate`
-> `replicate_ok`; error 0 if none answered in time).
Gossip every GOSSIP_PERIOD to every peer:
`gossip{entries:[[element, [[replica, n], ...]], ...], ctx:{replica: n}}`.
Merge keeps a dot if both sides have it, or if one side has it and the other
side's ctx does not cover it; ctx merges by max.
"""
import os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, GOSSIP_PERIOD, canon, sort_values

node = Node()
entries = {}  # canonical element -> set of (replica, n)
values = {}  # canonical element -> element
ctx = {}  # replica -> highest n seen


def state(kind):
    return {"type": kind, "ctx": dict(ctx),  # a snapshot: replicate may resend it later
            "entries": [[values[k], sorted(dots)] for k, dots in entries.items()]}


@node.handler("add")
def add(msg):
    element = msg["body"]["element"]
    n = ctx[node.replica_id] = ctx.get(node.replica_id, 0) + 1
    key = canon(element)
    values[key] = element
    entries.setdefault(key, set()).add((node.replica_id, n))
    node.ack_after_replication(msg, state("replicate"), {"type": "add_ok", "dot": [node.replica_id, n]})


@node.handler("remove")
def remove(msg):
    removed = entries.pop(canon(msg["body"]["element"]), set())
    node.ack_after_replication(msg, state("replicate"),
                               {"type": "remove_ok", "removed": sorted(map(list, removed))})


@node.handler("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "value": sort_values(values[k] for k in entries)})


def covered(dot, context):
    return context.get(dot[0], 0) >= dot[1]


@node.crdt
def merge(body):
    theirs_ctx, theirs = body["ctx"], {}
    for element, dots in body["entries"]:
        key = canon(element)
        values.setdefault(key, element)
        theirs[key] = {(r, n) for r, n in dots}
    for key in set(entries) | set(theirs):
        mine, other = entries.get(key, set()), theirs.get(key, set())
        kept = (mine & other) | {d for d in mine - other if not covered(d, theirs_ctx)} \
            | {d for d in other - mine if not covered(d, ctx)}
        if kept:
            entries[key] = kept
        else:
            entries.pop(key, None)
    for replica, n in theirs_ctx.items():
        if n > ctx.get(replica, 0):
            ctx[replica] = n


def gossip():
    body = state("gossip")
    node.send_to_peers(body)


node.every(GOSSIP_PERIOD, gossip)
node.run()
