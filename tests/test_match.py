"""The matcher: which webhooks an event goes to, and `explain`'s reasons for the others."""

from __future__ import annotations

import random
from typing import Any

import pytest

from mailhooks.events import EVENT_NAMES, Event
from mailhooks.match import Matcher
from mailhooks.webhooks.models import Webhook


def hook(name: str = "Hook", events: Any = ("delivered",), status: str = "active",
         **filters: Any) -> Webhook:
    return Webhook.model_validate({
        "name": name,
        "status": status,
        "events": events if events == "all" else list(events),
        "filters": filters or None,
        "channel": {"type": "web", "url": "https://hooks.example.com/in"},
    })


def event(name: str = "delivered", **fields: str) -> Event:
    return Event(event=name, email="someone@example.com", message_id="m-1", **fields)


def matches(webhook: Webhook, evt: Event) -> bool:
    return Matcher({"w": webhook}).match(evt) == ("w",)


def test_events_select_webhooks() -> None:
    matcher = Matcher({
        "opens": hook("Opens", ["newsletter_opened", "transactional_opened"]),
        "bounces": hook("Bounces", ["bounced"]),
        "everything": hook("Everything", "all"),
    })
    assert matcher.match(event("newsletter_opened")) == ("everything", "opens")
    assert matcher.match(event("bounced")) == ("bounces", "everything")
    assert matcher.match(event("delayed")) == ("everything",)
    assert len(matcher) == 3


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_all_selects_every_event(name: str) -> None:
    assert matches(hook(events="all"), event(name))


def test_an_inactive_webhook_never_matches() -> None:
    matcher = Matcher({"off": hook(events="all", status="inactive"), "on": hook("On")})
    assert matcher.match(event("delivered")) == ("on",)
    assert matcher.match(event("bounced")) == ()


def test_results_are_in_id_order() -> None:
    matcher = Matcher({key: hook(key) for key in ["zeta", "alpha", "crm/opens", "beta"]})
    assert matcher.match(event()) == ("alpha", "beta", "crm/opens", "zeta")


def test_an_empty_matcher_matches_nothing() -> None:
    assert Matcher({}).match(event()) == ()


@pytest.mark.parametrize(("domain", "expected"), [
    ("mail.example.com", True),
    ("MAIL.Example.COM", True),
    ("mail.example.com.", True),
    ("other.example.com", False),
    ("example.com", False),
    ("xmail.example.com", False),
])
def test_sending_domain_exact_and_case_insensitive(domain: str, expected: bool) -> None:
    webhook = hook(sending_domain=["Mail.Example.com"])
    assert matches(webhook, event(sending_domain=domain)) is expected


@pytest.mark.parametrize(("domain", "expected"), [
    ("a.example.org", True),
    ("a.b.example.org", True),
    ("A.B.EXAMPLE.ORG", True),
    ("example.org", False),
    ("badexample.org", False),
    ("example.org.evil.com", False),
    ("org", False),
])
def test_wildcard_domain_matches_subdomains_at_any_depth_only(domain: str, expected: bool) -> None:
    assert matches(hook(sending_domain=["*.example.org"]), event(sending_domain=domain)) is expected


@pytest.mark.parametrize(("address", "expected"), [
    ("192.0.2.10", True),
    ("192.0.2.11", False),
    ("198.51.100.0", True),
    ("198.51.100.15", True),
    ("198.51.100.16", False),
    ("2001:db8::1", True),
    ("2001:DB8:0:0::1", True),
    ("2001:db8::2", False),
    ("2001:db9::1", False),
    ("2001:db8:1::5", True),
    ("2001:db8:1:0:ffff::5", True),
    ("2001:db8:2::5", False),
    ("not-an-ip", False),
])
def test_dedicated_ip_by_address_and_cidr(address: str, expected: bool) -> None:
    webhook = hook(dedicated_ip=["192.0.2.10", "198.51.100.0/28", "2001:db8::1", "2001:db8:1::/64"])
    assert matches(webhook, event(dedicated_ip=address)) is expected


def test_ipv6_cidr_range() -> None:
    webhook = hook(dedicated_ip=["2001:db8:1::/48"])
    assert matches(webhook, event(dedicated_ip="2001:db8:1:ffff::9"))
    assert not matches(webhook, event(dedicated_ip="2001:db8:2::9"))
    assert not matches(webhook, event(dedicated_ip="192.0.2.1"))


@pytest.mark.parametrize("field", ["sending_node", "bridge"])
def test_plain_filters_are_exact(field: str) -> None:
    filters: dict[str, Any] = {field: ["smtp1", "smtp2"]}
    webhook = hook(**filters)
    assert matches(webhook, event(**{field: "smtp2"}))
    assert not matches(webhook, event(**{field: "SMTP2"}))
    assert not matches(webhook, event(**{field: "smtp"}))


def test_or_within_a_filter_and_across_filters() -> None:
    webhook = hook(sending_domain=["a.example.com", "b.example.com"], sending_node=["smtp1"])
    assert matches(webhook, event(sending_domain="a.example.com", sending_node="smtp1"))
    assert matches(webhook, event(sending_domain="b.example.com", sending_node="smtp1"))
    assert not matches(webhook, event(sending_domain="a.example.com", sending_node="smtp2"))
    assert not matches(webhook, event(sending_domain="c.example.com", sending_node="smtp1"))


def test_all_four_filters_at_once() -> None:
    webhook = hook(sending_domain=["*.example.org"], sending_node=["smtp1"],
                   bridge=["prod"], dedicated_ip=["192.0.2.0/24"])
    full = {"sending_domain": "m.example.org", "sending_node": "smtp1", "bridge": "prod",
            "dedicated_ip": "192.0.2.7"}
    assert matches(webhook, event(**full))
    for field in full:
        assert not matches(webhook, event(**{**full, field: "x"})), field


def test_a_webhook_found_under_two_values_is_matched_once_in_id_order() -> None:
    # Filed under its exact domain and under two wildcards that all fit the event; the
    # others share its key, one with a filter still to check, to mix both kinds.
    matcher = Matcher({
        "m/both": hook(sending_domain=["x.a.example.org", "*.a.example.org", "*.example.org"]),
        "a/checked": hook(sending_domain=["x.a.example.org"], sending_node=["smtp1"]),
        "z/plain": hook(sending_domain=["x.a.example.org"]),
        "b/refused": hook(sending_domain=["x.a.example.org"], sending_node=["smtp2"]),
    })
    found = matcher.match(event(sending_domain="X.a.example.org", sending_node="smtp1"))
    assert found == ("a/checked", "m/both", "z/plain")
    assert matcher.match(event(sending_domain="y.a.example.org")) == ("m/both",)


def test_one_key_with_and_without_filters_left_to_check_gives_id_order() -> None:
    matcher = Matcher({"z/plain": hook(bridge=["prod"]),
                       "a/checked": hook(bridge=["prod"], sending_node=["smtp1"])})
    assert matcher.match(event(bridge="prod", sending_node="smtp1")) == ("a/checked", "z/plain")
    assert matcher.match(event(bridge="prod", sending_node="smtp2")) == ("z/plain",)


@pytest.mark.parametrize("field", ["sending_domain", "sending_node", "bridge", "dedicated_ip"])
def test_an_event_without_the_filtered_field_does_not_match(field: str) -> None:
    value = {"dedicated_ip": "192.0.2.1", "sending_domain": "example.com"}.get(field, "x")
    filters: dict[str, Any] = {field: [value]}
    webhook = hook(**filters)
    assert matches(webhook, event(**{field: value}))
    assert not matches(webhook, event())


def _reasons(matcher: Matcher, evt: Event) -> dict[str, tuple[bool, str | None]]:
    return {v.webhook_id: (v.matched, v.reason) for v in matcher.explain(evt)}


def test_explain_gives_every_webhook_a_verdict_with_a_reason() -> None:
    matcher = Matcher({
        "match": hook("Match", "all"),
        "off": hook("Off", "all", status="inactive"),
        "bounces": hook("Bounces", ["bounced", "complaint"]),
        "domain": hook("Domain", "all", sending_domain=["*.example.org", "mail.example.com"]),
        "node": hook("Node", "all", sending_node=["smtp1"]),
        "ip": hook("IP", "all", dedicated_ip=["192.0.2.0/28"]),
    })
    evt = event("delivered", sending_domain="example.org", dedicated_ip="192.0.2.1")
    assert _reasons(matcher, evt) == {
        "bounces": (False, "event 'delivered' not selected (selects bounced, complaint)"),
        "domain": (False, "filter sending_domain: 'example.org' is not one of "
                          "*.example.org, mail.example.com"),
        "ip": (True, None),
        "match": (True, None),
        "node": (False, "filter sending_node: the event has no sending_node"),
        "off": (False, "inactive"),
    }
    assert [v.webhook_id for v in matcher.explain(evt)] == sorted(_reasons(matcher, evt))
    assert {v.name for v in matcher.explain(evt)} == {"Match", "Off", "Bounces", "Domain",
                                                      "Node", "IP"}


def test_explain_agrees_with_match() -> None:
    matcher = Matcher({
        "a": hook("A", ["delivered"], sending_domain=["*.example.org"]),
        "b": hook("B", "all", dedicated_ip=["2001:db8::/32"]),
        "c": hook("C", ["bounced"]),
        "d": hook("D", "all", status="inactive"),
    })
    events = [
        event("delivered", sending_domain="x.example.org"),
        event("delivered", dedicated_ip="2001:db8::5"),
        event("bounced", sending_domain="x.example.org", dedicated_ip="2001:db8::5"),
        event("complaint"),
    ]
    for evt in events:
        explained = [v.webhook_id for v in matcher.explain(evt) if v.matched]
        assert tuple(explained) == matcher.match(evt)


def test_the_index_agrees_with_checking_every_webhook() -> None:
    # The index skips the filter a webhook was found under and dedupes webhooks found
    # under two of their values; explain() checks every filter of every webhook.
    chance = random.Random(7)
    domains = ["a.example.org", "b.a.example.org", "example.org", "mail.example.com"]
    patterns = [*domains, "*.example.org", "*.a.example.org", "*.com"]
    nodes, ips = ["smtp1", "smtp2"], ["192.0.2.1", "192.0.2.9", "198.51.100.3"]
    ip_filters = [*ips, "192.0.2.0/29", "198.51.100.0/24"]
    fields = {"sending_domain": (patterns, domains), "sending_node": (nodes, nodes),
              "bridge": (nodes, nodes), "dedicated_ip": (ip_filters, ips)}
    webhooks = {}
    for index in range(200):
        chosen = chance.sample(list(fields), chance.randint(0, 3))
        filters: dict[str, Any] = {
            field: chance.sample(fields[field][0], chance.randint(1, 2)) for field in chosen
        }
        events = "all" if index % 4 == 0 else chance.sample(EVENT_NAMES, 2)
        webhooks[f"w{index:03}"] = hook(f"W{index}", events, **filters)
    matcher = Matcher(webhooks)
    for _ in range(300):
        values = {field: chance.choice(fields[field][1]) for field in fields if chance.random() < 0.8}
        evt = event(chance.choice(EVENT_NAMES), **values)
        assert matcher.match(evt) == tuple(v.webhook_id for v in matcher.explain(evt) if v.matched)
