"""Run one command and report what it cost: `python -S child.py REPORT TIMEOUT CMD...`.

Why a go-between: on Linux a child's peak RSS (`ru_maxrss`) starts from the RSS of the
process that spawned it, so a command spawned by the benchmark (which holds the corpus
and its copies) would inherit hundreds of MiB. Spawned from this small process (started
with -S, a few MiB), the figure is the command's own.

stdin, stdout and stderr are passed through; REPORT gets JSON with the command's wall
time (spawn to exit), user + system CPU seconds, peak RSS in bytes and exit code. The
command is killed after TIMEOUT seconds.
"""

import json
import os
import shutil
import signal
import sys
import time


def main() -> int:
    report, timeout, command = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    program = shutil.which(command[0]) or command[0]
    start = time.perf_counter()
    pid = os.posix_spawn(program, command, os.environ)
    signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
    signal.setitimer(signal.ITIMER_REAL, timeout)
    while True:
        try:
            _, status, usage = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    wall = time.perf_counter() - start
    signal.setitimer(signal.ITIMER_REAL, 0)
    code = os.waitstatus_to_exitcode(status)
    with open(report, "w") as out:
        json.dump(
            {
                "wall": wall,
                "cpu": usage.ru_utime + usage.ru_stime,
                "max_rss": usage.ru_maxrss * 1024,  # Linux reports KiB
                "returncode": code,
            },
            out,
        )
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
