"""A process and its descendants, from Linux's /proc: for the load test's memory and CPU accounting.

Its own module so that load_test.py (the server's tree) and classroom.py (the Chromium tabs' CPU) share it
without importing each other.
"""
from __future__ import annotations

import os


def children_by_parent() -> dict[int, list[int]]:
    """Every process's children, from one pass over /proc (a pass per process of a tree was a fifth of the
    load-test client's CPU, on the event loop the sessions share)."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    """pid and every process under it (pid first)."""
    kids = children_by_parent()
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(kids.get(p, []))
    return tree
