"""A real local Ray cluster for the cluster tests: a head node and one worker node (1 CPU each) on 127.0.0.1.

Started once per test session by ``ray.cluster_utils.Cluster`` (separate raylets, as ``ray start --head`` plus
``ray start --address`` would make), no dashboard, small object stores; this process connects as a driver. The
fixture stops every node it started and checks that none of their processes is left behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before Ray is imported: "localhost" stays 127.0.0.1 (Linux otherwise swaps it for the machine's network address,
# which the nodes, bound to 127.0.0.1, do not listen on). Subprocess drivers inherit it.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

ray = pytest.importorskip("ray", reason="ray not installed (cluster extra: pip install 'm3ret[cluster]')")

NODE_ARGS = dict(num_cpus=1, object_store_memory=200 * 2**20, include_dashboard=False)
STARTUP_ATTEMPTS = 3


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """The address of a 2-node local Ray cluster this process is connected to."""
    import psutil
    from ray.cluster_utils import Cluster

    cluster = Cluster()
    started: set[int] = set()
    try:
        try:
            for _ in range(2):  # head, then one worker node
                _add_node(cluster)
        except Exception as exc:  # noqa: BLE001
            pytest.skip(f"Ray could not start a node within its 30 s limit, {STARTUP_ATTEMPTS} tries (an "
                        f"overloaded machine): {exc}")
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        started = _node_process_ids(cluster)
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.shutdown()
    left = [p for p in started if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not left, f"Ray processes left behind: {left}"


def _add_node(cluster, attempts: int = STARTUP_ATTEMPTS) -> None:  # noqa: ANN001
    """Start one node; Ray gives a raylet 30 s to register, which a busy 2-core machine can miss: retry, after
    killing (by process id) what the failed attempt started."""
    import psutil

    for attempt in range(1, attempts + 1):
        before = {p.pid for p in psutil.Process().children(recursive=True)}
        try:
            cluster.add_node(**NODE_ARGS, node_ip_address="127.0.0.1")
            return
        except Exception:  # noqa: BLE001 (Ray raises a bare Exception on a startup timeout)
            if attempt == attempts:
                raise
            for proc in psutil.Process().children(recursive=True):
                if proc.pid not in before:
                    proc.kill()
            time.sleep(2)


def _node_process_ids(cluster) -> set[int]:  # noqa: ANN001
    """Ids of the processes the cluster's nodes started (raylets, GCS, ...)."""
    ids = set()
    for node in cluster.list_all_nodes():
        for infos in node.all_processes.values():
            ids.update(info.process.pid for info in infos if info.process is not None)
    return ids


def ray_worker_processes(name_part: str) -> list:
    """Live Ray worker processes of this test session's cluster (descendants of this process: its raylets'
    workers) whose title holds ``name_part`` (e.g. ``EmbedActor``); never another Ray on the machine."""
    import psutil

    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if cmdline.startswith("ray::") and name_part in cmdline:
            found.append(proc)
    return found


def files_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())
