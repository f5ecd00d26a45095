#!/usr/bin/env python3
"""tests/corpus/measure.py BUILD [CORPUS]: replay the evaluation corpus
(../shared/corpus: real spam 2022-2024 and legitimate mail from 2002) through
`kanjiki replay --align` on one timeline and report what the snowshoe
detector did. A measurement, not a pass/fail test: it prints figures.
Exits 0 with "SKIP" when the corpus is absent (users do not have it).

Definitions (issue 4):
  snowshoe-like block: a /24 (not a shared platform) from which the spam
    came with at least 3 distinct client IPs and 3 distinct sender domains
    (registrable domains, as the detector counts them: the envelope
    sender's, else From:'s; subdomains of one helpdesk or mailing service
    are one domain, not a rotation); also reported with the earlier,
    looser count of full envelope-sender domains;
  detection: the share of messages from those blocks, after each block's
    first 3 messages in time order, that were flagged (tag or worse);
  also reported with a stricter block definition: the 3 IPs and 3 domains
    within some 7 days (a burst, rather than a block that over two years
    happened to use 3 addresses), counting that block's messages from its
    first such burst on, after the burst's first 3;
  false positives: the share of legitimate messages flagged, and how many
    were rejected.
"""
import collections
import json
import os
import subprocess
import sys
import time

build = sys.argv[1] if len(sys.argv) > 1 else "build"
here = os.path.dirname(os.path.abspath(__file__))
corpus = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "..", "..", "shared", "corpus")
if not os.path.isdir(os.path.join(corpus, "spam")) or not os.path.isdir(os.path.join(corpus, "ham")):
    print("SKIP corpus measurement: no corpus at %s" % corpus)
    sys.exit(0)

cli = os.path.join(build, "kanjiki")
rules = os.path.join(here, "..", "..", "rules")
t0 = time.time()
p = subprocess.run([cli, "replay", "--align", "--format", "json",
                    "--platforms", os.path.join(rules, "platforms.list"),
                    "--tlds", os.path.join(rules, "risky-tlds.list"),
                    os.path.join(corpus, "spam"), os.path.join(corpus, "ham")],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
wall = time.time() - t0
if p.returncode != 0:
    sys.stderr.write(p.stderr.decode("utf-8", "replace"))
    print("FAIL kanjiki replay exited %d" % p.returncode)
    sys.exit(1)
rows = [json.loads(l) for l in p.stdout.decode("utf-8", "replace").splitlines() if l.strip()]
summary = p.stderr.decode("utf-8", "replace").strip().splitlines()

FLAG = ("tag", "quarantine", "tempfail", "reject")
spam = [r for r in rows if "/spam/" in r["file"]]
ham = [r for r in rows if "/ham/" in r["file"]]

def platform(r):
    return (r.get("block") or "").startswith("platform:")

# snowshoe-like blocks, from the spam itself
blocks = collections.defaultdict(list)
for r in spam:
    b = r.get("block")
    if b and not platform(r) and "/" in b:
        blocks[b].append(r)
def regdom(x):
    return x.get("domain") or ""

def fulldom(x):
    return (x["sender"] or "").split("@")[-1]

def snow_blocks(dom):
    return {b: v for b, v in blocks.items()
            if len({x["client"] for x in v}) >= 3 and len({dom(x) for x in v}) >= 3}

def after_first3(sb):
    rows_ = [x for v in sb.values() for x in v[3:]]   # rows are in time order
    return rows_, sum(1 for x in rows_ if x["action"] in FLAG)

snow = snow_blocks(regdom)
after3, det = after_first3(snow)
snow_full = snow_blocks(fulldom)
after3_full, det_full = after_first3(snow_full)

def share(n, d):
    return "%d/%d (%.2f%%)" % (n, d, 100.0 * n / d if d else 0.0)

print("corpus replay: %d messages (%d spam, %d ham) in %.1f s" % (len(rows), len(spam), len(ham), wall))
for line in summary:
    print("  " + line)
print("snowshoe-like blocks: %d (%s)" % (len(snow), ", ".join(sorted(snow, key=lambda b: -len(snow[b]))[:8])))
print("detection after each block's first 3 messages: " + share(det, len(after3)))
print("  (counting full envelope-sender domains: %d blocks, %s)" % (
    len(snow_full), share(det_full, len(after3_full))))
import datetime

def ts(r):
    return datetime.datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp()

burst_rows = []
for b, v in snow.items():
    start = None
    for i in range(len(v)):
        win = [x for x in v[:i + 1] if ts(v[i]) - ts(x) <= 7 * 86400]
        if len({x["client"] for x in win}) >= 3 and len({regdom(x) for x in win}) >= 3:
            start = i
            break
    if start is not None:
        first = v.index([x for x in v[:start + 1] if ts(v[start]) - ts(x) <= 7 * 86400][0])
        burst_rows += v[first + 3:]
bdet = sum(1 for x in burst_rows if x["action"] in FLAG)
print("detection, stricter (3 IPs and 3 domains within 7 days): " + share(bdet, len(burst_rows)))
hf = sum(1 for r in ham if r["action"] in FLAG)
hr = sum(1 for r in ham if r["action"] == "reject")
print("ham flagged: " + share(hf, len(ham)) + "; ham rejected: %d" % hr)
for r in ham:
    if r["action"] in FLAG:
        print("  flagged ham: %s %s %s score %s %s" % (r["file"], r["client"], r["block"], r["score"],
              " ".join("%s%+g" % (s["signal"], s["weight"]) for s in r["signals"])))
ps = [r for r in spam if platform(r)]
ph = [r for r in ham if platform(r)]
print("shared platforms: spam %d messages (flagged %s), ham %d (flagged %s)" % (
    len(ps), share(sum(1 for r in ps if r["action"] in FLAG), len(ps)),
    len(ph), share(sum(1 for r in ph if r["action"] in FLAG), len(ph))))
acts = collections.Counter(r["action"] for r in spam)
print("all spam by action: " + ", ".join("%s %d" % kv for kv in sorted(acts.items())))
