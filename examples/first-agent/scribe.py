#!/usr/bin/env python3
"""A first agent for the Pit, in Python with nothing but the standard library.

The Pit starts it in its cell's workspace/ with LAZARUS_AGENT (its name) and LAZARUS_CELL_UUID
(its cell) set. Each work cycle it writes its heartbeat, atomically (a temporary file, then a
rename), to ../.lazarus/heartbeats/<agent>.json: while the file is fresh and its cycle advances,
the Pit sees it working.
"""
import json
import os
import time

AGENT = os.environ["LAZARUS_AGENT"]
CELL = os.environ["LAZARUS_CELL_UUID"]
BEATS = os.path.join("..", ".lazarus", "heartbeats")
HEARTBEAT = os.path.join(BEATS, AGENT + ".json")


def beat(cycle: int, status: str) -> None:
    record = {
        "agent": AGENT,
        "pid": os.getpid(),
        "timestamp": time.time(),  # Unix seconds, a float
        "cycle": cycle,  # advance it once per unit of work
        "status": status,
        "cell_uuid": CELL,
    }
    temporary = os.path.join(BEATS, f".{AGENT}.json.{os.getpid()}.0.tmp")
    with open(temporary, "w") as file:
        json.dump(record, file)
    os.replace(temporary, HEARTBEAT)


os.makedirs(BEATS, exist_ok=True)
cycle = 0
while True:
    # ... one unit of real work goes here ...
    beat(cycle, "working")
    cycle += 1
    time.sleep(2)
