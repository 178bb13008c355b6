#!/usr/bin/env python3
"""Why do row 1's students differ? Splits each SVAMP cell's test predictions by the gold
equation's number of operations (one vs two or more) and counts answers whose equation uses a
number that is not in the question (a chain of thought that invented an intermediate value).

Usage: scripts/svamp-answer-shapes.py RESULTS_DIR SVAMP_TEST_JSON
  e.g. scripts/svamp-answer-shapes.py results/svamp-row1 …/shared/data/dss/svamp/svamp_test.json
The predictions' ids are `test-N`, the N-th row of the release's test file.
"""
import collections
import glob
import json
import os
import re
import sys

results, test_file = sys.argv[1], sys.argv[2]
raw = open(test_file).read().strip()
try:
    test = json.loads(raw)
except json.JSONDecodeError:
    test = [json.loads(line) for line in raw.splitlines()]


def numbers(s):
    return [float(x) for x in re.findall(r"\d+(?:\.\d+)?", s)]


def operations(s):
    return len(re.findall(r"[-+*/]", s))


print("| cell | one-operation questions right | two or more right | answers with a number not in the question |")
print("|---|---|---|---|")
for cell in sorted(glob.glob(os.path.join(results, "*-s*"))):
    files = [p for p in glob.glob(os.path.join(cell, "eval", "*.test.*.jsonl")) if "best" in p]
    if not files:
        continue
    preds = {r["id"]: r for r in map(json.loads, open(files[0]))}
    c = collections.Counter()
    for i, ex in enumerate(test):
        r = preds.get(f"test-{i}")
        if r is None:
            continue
        group = "one" if operations(ex["label"]) <= 1 else "more"
        c["n " + group] += 1
        c["right " + group] += bool(r["correct"])
        value = (r.get("answer") or {}).get("value")
        text = value.get("text", "") if isinstance(value, dict) else ""
        if text and any(x not in set(numbers(ex["input"])) for x in numbers(text)):
            c["foreign"] += 1
    print(f"| {os.path.basename(cell)} | {c['right one']} / {c['n one']} | {c['right more']} / {c['n more']} | {c['foreign']} |")
