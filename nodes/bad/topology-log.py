#!/usr/bin/env python3
"""A broadcast node that logs every `init` and `topology` it gets to stderr
(one line each: `init <json body>`, `topology <json body>`), for the
harness's topology tests. It keeps messages locally and never gossips."""
import json
import sys

node_id = None
messages = []


def reply(msg, body):
    body["in_reply_to"] = msg["body"]["msg_id"]
    sys.stdout.write(json.dumps({"src": node_id, "dest": msg["src"], "body": body}) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    kind = body.get("type")
    if kind in ("init", "topology"):
        print(kind, json.dumps(body, sort_keys=True), file=sys.stderr, flush=True)
    if kind == "init":
        node_id = body["node_id"]
        reply(msg, {"type": "init_ok"})
    elif kind == "topology":
        reply(msg, {"type": "topology_ok"})
    elif kind == "broadcast":
        messages.append(body["message"])
        reply(msg, {"type": "broadcast_ok"})
    elif kind == "read":
        reply(msg, {"type": "read_ok", "messages": messages})
