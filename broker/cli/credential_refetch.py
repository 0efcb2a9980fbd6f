"""When to hand kubectl the cached credential again, and when not.

kubectl (client-go) runs an exec plugin once per process for a credential it still considers valid, and
runs it again in the same process right after the API server answers 401 — without saying why
(KUBE-SEMANTICS.md). We measured kubectl 1.32: exactly one run per command while the token is good; after a
401 one more run per failed request (discovery retries, so `kubectl get` makes several). So the plugin
remembers which kubectl processes it handed a credential to; when one of them asks again while the credential
is still within its lifetime, the API server refused it (revoked, or its service account deleted), and the
plugin fetches a fresh one instead. The cost is reading /proc/<ppid>/stat; nothing goes over the network.

A process is named by its PID and its start time (so a reused PID is another process). Only runs under a
client that sets KUBERNETES_EXEC_INFO count: a person or a script running `token-broker credential` twice
from one shell gets the cached credential both times.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from broker.cli.credential_cache import Entry

# After fetching for a process, hand that process the same fresh credential for this long even if it asks
# again: if the new token is refused too, another token would not help, and kubectl's retries must not turn
# into one issuance each.
REFETCH_PAUSE_SECONDS = 60.0


def kubectl_process(environ: Mapping[str, str] | None = None, proc: Path = Path("/proc")) -> str | None:
    """ "<pid>:<start time>" of the client-go process running this plugin; None when no such client runs it."""
    environ = os.environ if environ is None else environ
    if "KUBERNETES_EXEC_INFO" not in environ:
        return None
    parent = os.getppid()
    return f"{parent}:{_start_time(proc, parent)}"


def _start_time(proc: Path, pid: int) -> str:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot); "" where there is no /proc (macOS)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return ""
    # the command name (field 2) is in parentheses and may itself contain spaces and parentheses
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def refused_before(entry: Entry, process: str | None, now: float) -> bool:
    """True when `process` already had this still-valid credential and asks again: the server refused it."""
    if process is None or process not in entry.handed_to:
        return False
    just_fetched_for_it = entry.fetched_for == process and now - entry.fetched_at < REFETCH_PAUSE_SECONDS
    return not just_fetched_for_it
