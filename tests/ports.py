"""Free loopback ports for the servers tests start, chosen below the kernel's ephemeral range.

A server often binds its port a while after the port was found free (a broker after keytool, a service
restarted by a fault): a port in the ephemeral range may meanwhile be taken by any outgoing
connection on the machine. Ports handed out once in a session are never handed out again.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_given: set[int] = set()


def ephemeral_ports() -> range:
    """The kernel's range for the local ports of outgoing connections."""
    try:
        low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_ports(run: int = 1) -> int:
    """The first of `run` consecutive free loopback ports below the ephemeral range, none handed out before."""
    top = min(ephemeral_ports().start, 65536) - run
    for _ in range(500):
        first = random.randrange(20000, top)
        ports = range(first, first + run)
        if _given.intersection(ports):
            continue
        try:
            for port in ports:
                with socket.socket() as taken:
                    taken.bind(("127.0.0.1", port))
        except OSError:
            continue
        _given.update(ports)
        return first
    raise RuntimeError(f"no {run} consecutive free ports")


def free_port() -> int:
    return free_ports(1)
