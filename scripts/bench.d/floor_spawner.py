#!/usr/bin/env python3
"""The floor of scenario 1: the least a supervisor can do to restart a crashed engine.

    floor_spawner.py COUNT LOGFILE ENV_JSON ARGV...

Spawns ARGV (posix_spawn, new session, stdout+stderr appended to LOGFILE, exactly the
environment in ENV_JSON), waits on a pidfd (poll), reaps it and spawns it again at once,
COUNT times in all. Nothing else: no port check, no state, no log rotation.
"""
import json
import os
import select
import signal
import sys


def main() -> int:
    count, logfile, env = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    argv = sys.argv[4:]
    child = [0]

    def stop(signum, frame):
        if child[0]:
            try:
                os.killpg(child[0], signal.SIGKILL)
            except OSError:
                pass
        os._exit(1)

    signal.signal(signal.SIGTERM, stop)
    actions = [
        (os.POSIX_SPAWN_OPEN, 1, logfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    poller = select.poll()
    for _ in range(count):
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=True)
        child[0] = pid
        fd = os.pidfd_open(pid)
        poller.register(fd, select.POLLIN)
        poller.poll()
        poller.unregister(fd)
        os.waitpid(pid, 0)
        os.close(fd)
        child[0] = 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
