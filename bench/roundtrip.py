"""The baseline: a plain libyaml round-trip of stdin to stdout (C loader and C dumper).

Prints `{"wall": ..., "cpu": ...}` on stderr: the seconds the load and dump took inside
the process, so one run gives both the in-process and the whole-process figure.
"""

from __future__ import annotations

import json
import sys
import time

import yaml


def roundtrip(data: bytes) -> str:
    documents = yaml.load_all(data, Loader=yaml.CSafeLoader)
    return yaml.dump_all(documents, Dumper=yaml.CSafeDumper)


def main() -> None:
    data = sys.stdin.buffer.read()
    wall, cpu = time.perf_counter(), time.process_time()
    text = roundtrip(data)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    sys.stdout.write(text)
    sys.stdout.flush()
    sys.stderr.write(json.dumps({"wall": wall, "cpu": cpu}) + "\n")


if __name__ == "__main__":
    main()
