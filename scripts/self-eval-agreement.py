#!/usr/bin/env python3
"""Does a Mind's Mirror student judge its own chains of thought? Reads `self-eval-vote`
predictions (each sampled chain with the student's verdict on it) and scores the verdicts against
whether each sample's answer is right: the verdict shares, agreement, and Cohen's κ (0: no better
than a judge that ignores the chain) — the same statistic `mentor compare` prints for the
teacher's verdicts. Also counts the questions where the samples disagree (some right, some
wrong), the only ones where a verdict can change the vote.

Usage: scripts/self-eval-agreement.py STORE PREDICTIONS.jsonl...
  e.g. scripts/self-eval-agreement.py runs/minds-mirror-row3/k-cots-self-eval-s0/mentor.sqlite \\
         runs/minds-mirror-row3/*-s*/eval/*.test.self-eval-vote.jsonl
STORE is any run store of the grid (the gold answers are read from its `examples` table).
"""
import collections
import json
import sqlite3
import sys


def gold_answers(store):
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    gold = {}
    for ex_id, answer, choices in db.execute("select example_id, answer, choices from examples"):
        labels = [c["label"] for c in json.loads(choices or "[]")]
        gold[ex_id] = (answer, labels)
    return gold


def sample_right(answer, gold):
    """Whether one sample's parsed answer is the gold one (None: no answer read)."""
    if not answer:
        return None
    want, labels = gold
    if answer.get("type") == "choice":
        i = answer.get("value")
        return i is not None and i < len(labels) and labels[i] == want
    try:
        return abs(float(answer.get("value")) - float(want)) < 1e-6
    except (TypeError, ValueError):
        return str(answer.get("text", answer.get("value"))).strip() == str(want).strip()


def kappa(table):
    """Cohen's κ of verdicts (correct / wrong / uncertain) against right / wrong samples."""
    n = sum(table.values())
    if n == 0:
        return None
    count = lambda v, g: table.get((v, g), 0)
    verdict_share = lambda v: (count(v, True) + count(v, False)) / n
    gold_share = lambda g: sum(count(v, g) for v in ("correct", "wrong", "uncertain")) / n
    observed = (count("correct", True) + count("wrong", False)) / n
    chance = verdict_share("correct") * gold_share(True) + verdict_share("wrong") * gold_share(False)
    return None if chance >= 1 else (observed - chance) / (1 - chance)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    gold = gold_answers(sys.argv[1])
    for path in sys.argv[2:]:
        table = collections.Counter()
        unread = no_verdict = mixed = separated = 0
        with open(path) as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                item = json.loads(line)
                if item["id"] not in gold:
                    sys.exit(f"{path}:{line_no}: question {item['id']} is not in the store")
                rights = []
                for v in item.get("votes", []):
                    right = sample_right(v.get("answer"), gold[item["id"]])
                    if right is None:
                        unread += 1
                        continue
                    rights.append((right, v.get("verdict")))
                    if v.get("verdict") is None:
                        no_verdict += 1
                        continue
                    table[(v["verdict"], right)] += 1
                if any(r for r, _ in rights) and not all(r for r, _ in rights):
                    mixed += 1
                    # the verdicts separate the samples: every right one judged correct, every
                    # wrong one not
                    if all((verdict == "correct") == r for r, verdict in rights):
                        separated += 1
        n = sum(table.values())
        agree = table[("correct", True)] + table[("wrong", False)]
        k = kappa(table)
        verdicts = collections.Counter()
        for (v, _), c in table.items():
            verdicts[v] += c
        print(path)
        print(f"  samples judged: {n} (answer unread: {unread}, judgement without a verdict: {no_verdict})")
        print("  verdicts: " + ", ".join(f"{v} {c} ({100 * c / max(n, 1):.1f} %)" for v, c in verdicts.most_common()))
        print(f"  right samples: {sum(c for (v, r), c in table.items() if r)} of {n}")
        print(f"  agreement with the samples' correctness: {100 * agree / max(n, 1):.1f} %, "
              f"Cohen's κ: {'–' if k is None else f'{k:.3f}'}")
        print(f"  questions whose samples disagree: {mixed}; of them the verdicts separate right from wrong: {separated}")


main()
