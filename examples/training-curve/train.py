"""Stands in for a training job: appends one epoch of rows to metrics/train.csv each time it runs.

A real job writes the same rows as it goes (``key,value,step,timestamp``, one row per point); the provider reads
the file only through its last newline, so a row half written when ``pulumi up`` runs waits for the next one.
"""

import csv
import math
import time
from pathlib import Path

STEPS_PER_EPOCH = 50
PATH = Path(__file__).parent / "metrics" / "train.csv"


def main() -> None:
    PATH.parent.mkdir(exist_ok=True)
    rows = PATH.read_text().count("\n") - 1 if PATH.exists() else -1  # the header is no row
    first = max(rows, 0) // 2  # two keys a step
    now = int(time.time() * 1000)
    with PATH.open("a", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        if rows < 0:
            out.writerow(["key", "value", "step", "timestamp"])
        for step in range(first, first + STEPS_PER_EPOCH):
            loss = 2.5 * math.exp(-step / 400) + 0.3
            out.writerow(["loss", round(loss, 4), step, now + step * 100])
            out.writerow(["accuracy", round(1 - loss / 3, 4), step, now + step * 100])
    print(f"{PATH.name}: steps {first} to {first + STEPS_PER_EPOCH - 1} appended")


if __name__ == "__main__":
    main()
