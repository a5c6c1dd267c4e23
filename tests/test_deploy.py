"""The deploy files, exercised by what runs here: Dockerfile, compose.yaml and the systemd
units name commands our CLI accepts, health checks our processes pass (each service is
started from its compose command against a real Redis and its own probe is run), config
and data paths dispatcher reads, and files that exist. Docker's daemon and compose plugin
are not needed: ``docker compose config`` runs only where it works; ``systemd-analyze
verify`` runs where it is installed."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML: a test dependency, via schemathesis

from dispatcher.cli.parser import build_parser
from dispatcher.config import load_settings
from dispatcher.demo import stop
from dispatcher.embedded import free_port
from tests.conftest import repo_root, subprocess_env

ROOT = repo_root()
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
SERVICES = ("worker", "webhooks", "api")
PYTHON = "/opt/dispatcher/venv/bin/python"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in dockerfile():
        if word == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
    return env


def dockerignored(path: str) -> bool:
    """Whether .dockerignore leaves ``path`` out of the build context (last match wins)."""
    ignored = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/").removeprefix("**/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch(p, pattern) or fnmatch(parts[-1], pattern) for p in prefixes):
            ignored = not negate
    return ignored


def accepts(argv: list[str]) -> None:
    """``python -m dispatcher ARGV…`` parses with our CLI (SystemExit 2 if not)."""
    assert argv[:3] == ["python", "-m", "dispatcher"] or argv[1:3] == ["-m", "dispatcher"], argv
    build_parser().parse_args(argv[3:])


def unit(path: Path) -> dict[str, list[str]]:
    """``Section.Key`` → every value (systemd allows a key more than once)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


def probe_url(test: list[str]) -> str:
    """The URL a ``python -c "…urlopen('…')…"`` health check asks for."""
    assert test[:3] == ["CMD", "python", "-c"], test
    found = re.search(r"urlopen\('([^']+)'", test[3])
    assert found, test
    return found.group(1)


def test_the_dockerfile_builds_from_files_that_exist_as_a_user() -> None:
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    copies = [shlex.split(rest) for word, rest in steps if word == "COPY"]
    for *sources, _dest in copies:
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not dockerignored(source), f"{source} is left out by .dockerignore"
    assert dockerignored(".venv") and dockerignored(".env") and dockerignored("tests/x.py")
    copied = {s for *sources, _ in copies for s in sources}
    assert {"pyproject.toml", "README.md", "dispatcher"} <= copied  # what `pip install .` reads
    assert any(w == "RUN" and "pip install ." in r for w, r in steps)
    user = [rest for word, rest in steps if word == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    useradd = next(rest for word, rest in steps if word == "RUN" and "useradd" in rest)
    assert f"--uid {user.split(':')[0]}" in useradd
    env = docker_env()
    assert f"--home-dir {env['DISPATCHER_DATA_DIR']}" in useradd
    assert [c[-1] for c in copies if c[0] == "config/dispatcher.toml"] == [env["DISPATCHER_CONFIG"]]
    cmd = next(rest for word, rest in steps if word == "CMD")
    accepts(orjson.loads(cmd))
    exposed = {int(p) for word, rest in steps if word == "EXPOSE" for p in rest.split()}
    assert exposed == {8091, 8400, 9470}


def test_the_image_paths_are_the_ones_dispatcher_reads(tmp_path: Path) -> None:
    """DISPATCHER_CONFIG and DISPATCHER_DATA_DIR as the image sets them: the settings file
    the image copies is the one used, and loads; the data folder is the one named."""
    env = docker_env()
    config = tmp_path / Path(env["DISPATCHER_CONFIG"]).name
    shutil.copy(ROOT / "config" / "dispatcher.toml", config)
    data = tmp_path / "data"
    run_env = subprocess_env(DISPATCHER_CONFIG=str(config), DISPATCHER_DATA_DIR=str(data))
    run_env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "dispatcher", "config"], env=run_env, cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.splitlines()[:2] == [
        f"config: {config} (DISPATCHER_CONFIG)",
        f"redis: embedded valkey-server, data in {data} (REDIS_URL unset)",
    ]
    assert load_settings(config).providers  # the template the image ships is valid


def test_compose_services_commands_and_health_checks() -> None:
    c = compose()
    assert set(c["services"]) == {"valkey", *SERVICES}
    valkey = c["services"]["valkey"]
    assert valkey["image"].startswith("valkey/valkey:")
    assert valkey["healthcheck"]["test"] == ["CMD", "valkey-cli", "ping"]
    env = docker_env()
    served = {"worker": None, "webhooks": "/healthz", "api": "/readyz"}
    for name in SERVICES:
        s = c["services"][name]
        assert s["build"] == "." and (ROOT / "Dockerfile").is_file()
        accepts(s["command"])
        assert s["environment"]["REDIS_URL"] == "redis://valkey:6379/0"
        assert s["environment"]["DISPATCHER_CONFIG"] == env["DISPATCHER_CONFIG"]
        assert s["environment"]["DISPATCHER_LOG_FORMAT"] == "json"
        assert s["depends_on"]["valkey"]["condition"] == "service_healthy"
        for volume in s["volumes"]:
            source, target, _mode = volume.split(":")
            assert (ROOT / source).is_file() and target == env["DISPATCHER_CONFIG"]
        test = s["healthcheck"]["test"]
        if served[name] is None:
            assert test[0] == "CMD"
            accepts(test[1:])
            assert test[1:] == ["python", "-m", "dispatcher", "worker", "--check"]
        else:
            url = probe_url(test)
            port = s["command"][s["command"].index("--port") + 1]
            assert url == f"http://127.0.0.1:{port}{served[name]}"
            assert s["ports"] == [f"{port}:{port}"]
    assert "DISPATCHER_API_TOKENS" in c["services"]["api"]["environment"]
    grace = int(c["services"]["worker"]["stop_grace_period"].rstrip("s"))
    assert grace > load_settings(ROOT / "config" / "dispatcher.toml").worker.drain_timeout_seconds
    if shutil.which("docker") and subprocess.run(
        ["docker", "compose", "version"], capture_output=True, check=False
    ).returncode == 0:  # fmt: skip
        done = subprocess.run(
            ["docker", "compose", "config", "--quiet"], cwd=ROOT, capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr


def _config(tmp: Path, prefix: str) -> Path:
    path = tmp / "dispatcher.toml"
    path.write_text(
        f'prefix = "{prefix}"\n[providers.cloudaten]\nbase_url = "http://127.0.0.1:9"\n'
        '[providers.cloudaten.accounts.default]\napi_key = "deploy-test-key-0123"\n'
    )
    return path


def _probe(argv: list[str], env: dict[str, str]) -> int:
    return subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False).returncode


def _until_probe(argv: list[str], env: dict[str, str], proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while _probe(argv, env) != 0:
        assert proc.poll() is None, f"exited {proc.returncode}: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, f"{argv} never passed"
        time.sleep(0.1)


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_passes_its_own_health_check(
    name: str, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """The compose command, bound to loopback on a free port, against a real Redis; then
    the compose health check, pointed at that port, passes, and fails once it stops."""
    s = compose()["services"][name]
    argv = [sys.executable, *s["command"][1:]]
    for flag in ("--host", "--metrics-host"):
        if flag in argv:
            argv[argv.index(flag) + 1] = "127.0.0.1"
    port_flag = "--metrics-port" if name == "worker" else "--port"
    argv[argv.index(port_flag) + 1] = str(free_port())
    env = subprocess_env(
        REDIS_URL=redis_url, DISPATCHER_CONFIG=str(_config(tmp_path, prefix)),
        DISPATCHER_WEBHOOK_SECRET="deploy-test-secret-0123456789",
        DISPATCHER_API_TOKENS="deploy=deploy-test-token-0123456789",
    )  # fmt: skip
    test = s["healthcheck"]["test"]
    if name == "worker":
        check = [sys.executable, *test[2:]]
        assert _probe(check, env) == 1  # no worker yet: the group is missing
    else:
        port = argv[argv.index("--port") + 1]
        check = [
            sys.executable,
            "-c",
            test[3].replace(probe_url(test).split("/")[2], f"127.0.0.1:{port}"),
        ]
    proc = subprocess.Popen(
        argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _until_probe(check, env, proc)
    finally:
        stop(proc)
    if name != "worker":  # the probe can fail: nobody answers any more
        assert _probe(check, env) != 0


@pytest.mark.parametrize("path", UNITS, ids=[p.name for p in UNITS])
def test_systemd_unit(path: Path) -> None:
    u = unit(path)
    argv = shlex.split(u["Service.ExecStart"][0])
    assert argv[0] == PYTHON
    accepts(argv)
    assert argv[3] == path.stem.removeprefix("dispatcher-")
    assert u["Service.User"] == u["Service.Group"] == ["dispatcher"]
    assert u["Service.EnvironmentFile"] == ["/etc/dispatcher/dispatcher.env"]
    env = dict(e.split("=", 1) for e in u["Service.Environment"])
    image = docker_env()
    assert env["DISPATCHER_CONFIG"] == image["DISPATCHER_CONFIG"]
    assert env["DISPATCHER_DATA_DIR"] == image["DISPATCHER_DATA_DIR"]
    assert env["DISPATCHER_DATA_DIR"] == f"/var/lib/{u['Service.StateDirectory'][0]}"
    assert u["Service.Restart"] == ["on-failure"]
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("ProtectHome", "yes"), ("PrivateTmp", "yes")):  # fmt: skip
        assert u[f"Service.{key}"] == [value], key
    assert u["Install.WantedBy"] == ["multi-user.target"]


def test_readme_tells_the_units_conventions() -> None:
    """The user, the secrets file and the install folder the units expect are the ones
    README tells an operator to create."""
    readme = (ROOT / "README.md").read_text()
    for path in UNITS:
        u = unit(path)
        assert path.name in readme
        assert u["Service.EnvironmentFile"][0] in readme
        assert shlex.split(u["Service.ExecStart"][0])[0].removesuffix("/bin/python") in readme
        assert f"useradd --system --home-dir /var/lib/{u['Service.StateDirectory'][0]}" in readme
        assert u["Service.User"][0] == "dispatcher"


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    """``systemd-analyze verify`` on each unit, its program pointed at this Python (the
    unit's own path exists only where it is installed): no error and no warning."""
    tool = shutil.which("systemd-analyze")
    assert UNITS, "no unit in deploy/systemd"
    if tool is None:  # parsed above; nothing more can check them here
        return
    copies = []
    for path in UNITS:
        copy = tmp_path / path.name
        copy.write_text(path.read_text().replace(PYTHON, sys.executable))
        copies.append(str(copy))
    done = subprocess.run(
        [tool, "verify", *copies], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), (
        done.stdout + done.stderr
    )
    for name in copies:
        sec = subprocess.run(
            [tool, "security", "--offline=true", name], capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        level = re.search(r"Overall exposure level for \S+: ([\d.]+)", sec.stdout)
        assert level and float(level.group(1)) <= 2.5, sec.stdout[-500:] + sec.stderr


def test_the_secrets_file_names_only_variables_dispatcher_reads() -> None:
    names = [
        line.split("=", 1)[0]
        for line in (ROOT / "deploy" / "systemd" / "dispatcher.env.example")
        .read_text()
        .splitlines()
        if line and not line.startswith("#")
    ]
    assert {"REDIS_URL", "DISPATCHER_WEBHOOK_SECRET", "DISPATCHER_API_TOKENS"} <= set(names)
    sources = "\n".join(p.read_text() for p in (ROOT / "dispatcher").rglob("*.py"))
    sources += (ROOT / "config" / "dispatcher.toml").read_text()
    for name in names:
        assert f'"{name}"' in sources, f"{name} is read nowhere"
