"""Every socket the stack's processes listen on is bound to loopback only."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from infra.settings import Settings
from infra.stack import manager
from infra.stack.base import StackContext

LISTEN = "0A"


def _listening_inodes() -> dict[str, str]:
    """inode -> local address of every listening TCP socket (IPv4 and IPv6)."""
    found = {}
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != LISTEN:
                continue
            hex_ip = fields[1].split(":")[0]
            raw = bytes.fromhex(hex_ip)
            # /proc stores each 32-bit word in host (little-endian) order.
            words = [raw[i : i + 4][::-1] for i in range(0, width // 2, 4)]
            found[fields[9]] = str(ipaddress.ip_address(b"".join(words)))
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _group_pids(leader: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == leader:
                    pids.append(int(entry.name))
            except ProcessLookupError:
                continue
    return pids


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return (mapped or ip).is_loopback


def test_every_stack_listener_is_on_loopback(settings: Settings) -> None:
    ctx = StackContext.from_settings(settings)
    listening = _listening_inodes()
    seen: dict[str, list[str]] = {}
    for service in manager.SERVICES:
        pid = manager.running_pid(service, ctx)
        assert pid is not None, f"{service.name} is not running"
        addresses = [
            listening[inode]
            for member in _group_pids(pid)
            for inode in _socket_inodes(member)
            if inode in listening
        ]
        seen[service.name] = addresses
    assert all(seen.values()), seen
    outside = {
        name: [
            a
            for a in addresses
            if not ipaddress.ip_address(a).is_loopback
            and ipaddress.ip_address(a) != ipaddress.ip_address("::ffff:127.0.0.1")
        ]
        for name, addresses in seen.items()
    }
    assert outside == {name: [] for name in seen}
