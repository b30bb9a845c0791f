"""Image URLs: every malformed one is the caller's BadRequestImageUrl, never a server error; each address is judged
(public always, private and loopback only where opened, IPv6 forms by the IPv4 address they embed), and the
platform's own ports on this machine are never reached, however the address is written."""

import ipaddress
import socket

import httpx
import pytest
from image_server import serving

from kubevision.core.settings import GatewaySettings
from kubevision.gateway import images, url_policy
from kubevision.gateway.errors import CustomVisionError

CLUSTER = GatewaySettings()
LOCAL = GatewaySettings(mode="local", allow_loopback_urls=True)
OPEN = GatewaySettings(allow_private_urls=True)
PLATFORM_PORT = 9333


def allowed(address: str, settings: GatewaySettings, port: int = 80, platform_ports=frozenset()) -> bool:
    return url_policy.allowed(ipaddress.ip_address(address), port, settings, platform_ports)


def this_machines_address() -> str:
    """The address of the interface this machine's default route leaves by (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        return probe.getsockname()[0]


@pytest.mark.parametrize(("address", "cluster", "local"), [
    ("93.184.216.34", True, True),       # a public address
    ("127.0.0.1", False, True),          # loopback: local mode only
    ("10.0.0.7", False, False),          # the cluster's own network
    ("192.168.1.10", False, False),
    ("169.254.169.254", False, False),   # cloud metadata endpoint
    ("::ffff:169.254.169.254", False, False),
    ("fd00::1", False, False),
    ("::1", False, True),
])
def test_image_urls_reach_public_addresses_only_unless_opened(address, cluster, local):
    assert allowed(address, CLUSTER) is cluster
    assert allowed(address, LOCAL) is local
    assert allowed(address, OPEN) is True


@pytest.mark.parametrize(("address", "embedded"), [
    ("::ffff:127.0.0.1", ["127.0.0.1"]),                  # IPv4-mapped
    ("::ffff:0:a9fe:a9fe", ["169.254.169.254"]),          # IPv4-translated
    ("::10.0.0.7", ["10.0.0.7"]),                         # IPv4-compatible
    ("64:ff9b::7f00:1", ["127.0.0.1"]),                   # NAT64, well-known prefix
    # NAT64 local-use: read at each prefix length a network may use (/48, /56, /64, /96), octet 8 skipped
    ("64:ff9b:1:a9fe:a9:fe00::", ["169.254.169.254", "254.169.254.0", "169.254.0.0", "0.0.0.0"]),
    ("64:ff9b:1::a9fe:a9fe", ["0.0.0.0", "0.0.0.0", "0.0.0.169", "169.254.169.254"]),
    ("2002:c0a8:10a::1", ["192.168.1.10"]),               # 6to4
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", ["65.54.227.120", "127.0.0.1"]),  # Teredo: server, client inverted
    ("2001:db8::1", []),
    ("::1", []),
    ("::", []),
])
def test_ipv6_forms_that_embed_ipv4_give_the_address(address, embedded):
    found = url_policy.embedded_ipv4(ipaddress.IPv6Address(address))
    assert [str(a) for a in found] == embedded


@pytest.mark.parametrize("address", [
    "::ffff:0:7f00:1", "::ffff:0:a00:7", "::127.0.0.1", "::169.254.169.254", "64:ff9b::a9fe:a9fe",
    "64:ff9b::c0a8:10a", "64:ff9b:1:7f00:0:100::", "64:ff9b:1::a9fe:a9fe", "2002:7f00:1::", "2002:a9fe:a9fe::1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo whose client is 127.0.0.1
    "2001:0:4136:e378:8000:63bf:f5ff:fff8",  # ... 10.0.0.7
])
def test_an_ipv6_form_of_a_private_ipv4_address_is_refused_on_a_cluster(address):
    assert allowed(address, CLUSTER) is False


def test_an_ipv6_form_of_a_public_ipv4_address_is_judged_as_that_address():
    for address in ("::ffff:0:5db8:d822", "64:ff9b::5db8:d822", "2002:5db8:d822::1"):  # 93.184.216.34
        assert allowed(address, CLUSTER) is True


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.0.0.2", "::1", "0.0.0.0", "::", "::ffff:127.0.0.1", "::127.0.0.1", "::ffff:0:7f00:1",
    "64:ff9b::7f00:1", "2002:7f00:1::", "2001:0:4136:e378:8000:63bf:80ff:fffe",
])
def test_the_platforms_ports_on_loopback_are_refused_in_local_mode(address):
    assert allowed(address, LOCAL, PLATFORM_PORT, {PLATFORM_PORT}) is False
    assert allowed(address, OPEN, PLATFORM_PORT, {PLATFORM_PORT}) is False


def test_another_loopback_port_stays_open_in_local_mode():
    assert allowed("127.0.0.1", LOCAL, 8000, {PLATFORM_PORT}) is True
    assert allowed("::ffff:127.0.0.1", LOCAL, 8000, {PLATFORM_PORT}) is True
    assert allowed("93.184.216.34", LOCAL, PLATFORM_PORT, {PLATFORM_PORT}) is True  # another machine's port


def test_the_platforms_ports_on_this_machines_own_address_are_refused():
    own = this_machines_address()
    assert url_policy.on_this_machine(ipaddress.ip_address(own))
    assert not url_policy.on_this_machine(ipaddress.ip_address("93.184.216.34"))
    assert allowed(own, OPEN, PLATFORM_PORT, {PLATFORM_PORT}) is False
    assert allowed(own, OPEN, 8000, {PLATFORM_PORT}) is True


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:99999/x.jpg",            # port out of range
    "http://127.0.0.1:-1/x.jpg",
    "http://127.0.0.1:0/x.jpg",
    "http://127.0.0.1:abc/x.jpg",              # not a number
    "http://[::1]:80:80/x.jpg",
    "http://a..b/x.jpg",                       # an empty label
    "http://.example.com/x.jpg",
    "http://[::1/x.jpg",                       # an unclosed bracket
    "http://[not-an-address]/x.jpg",
    "http://[::1]junk:80/x.jpg",
    "http://user:secret@127.0.0.1/x.jpg",      # userinfo, and the tricks it allows
    "http://example.com:80@127.0.0.1/x.jpg",
    "http://example.com\\@127.0.0.1/x.jpg",
    "http://" + "a" * 64 + ".com/x.jpg",       # a label over 63 characters
    "http://" + "abcdefgh." * 30 + "com/x.jpg",  # a name over 253
    "http://a\u200eb.com/x.jpg",               # a character IDNA forbids
    "http://\ufffd.com/x.jpg",
    "http://exa mple.com/x.jpg",               # whitespace and controls
    " http://example.com/x.jpg",
    "http://example.com/x.jpg\n",
    "http://exa\x00mple.com/x.jpg",
    "http:///x.jpg",
    "ftp://example.com/x.jpg",
    "example.com/x.jpg",
    "",
])
async def test_a_malformed_url_is_bad_request_image_url(url):
    with pytest.raises(CustomVisionError) as error:
        url_policy.parse(url)
    assert error.value.code == "BadRequestImageUrl" and error.value.message
    async with httpx.AsyncClient() as client:  # and fetching it says the same, without a request
        with pytest.raises(CustomVisionError) as fetched:
            await images.fetch(url, client, LOCAL, platform_ports=frozenset)
    assert fetched.value.code == "BadRequestImageUrl"


def test_a_well_formed_url_gives_its_host_in_ascii_and_its_port():
    assert url_policy.parse("http://Bücher.Example/x.jpg") == url_policy.Target(
        "http", "xn--bcher-kva.example", 80, "xn--bcher-kva.example")
    assert url_policy.parse("https://[::1]:8443/x.jpg") == url_policy.Target("https", "::1", 8443, "[::1]:8443")
    assert url_policy.parse("https://example.com./x%20y.jpg?a=b") == url_policy.Target(
        "https", "example.com.", 443, "example.com.")


async def test_every_way_of_writing_loopback_is_refused_at_a_platform_port_and_fetched_elsewhere():
    with serving({"x.png": b"image bytes"}) as base:
        port = int(base.rsplit(":", 1)[1])
        hosts = ["127.0.0.1", "localhost", "2130706433", "0x7f.1", "017700000001", "127.1", "0.0.0.0",
                 "[::ffff:127.0.0.1]", "[::ffff:7f00:1]"]
        async with httpx.AsyncClient() as client:
            for host in hosts:
                url = f"http://{host}:{port}/x.png"
                if host != "0.0.0.0":  # never fetched: an unspecified address is no image server's
                    assert await images.fetch(url, client, LOCAL, platform_ports=frozenset) == b"image bytes", url
                with pytest.raises(CustomVisionError) as error:
                    await images.fetch(url, client, LOCAL, platform_ports=lambda: {port})
                assert error.value.code == "BadRequestImageUrl", url
                assert "not reachable" in error.value.message, url


async def test_a_redirect_to_a_platform_port_or_a_malformed_url_is_refused():
    with serving({"x.png": b"image bytes"}) as image_server, serving({}) as platform_service:
        platform_port = int(platform_service.rsplit(":", 1)[1])
        async with httpx.AsyncClient() as client:
            for location in (f"{platform_service}/x.png", "http://127.0.0.1:99999/x.png", "http://a..b/x.png"):
                url = f"{image_server}/away/{location}"
                with pytest.raises(CustomVisionError) as error:
                    await images.fetch(url, client, LOCAL, platform_ports=lambda: {platform_port})
                assert error.value.code == "BadRequestImageUrl", location


async def test_the_gateways_own_port_is_never_fetched():
    with serving({"x.png": b"image bytes"}) as base:
        own = LOCAL.model_copy(update={"port": int(base.rsplit(":", 1)[1])})
        async with httpx.AsyncClient() as client:
            with pytest.raises(CustomVisionError):
                await images.fetch(f"{base}/x.png", client, own, platform_ports=frozenset)


def test_local_mode_names_every_port_its_state_file_records_as_it_changes(tmp_path):
    from kubevision.core.settings import LocalSettings
    from kubevision.local.gateway import LocalSource
    from kubevision.local.supervisor import LocalPlatform, PlatformState, ServiceRecord

    platform = LocalPlatform(LocalSettings(data_dir=tmp_path))
    source = LocalSource(GatewaySettings(mode="local", data_dir=tmp_path))
    assert source.platform_ports() == frozenset()  # nothing started yet

    def record(name: str, ports: dict[str, int]) -> ServiceRecord:
        return ServiceRecord(name=name, pid=1, log=tmp_path / f"{name}.log", health_url="http://127.0.0.1/",
                             ports=ports, endpoints={})

    state = PlatformState(access_key="a", secret_key="s", s3_port=8333, services={
        "s3": record("s3", {"s3.port": 8333, "filer.port": 8888, "admin.port": 23646}),
        "mlflow": record("mlflow", {"http": 5000}),
        "triton": record("triton", {"http": 8000, "grpc": 8001, "metrics": 8002}),
    })
    platform._save_state(state)
    assert source.platform_ports() == {8333, 8888, 23646, 5000, 8000, 8001, 8002}
    state.services["controller"] = record("controller", {"metrics": 40123})  # started after the gateway
    platform._save_state(state)
    assert 40123 in source.platform_ports()
    platform.state_path.write_text("{half written")  # never so (writes are renamed in), but still no error
    assert 40123 in source.platform_ports()
