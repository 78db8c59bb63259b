#!/usr/bin/env python3
"""or-set-bug-remove-wins (BUGGY): a remove also kills concurrent adds it never saw.

A converging CRDT, but remove-wins where the workload wants add-wins. Per
element: `tombs` {replica: how many removes of it that replica made} and
`adds` {dot: cleared}, where `cleared` is the tombs the adding node had seen
when it added. An add is visible iff its `cleared` covers every tomb of its
element, so a remove hides every add that did not causally follow it,
including concurrent adds on other nodes that it never observed (an add-wins
OR-set keeps those). Same replies as or-set.py: `add_ok{dot}`,
`remove_ok{removed}` (the visible dots it observed). Gossip
`gossip{adds:[[element, [[replica, n, cleared], ...]], ...], tombs:[[element,
{replica: count}], ...]}` every GOSSIP_PERIOD, merged by union / max.
Must be caught by: data-loss for the OR-Set (present iff an add dot survives
every remove that observed it): an element is missing although one of its
acknowledged adds was observed by no remove.
"""
import os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, GOSSIP_PERIOD, canon, sort_values

node = Node()
values, adds, tombs = {}, {}, {}  # canonical element -> element / {dot: cleared} / {replica: count}
counter = [0]


def visible(key):
    tomb = tombs.get(key, {})
    return {d for d, cleared in adds.get(key, {}).items()
            if all(cleared.get(r, 0) >= c for r, c in tomb.items())}


def prune(key):  # hidden adds stay hidden forever: tombs only grow
    keep = visible(key)
    adds[key] = {d: c for d, c in adds.get(key, {}).items() if d in keep}


@node.handler("add")
def add(msg):
    element = msg["body"]["element"]
    key = canon(element)
    values[key] = element
    counter[0] += 1
    adds.setdefault(key, {})[(node.replica_id, counter[0])] = dict(tombs.get(key, {}))
    node.reply(msg, {"type": "add_ok", "dot": [node.replica_id, counter[0]]})


@node.handler("remove")
def remove(msg):
    element = msg["body"]["element"]
    key = canon(element)
    values[key] = element
    observed = visible(key)
    tomb = tombs.setdefault(key, {})
    tomb[node.replica_id] = tomb.get(node.replica_id, 0) + 1  # BUG: hides unseen adds too
    prune(key)
    node.reply(msg, {"type": "remove_ok", "removed": sorted(map(list, observed))})


@node.handler("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "value": sort_values(values[k] for k in adds if visible(k))})


@node.handler("gossip")
def gossip(msg):
    for element, theirs in msg["body"]["tombs"]:
        key = canon(element)
        values.setdefault(key, element)
        mine = tombs.setdefault(key, {})
        for replica, c in theirs.items():
            mine[replica] = max(mine.get(replica, 0), c)
    for element, theirs in msg["body"]["adds"]:
        key = canon(element)
        values.setdefault(key, element)
        for replica, n, cleared in theirs:
            adds.setdefault(key, {})[(replica, n)] = cleared
    for key in list(adds):
        prune(key)


def push():
    body = {"type": "gossip", "tombs": [[values[k], t] for k, t in tombs.items()],
            "adds": [[values[k], [[r, n, c] for (r, n), c in a.items()]] for k, a in adds.items()]}
    node.send_to_peers(body)


node.every(GOSSIP_PERIOD, push)
node.run()
