"""The egress rules: which addresses are public in every spelling, what the operator allows,
what a stored config may name; TLS and redirects through the checked connection layer."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from parley.egress import (
    EgressBadURL,
    EgressClient,
    EgressPolicy,
    EgressRefused,
    EgressUnreachable,
    check_url,
    classify,
    config_url_problems,
    egress_client,
    fetch,
)
from parley.settings import Settings
from tests.conftest import make_agent

REFUSED = {
    "127.0.0.1": "a loopback address",
    "127.255.255.254": "a loopback address",
    "0.0.0.0": "an unspecified address",
    "0.1.2.3": "an unspecified address",
    "10.1.2.3": "a private address",
    "172.16.0.1": "a private address",
    "172.31.255.255": "a private address",
    "192.168.1.1": "a private address",
    "100.64.0.1": "a shared (CGNAT) address",
    "100.127.255.255": "a shared (CGNAT) address",
    "169.254.169.254": "the cloud metadata address",
    "169.254.1.1": "a link-local address",
    "224.0.0.1": "a multicast address",
    "239.255.255.250": "a multicast address",
    "255.255.255.255": "the broadcast address",
    "240.0.0.1": "a reserved address",
    "192.0.2.1": "a non-public address",  # documentation range
    "198.18.0.1": "a non-public address",  # benchmarking range
    "::": "an unspecified address",
    "::1": "a loopback address",
    "fe80::1": "a link-local address",
    "fc00::1": "a private address",
    "fd12:3456::1": "a private address",
    "fec0::1": "a private address",
    "ff02::1": "a multicast address",
    "fd00:ec2::254": "the cloud metadata address",
    "2001:db8::1": "a non-public address",
    # IPv6 spellings of refused IPv4 hosts
    "::ffff:127.0.0.1": "a loopback address",
    "::ffff:10.0.0.1": "a private address",
    "::ffff:169.254.169.254": "the cloud metadata address",
    "::127.0.0.1": "a loopback address",  # IPv4-compatible
    "::ffff:0:a00:1": "a private address",  # SIIT-translated 10.0.0.1
    "64:ff9b::a00:1": "a private address",  # NAT64 of 10.0.0.1
    "64:ff9b::7f00:1": "a loopback address",
    "2002:7f00:1::1": "a loopback address",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1": "the cloud metadata address",
}
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "172.32.0.1",
    "100.128.0.1",
    "192.169.0.1",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize(("address", "reason"), REFUSED.items())
def test_refused_ranges(address: str, reason: str) -> None:
    assert classify(ipaddress.ip_address(address)) == reason
    assert EgressPolicy().refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert classify(ipaddress.ip_address(address)) is None


def test_allowed_cidrs_cover_their_ipv6_spellings_and_nothing_else() -> None:
    policy = EgressPolicy.from_settings(
        Settings(egress_allow_cidrs=["10.0.0.0/8", "fd00:1::/64"])  # type: ignore[call-arg]
    )
    for ok in ("10.1.2.3", "::ffff:10.1.2.3", "fd00:1::5"):
        assert policy.refusal(ipaddress.ip_address(ok)) is None, ok
    for refused in ("127.0.0.1", "169.254.169.254", "192.168.0.1", "fd00:2::5"):
        assert policy.refusal(ipaddress.ip_address(refused)) is not None, refused
    assert EgressPolicy.unrestricted().refusal(ipaddress.ip_address("169.254.169.254")) is None


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("http://127.0.0.1:8080/x", "127.0.0.1 is a loopback address"),
        ("http://127.1/", "127.1 is a loopback address"),  # legacy spellings reach 127.0.0.1
        ("http://2130706433/", "is a loopback address"),
        ("http://0x7f000001/", "is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "is a loopback address"),
        ("http://[::ffff:a9fe:a9fe]/latest", "is the cloud metadata address"),
        ("http://169.254.169.254/latest/meta-data/", "is the cloud metadata address"),
        ("http://localhost:8880/v1", "localhost is a loopback name"),
        ("http://LOCALHOST./", "is a loopback name"),
        ("http://api.localhost/", "api.localhost is a loopback name"),
    ],
)
def test_check_url_refuses_literal_addresses_and_loopback_names(url: str, needle: str) -> None:
    with pytest.raises(EgressRefused, match="refused by the egress policy") as err:
        check_url(url, EgressPolicy())
    assert needle in str(err.value)


@pytest.mark.parametrize("url", ["ftp://example.com/a", "file:///etc/passwd", "gopher://x", "x"])
def test_only_http_urls(url: str) -> None:
    with pytest.raises(EgressBadURL):
        check_url(url, EgressPolicy.unrestricted())


def test_names_are_left_to_connect_time() -> None:
    assert check_url("https://api.example.com/v1", EgressPolicy()).host == "api.example.com"
    allow = EgressPolicy.from_settings(
        Settings(egress_allow_cidrs=["127.0.0.1/32"])  # type: ignore[call-arg]
    )
    check_url("http://localhost:8880/", allow)  # the operator allowed loopback


def test_setting_parses_commas_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_EGRESS_ALLOW_CIDRS", " 10.1.2.3/16, fd00::/8 ")
    assert Settings().egress_allow_cidrs == ["10.1.0.0/16", "fd00::/8"]
    monkeypatch.setenv("PARLEY_EGRESS_ALLOW_CIDRS", '["192.168.5.0/24"]')
    assert Settings().egress_allow_cidrs == ["192.168.5.0/24"]
    monkeypatch.setenv("PARLEY_EGRESS_ALLOW_CIDRS", "")
    assert Settings().egress_allow_cidrs == []
    monkeypatch.setenv("PARLEY_EGRESS_ALLOW_CIDRS", "10.0.0.0/33")
    with pytest.raises(ValidationError) as err:
        Settings()
    message = str(err.value).splitlines()[2]
    assert "'10.0.0.0/33' is not a CIDR" in message and "fix: PARLEY_EGRESS_ALLOW_CIDRS=" in message


def _risky_agent() -> Any:
    return make_agent(
        tools=[
            {"type": "end_call"},
            {"type": "http", "name": "crm", "description": "d", "url": "http://10.0.0.5/api"},
            {"type": "http", "name": "ok", "description": "d", "url": "https://api.example.com/"},
        ],
        llm={"provider": "openai", "base_url": "http://169.254.169.254/v1", "model": "m"},
        tts={"provider": "openai", "base_url": "http://localhost:8880/v1", "model": "kokoro"},
    )


def test_config_url_problems_name_each_field(settings: Settings) -> None:
    settings = settings.model_copy(update={"egress_allow_cidrs": []})
    problems = config_url_problems(_risky_agent(), settings)
    assert len(problems) == 3, problems
    crm, llm, tts = problems
    assert crm.startswith("tools[1].url (crm): refused by the egress policy: 10.0.0.5 is a private")
    assert llm.startswith("llm.base_url: ") and "the cloud metadata address" in llm
    assert tts.startswith("tts.base_url: ") and "localhost is a loopback name" in tts
    assert all("fix: " in p and "\n" not in p for p in problems)


def test_trusted_files_and_allowed_ranges_pass(settings: Settings) -> None:
    strict = settings.model_copy(update={"egress_allow_cidrs": []})
    assert config_url_problems(_risky_agent().as_trusted(), strict) == []
    allow = settings.model_copy(
        update={"egress_allow_cidrs": ["10.0.0.0/8", "169.254.169.254/32", "127.0.0.0/8"]}
    )
    assert config_url_problems(_risky_agent(), allow) == []


# --- TLS to a checked address still verifies the host name ---------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, list[str]]]:
    """An HTTPS server on 127.0.0.1 with a certificate for ``svc.test``; records the SNI."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "svc.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("svc.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    sni: list[str] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    context.sni_callback = lambda _sock, name, _ctx: sni.append(str(name)) and None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"host={self.headers['Host']}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], folder / "cert.pem", sni
    server.shutdown()


async def test_tls_goes_to_the_checked_address_and_verifies_the_name(
    tls_server: tuple[int, Path, list[str]],
) -> None:
    port, cert, sni = tls_server
    trust = ssl.create_default_context(cafile=str(cert))
    allow = EgressPolicy.from_settings(
        Settings(egress_allow_cidrs=["127.0.0.1/32"])  # type: ignore[call-arg]
    )

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    async with egress_client(allow, resolver=resolver, verify=trust) as client:
        got = await fetch(f"https://svc.test:{port}/", allow, client=client)
        assert got.status == 200 and got.body == f"host=svc.test:{port}".encode()
        assert sni == ["svc.test"]
        # Same address, another name: the certificate is checked against the name.
        with pytest.raises(EgressUnreachable, match="other.test could not be reached"):
            await fetch(f"https://other.test:{port}/", allow, client=client)


# --- redirects ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def echo_server() -> Iterator[int]:
    """``/go`` 307 → another host's /echo; ``/same`` 303 → /echo; /echo answers what it got."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(size) if size else b""
            port = self.server.server_address[1]
            if self.path in ("/go", "/same"):
                where = f"http://b.test:{port}/echo" if self.path == "/go" else "/echo"
                self.send_response(307 if self.path == "/go" else 303)
                self.send_header("Location", where)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps(
                {"method": self.command, "headers": dict(self.headers), "body": raw.decode()}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


async def test_redirects_keep_credentials_with_their_host(echo_server: int) -> None:
    allow = EgressPolicy(allow_cidrs=(ipaddress.ip_network("127.0.0.1/32"),))

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    secret = {"X-Api-Key": "tenant-secret"}
    other = await fetch(
        f"http://a.test:{echo_server}/go",
        allow,
        method="POST",
        json_body={"a": 1},
        headers=secret,
        resolver=resolver,
    )
    seen = json.loads(other.body)
    assert str(other.url) == f"http://b.test:{echo_server}/echo"
    assert seen["method"] == "POST" and seen["body"] == '{"a":1}'  # 307 keeps both
    assert "X-Api-Key" not in seen["headers"]
    same = await fetch(
        f"http://a.test:{echo_server}/same",
        allow,
        method="POST",
        json_body={"a": 1},
        headers=secret,
        resolver=resolver,
    )
    seen = json.loads(same.body)
    assert seen["method"] == "GET" and seen["body"] == ""  # 303 turns into GET
    assert seen["headers"]["X-Api-Key"] == "tenant-secret"


# --- provider clients -----------------------------------------------------------------------


def test_agent_set_provider_urls_get_the_egress_client(settings: Settings) -> None:
    from pipelines.services.openai.llm import make_llm
    from pipelines.services.openai.tts import make_tts

    strict = settings.model_copy(update={"egress_allow_cidrs": [], "openai_api_key": "k"})
    agent = make_agent(
        llm={"provider": "openai", "base_url": "https://llm.example.com/v1", "model": "m"},
        tts={"provider": "openai", "base_url": "https://tts.example.com/v1", "model": "k"},
    )
    llm = make_llm(agent, strict, str(agent.llm.base_url))
    tts = make_tts(agent, strict, str(agent.tts.base_url))
    for service in (llm, tts):
        http = service._client._client
        assert isinstance(http, EgressClient) and http.policy == EgressPolicy(), service
    # The operator's own endpoint (OPENAI_BASE_URL) is not a tenant's destination.
    plain = make_agent(llm={"provider": "openai", "model": "m"}, tts={"provider": "openai"})
    operator = strict.model_copy(update={"openai_base_url": "http://10.0.0.9/v1"})
    assert not isinstance(
        make_llm(plain, operator, "http://10.0.0.9/v1")._client._client, EgressClient
    )
    assert not isinstance(make_tts(plain, operator, None)._client._client, EgressClient)
