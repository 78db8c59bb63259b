#!/usr/bin/env python3
"""A g-counter node that misbehaves on purpose, for the harness's bad-input
tests. The first argument picks the misbehaviour:

  garbage       every 5th request also gets a line that is not JSON and a
                message without a body
  unknown-reply every 5th request is answered with an unknown in_reply_to
  huge-number   reads return a number that does not fit in 64 bits
  exit          the process exits after 20 client requests
  silent-init   never answers init
  hang          answers init, then never answers anything

Otherwise it is a single-node-correct counter: it adds locally and never
gossips (the tests use one node).
"""
import json
import sys

mode = sys.argv[1] if len(sys.argv) > 1 else "garbage"
node_id = None
total = 0
requests = 0


def send(dest, body):
    sys.stdout.write(json.dumps({"src": node_id, "dest": dest, "body": body}) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    if body["type"] == "init":
        node_id = body["node_id"]
        if mode != "silent-init":
            send(msg["src"], {"type": "init_ok", "in_reply_to": body["msg_id"]})
        continue
    requests += 1
    if mode == "hang":
        continue
    if mode == "exit" and requests > 20:
        sys.exit(3)
    reply = {"in_reply_to": body["msg_id"]}
    if body["type"] == "add":
        total += body["delta"]
        reply["type"] = "add_ok"
    else:
        reply["type"] = "read_ok"
        reply["value"] = 18446744073709551616000 if mode == "huge-number" else total
    if requests % 5 == 0 and mode == "garbage":
        sys.stdout.write("this is not json {\n")
        sys.stdout.write(json.dumps({"src": node_id, "dest": msg["src"]}) + "\n")
    if requests % 5 == 0 and mode == "unknown-reply":
        reply["in_reply_to"] = body["msg_id"] + 1_000_000
    send(msg["src"], reply)
