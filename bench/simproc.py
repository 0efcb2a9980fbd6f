"""A simulator process with many service accounts already in it (`python -m bench.simproc`).

The same KubeSim `token-broker kube-sim` runs, plus a seeding step straight into its store before it prints
the banner: creating 100,000 accounts through the API would take minutes and measure nothing we care about.
Namespaces are `grow-000`, `grow-001`, …; each holds accounts `sa-00`, `sa-01`, … (plus its `default`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from kubesim import KubeSim, SimOptions
from kubesim.core_v1 import namespace_object
from kubesim.kinds import NAMESPACES, SERVICEACCOUNTS
from kubesim.serve import banner, parse_listen
from kubesim.state import Store

STOP_TIMEOUT = 10.0


def seeded_namespace(i: int) -> str:
    return f"grow-{i:03d}"


def seeded_account(j: int) -> str:
    return f"sa-{j:02d}"


def seed(store: Store, namespaces: int, per_namespace: int) -> int:
    """Create the namespaces and their accounts; returns how many accounts were created."""
    created = 0
    for i in range(namespaces):
        ns = seeded_namespace(i)
        store.create(NAMESPACES, None, namespace_object(ns))
        for j in range(per_namespace):
            store.create(SERVICEACCOUNTS, ns, {"metadata": {"name": seeded_account(j)}})
            created += 1
    return created


async def serve(listen: str, state_dir: Path, namespaces: int, per_namespace: int) -> None:
    host, port = parse_listen(listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sim = KubeSim(SimOptions(), state_dir=state_dir, host=host, port=port)
    await sim.start()
    try:
        created = seed(sim.store, namespaces, per_namespace)
        # let the default-account controller catch up with the new namespaces before anyone asks
        await asyncio.sleep(0)
        print(f"kube-sim: seeded {created} service accounts in {namespaces} namespaces", flush=True)
        for line in banner(sim, state_dir):
            print(line, flush=True)
        await stop.wait()
    finally:
        await asyncio.wait_for(sim.stop(), STOP_TIMEOUT)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--namespaces", type=int, default=1000)
    parser.add_argument("--per-namespace", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.state_dir, args.namespaces, args.per_namespace))


if __name__ == "__main__":
    main()
