#!/usr/bin/env python3
"""kafka, BUGGY: every node keeps its own logs in memory and numbers
offsets on its own, so sends to two nodes get the same offset for
different messages (the check `kafka` reports offset reuse). Commits are
kept locally too."""
import os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node

node = Node()
logs, committed = {}, {}


@node.handler("send")
def send(msg):
    log = logs.setdefault(msg["body"]["key"], [])
    log.append(msg["body"]["msg"])
    node.reply(msg, {"type": "send_ok", "offset": len(log) - 1})


@node.handler("poll")
def poll(msg):
    out = {}
    for k, start in msg["body"]["offsets"].items():
        pairs = [[o, m] for o, m in enumerate(logs.get(k, [])) if o >= start]
        if pairs:
            out[k] = pairs
    node.reply(msg, {"type": "poll_ok", "msgs": out})


@node.handler("commit_offsets")
def commit_offsets(msg):
    for k, o in msg["body"]["offsets"].items():
        committed[k] = max(committed.get(k, -1), o)
    node.reply(msg, {"type": "commit_offsets_ok"})


@node.handler("list_committed_offsets")
def list_committed_offsets(msg):
    node.reply(msg, {"type": "list_committed_offsets_ok",
                     "offsets": {k: committed[k] for k in msg["body"]["keys"] if k in committed}})


node.run()
