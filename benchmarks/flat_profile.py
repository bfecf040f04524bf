"""Summarise a py-spy raw profile of an overhead client: the functions that take the CPU.

    py-spy record -r 200 -f raw -o engine.txt -- \\
        python -m benchmarks._overhead_client engine --base-url URL --key K --out DIR
    python -m benchmarks.flat_profile engine.txt [--top 25] [--within measure]

Only samples of the event loop's thread inside the measured window (a stack through `measure`)
count, so start-up and imports are left out (`--threads` adds the other threads). `self` is the
share of samples in the function itself, `total` the share with the function anywhere on the
stack (once per sample).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    return f"{match['func']} ({match['file']})"


def summarise(path: Path, within: str, top: int, threads: bool = False) -> str:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_name(f) for f in stack.split(";")]
        # the measured window; with threads, the process's other threads too (the aggregator's
        # writers: py-spy counts their fsync waits as active, so they are left out by default)
        wanted = (within + " ", "_bootstrap (threading.py)") if threads else (within + " ",)
        if not any(f.startswith(wanted) for f in frames):
            continue
        n = int(count)
        samples += n
        own[frames[-1]] += n
        for name in set(frames):
            total[name] += n
    if not samples:
        return f"no samples inside {within!r}"
    lines = [f"{samples} samples inside {within}", "", "self %  total %  function"]
    for name, n in own.most_common(top):
        lines.append(f"{100 * n / samples:6.1f}  {100 * total[name] / samples:7.1f}  {name}")
    lines += ["", "total %  function (inclusive, ultra_async only)"]
    ours = [(n, name) for name, n in total.items() if "ultra_async/" in name]
    for n, name in sorted(ours, reverse=True)[:top]:
        lines.append(f"{100 * n / samples:7.1f}  {name}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--within", default="measure")
    parser.add_argument("--threads", action="store_true", help="count other threads' samples too")
    args = parser.parse_args(argv)
    print(summarise(args.profile, args.within, args.top, args.threads))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
