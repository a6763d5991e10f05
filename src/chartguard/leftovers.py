"""Temporary files and directories named for the process that made them, so a restart can tell
what a killed process left behind from what a live one is still writing.

A SIGKILL (a pod killed, the node out of memory) between creating a temporary and renaming or
removing it leaves it there: a partial chart archive in the store, a helm work directory with
the values file (which holds Secret values) in helm's home. Its name carries ``<pid>@<host>``;
at start-up a process removes those of its host whose process is gone, and those bearing its
own pid (a container restarted is pid 1 again, and nothing is in flight yet), never another
live process's (two replicas sharing a volume): those age out.
"""

from __future__ import annotations

import os
import socket

__all__ = ["left_behind", "owner_tag"]


def owner_tag() -> str:
    """``<pid>@<host>``: what a temporary's name carries after its prefix."""
    return f"{os.getpid()}@{socket.gethostname()}"


def left_behind(name: str, prefix: str) -> bool:
    """True when ``name`` is ``<prefix><pid>@<host>-...`` of this host, and that process is
    gone or is this one (called at start-up, before anything is written)."""
    if not name.startswith(prefix):
        return False
    pid_text, at, rest = name[len(prefix):].partition("@")
    host, dash, _ = rest.rpartition("-")
    if not (at and dash and pid_text.isdigit()) or host != socket.gethostname():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OverflowError:  # no such pid can exist
        return True
    except PermissionError:  # alive, another user's
        return False
    return False
