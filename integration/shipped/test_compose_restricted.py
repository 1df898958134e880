"""deploy/compose/ in Docker: every container runs as uid/gid 65532 with a read-only root
filesystem, no capability and no privilege escalation, and talks only on the Compose network and to
the host's gateway address.

Checked on the running processes, not only on the configuration: /proc/<pid>/status (the uids and
gids, the effective capabilities), the container's root mount in /proc/<pid>/mountinfo, and the
remote end of every socket in each container's network namespace after traffic went through all
of them (the relay's to the agent and DogStatsD, Traefik's to whoami and to DogStatsD).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import load
from containers import PORT, UID, Compose, Container, gateway, stack, whoami_answer

SERVICES = ["plugin", "relay", "traefik", "whoami"]  # the Datadog agent's is left out (agent-on-host.yml)


def root_mount_options(pid: int) -> set[str]:
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            return set(fields[5].split(","))
    raise AssertionError(f"no root mount for {pid}")


def proc_status(pid: int) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)


def remote_addresses(pid: int) -> set[str]:
    """The remote IPv4 addresses of the sockets in the process's network namespace (0.0.0.0 left out)."""
    out = set()
    for table in ("tcp", "udp"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            ip_hex = line.split()[2].split(":")[0]
            ip = str(ipaddress.IPv4Address(bytes.fromhex(ip_hex)[::-1]))
            if ip != "0.0.0.0":
                out.add(ip)
    return out


def check_restricted(c: Container) -> None:
    cfg, host = c.info["Config"], c.info["HostConfig"]
    assert cfg["User"] == UID, c.service
    assert (host["ReadonlyRootfs"], host["CapDrop"], host["SecurityOpt"], host["Privileged"]) == (
        True, ["ALL"], ["no-new-privileges:true"], False), c.service
    if c.service == "plugin":
        # It copied plugins-local/ and exited.
        assert (c.info["State"]["Status"], c.info["State"]["ExitCode"]) == ("exited", 0)
        return
    assert c.info["State"]["Running"], c.service
    st = proc_status(c.pid)
    assert st["Uid"].split() == ["65532"] * 4 and st["Gid"].split() == ["65532"] * 4, (c.service, st["Uid"], st["Gid"])
    assert (st["CapEff"], st["CapPrm"], st["NoNewPrivs"]) == ("0000000000000000", "0000000000000000", "1"), c.service
    assert "ro" in root_mount_options(c.pid), c.service


def check_network(compose: Compose, c: Container, allowed: list[ipaddress.IPv4Network]) -> None:
    net = f"{compose.name}_default"
    host = c.info["HostConfig"]
    assert list(c.info["NetworkSettings"]["Networks"]) == [net], c.service
    assert host["NetworkMode"] == net and host["PidMode"] == "" and host["IpcMode"] in ("private", "shareable")
    assert host["PortBindings"] == ({"8080/tcp": [{"HostIp": "", "HostPort": "8080"}]} if c.service == "traefik" else {})
    want_hosts = ["datadog-agent:host-gateway"] if c.service in ("relay", "traefik") else None
    assert (host["ExtraHosts"] or None) == want_hosts, c.service
    if c.service == "plugin":
        return
    remote = remote_addresses(c.pid)
    outside = sorted(ip for ip in remote if not any(ipaddress.IPv4Address(ip) in n for n in allowed))
    print(f"{c.service}: remote addresses {sorted(remote)}")
    assert outside == [], f"{c.service} has sockets to {outside}"


def test_every_container_is_restricted_and_stays_on_its_networks(tmp_path) -> None:
    with stack(tmp_path, "tdp-restricted") as s:
        result = load.run(PORT, load.plan(200), 4, check=whoami_answer)
        assert (result.errors, result.wrong) == ([], [])
        s.wait_spans({f"/load/{n}" for n in range(200)})

        assert s.compose.services() == SERVICES
        containers = [s.compose.container(name) for name in SERVICES]
        allowed = [ipaddress.IPv4Network(s.compose.subnet()), ipaddress.IPv4Network(f"{gateway()}/32"), ipaddress.IPv4Network("127.0.0.0/8")]
        for c in containers:
            check_restricted(c)
            check_network(s.compose, c, allowed)
        # The relay and Traefik did reach the agent's address, and only through the gateway name.
        assert gateway() in remote_addresses(s.compose.container("relay").pid)
        hosts = Path(f"/proc/{s.compose.container('relay').pid}/root/etc/hosts").read_text()
        assert f"{gateway()}\tdatadog-agent" in hosts
