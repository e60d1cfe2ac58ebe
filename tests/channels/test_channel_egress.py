"""egress.deny: checked on the address actually connected to, literal or resolved."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from mailhooks.channels.base import Message, WebhookRef
from mailhooks.channels.context import ChannelContext
from mailhooks.channels.egress import (
    DenyingResolver,
    EgressDenied,
    EgressPolicy,
    make_connector,
)
from mailhooks.channels.pushover import PushoverChannel, PushoverSender
from mailhooks.channels.web import WebChannel, WebSender
from mailhooks.secrets import Resolved
from mailhooks.settings import Settings
from tests.utils import Receiver

MakeMessage = Callable[..., Message]


@pytest.fixture
async def denying_context() -> AsyncIterator[ChannelContext]:
    """The default egress.deny (loopback, link-local), with plain http allowed."""
    settings = Settings(allow_http=True)
    context = ChannelContext(settings)
    yield context
    await context.close()


def web_sender(url: str, context: ChannelContext, secrets: Resolved) -> WebSender:
    return WebSender(WebhookRef("x", "x"), WebChannel(type="web", url=url), secrets, context)


async def test_ip_literal_is_denied_before_connecting(
    receiver: Receiver, denying_context: ChannelContext, secrets: Resolved,
    make_message: MakeMessage,
) -> None:
    sender = web_sender(receiver.origin + "/hook", denying_context, secrets)
    outcome = await sender.send(make_message())
    assert not outcome.ok and outcome.status is None
    assert outcome.error == "address 127.0.0.1 is denied by the egress rules"
    assert receiver.requests == []


async def test_ipv6_literal_is_denied(
    denying_context: ChannelContext, secrets: Resolved, make_message: MakeMessage
) -> None:
    outcome = await web_sender("http://[::1]:9/", denying_context, secrets).send(make_message())
    assert outcome.error == "address ::1 is denied by the egress rules"


async def test_host_name_resolving_to_denied_address_is_denied(
    receiver: Receiver, denying_context: ChannelContext, secrets: Resolved,
    make_message: MakeMessage,
) -> None:
    url = f"http://localhost:{receiver.port}/hook"
    async with asyncio.timeout(5):
        outcome = await web_sender(url, denying_context, secrets).send(make_message())
    assert not outcome.ok and outcome.retry and outcome.status is None
    assert outcome.error is not None
    assert outcome.error.startswith("address ") and outcome.error.endswith(
        " is denied by the egress rules"
    )
    assert receiver.requests == []


async def test_pushover_obeys_egress_deny(
    receiver: Receiver, denying_context: ChannelContext, secrets: Resolved,
    make_message: MakeMessage,
) -> None:
    denying_context.settings = Settings(
        allow_http=True, pushover={"api_url": f"http://localhost:{receiver.port}"}
    )
    channel = PushoverChannel(
        type="pushover", user_key="${env:PUSHOVER_USER}", api_token="${env:PUSHOVER_TOKEN}"
    )
    sender = PushoverSender(WebhookRef("x", "x"), channel, secrets, denying_context)
    async with asyncio.timeout(5):
        outcome = await sender.send(make_message())
    assert not outcome.ok and outcome.retry
    assert outcome.error is not None and "is denied by the egress rules" in outcome.error
    assert receiver.requests == []


class FixedResolver(AbstractResolver):
    """Answers every name with the given addresses, as a rebinding DNS server might."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host, host=address, port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0, flags=socket.AI_NUMERICHOST,
            )
            for address in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_denied_addresses_are_dropped_and_the_allowed_one_is_used(
    receiver: Receiver,
) -> None:
    policy = EgressPolicy(["10.0.0.0/8"], allow=["127.0.0.1/32"])
    resolver = DenyingResolver(policy, FixedResolver("10.1.2.3", "169.254.169.254", "127.0.0.1"))
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver)) as session,
        asyncio.timeout(5),
        session.post(f"http://rebind.test:{receiver.port}/hook", data=b"{}") as response,
    ):
        assert response.status == 200
    assert [request.path for request in receiver.requests] == ["/hook"]


async def test_resolver_fails_when_every_address_is_denied() -> None:
    resolver = DenyingResolver(EgressPolicy(["127.0.0.0/8"]), FixedResolver("127.0.0.1"))
    with pytest.raises(EgressDenied) as raised:
        await resolver.resolve("rebind.test", 80)
    assert isinstance(raised.value, OSError)
    assert str(raised.value) == "address 127.0.0.1 is denied by the egress rules"
    assert raised.value.address == "127.0.0.1"
    await resolver.close()


async def test_make_connector_installs_the_resolver_and_limit() -> None:
    connector = make_connector(Settings(), limit=2)
    try:
        assert connector.limit == 2
        assert isinstance(connector._resolver, DenyingResolver)
    finally:
        await connector.close()


@pytest.mark.parametrize(
    ("address", "denied"),
    [
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("169.254.169.254", True),
        ("fe80::1", True),
        ("fe80::1%eth0", True),
        ("::ffff:127.0.0.1", True),
        ("[::1]", True),
        ("0.0.0.0", True),
        ("0.1.2.3", True),
        ("::", True),
        ("::ffff:0.0.0.0", True),
        ("::ffff:169.254.169.254", True),
        ("192.0.2.10", False),
        ("2001:db8::1", False),
        ("example.com", False),
    ],
)
def test_default_policy(address: str, denied: bool) -> None:
    assert EgressPolicy.from_settings(Settings()).is_denied(address) is denied


def test_check_host_only_acts_on_literals() -> None:
    policy = EgressPolicy(["127.0.0.0/8"])
    policy.check_host("localhost")  # names are the resolver's job
    policy.check_host(None)
    policy.check_host("192.0.2.1")
    with pytest.raises(EgressDenied):
        policy.check_host("127.0.0.2")
    EgressPolicy(allow=["127.0.0.1/32"]).check_host("127.0.0.1")


def test_deny_adds_to_the_built_in_list_and_allow_makes_exceptions() -> None:
    policy = EgressPolicy(deny=["10.0.0.0/8"], allow=["127.0.0.1/32", "10.9.0.0/16"])
    assert policy.is_denied("10.1.2.3") and not policy.is_denied("10.9.1.1")
    assert not policy.is_denied("127.0.0.1") and not policy.is_denied("::ffff:127.0.0.1")
    assert policy.is_denied("127.0.0.2") and policy.is_denied("0.0.0.0") and policy.is_denied("::")
    # An empty deny list (an old config's way to allow loopback) reopens nothing.
    assert EgressPolicy(deny=[]).is_denied("127.0.0.1")
