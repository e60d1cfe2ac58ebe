"""Payload templates: deliveries/s of a web webhook with `payload` against the default body.

Two daemons side by side, each with one signed web webhook to the same receiver: A sends
the default body (the event as spooled, no template work), B renders a payload of a dozen
leaves (variables alone that keep their type, text, typed filters, a nested mapping), as
a CRM contact update does. Rounds alternate A and B (`deliver_round`, as the delivery row
measures), so a slow phase of the machine slows one round of each; the ratio is the median
of the rounds' B/A ratios. Also reported: the CPU the event loop spent per delivery.

    .venv/bin/python -m benchmarks --only payload
"""

from __future__ import annotations

from typing import Any

from benchmarks.delivery import deliver_round
from benchmarks.harness import (
    Daemon,
    Paired,
    Row,
    Scale,
    rate_text,
    ratio_text,
    receiver,
    scratch,
    web_webhook,
)

PAYLOAD: dict[str, Any] = {
    "idProperty": "email",
    "id": "{{ email }}",
    "properties": {
        "last_email_event": "{{ event }}",
        "last_email_event_date": "{{ timestamp }}",
        "last_email_campaign": "{{ broadcast_name }}",
        "last_email_campaign_id": "{{ campaign_id }}",
        "email_bounced": "{{ (event == 'bounced') | bool }}",
        "email_bounce_type": "{{ bounce_type }}",
        "smtp_code": "{{ smtp_code | int }}",
        "sent_from": "{{ sending_node }} via {{ sending_domain }}",
        "recipient_domain": "{{ email | domain }}",
        "last_clicked_link": "{{ link_url }}",
    },
    "source": "mailhooks",
}


async def measure(events: int, rounds: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`rounds` rounds of `events` deliveries each, alternating the default body (A) and
    the payload (B); each side's rounds."""
    default: list[dict[str, Any]] = []
    templated: list[dict[str, Any]] = []
    async with receiver() as endpoint:
        with scratch() as root:
            daemons = {"default": Daemon(root / "a"), "payload": Daemon(root / "b")}
            try:
                # Started inside the try: a daemon that started is stopped even when the
                # other one fails to start.
                for name, daemon in daemons.items():
                    document = web_webhook(endpoint.url_for(name), timeout=120)
                    if name == "payload":
                        document["channel"]["payload"] = PAYLOAD
                    daemon.write_webhook("hook", document)
                    await daemon.start()
                for _ in range(rounds):
                    default.append(await deliver_round(daemons["default"], endpoint, events))
                    templated.append(await deliver_round(daemons["payload"], endpoint, events))
            finally:
                for daemon in daemons.values():
                    await daemon.stop()
    return default, templated


async def run(scale: Scale) -> list[Row]:
    count, rounds = scale.pick((6000, 4), (3000, 2))
    default, templated = await measure(count, rounds)
    paired = Paired([round_["per_s"] for round_ in templated], [round_["per_s"] for round_ in default])
    loop = {name: [round_["loop_us_per_delivery"] for round_ in side]
            for name, side in (("default", default), ("payload", templated))}
    return [Row(
        "delivery with a payload template, 1 webhook, signed", rate_text(paired.figure, "deliveries/s"),
        f"default body {rate_text(paired.limit, 'deliveries/s')}", ratio_text(paired.ratio),
        "≥ 0.80× default body", paired.ratio >= 0.80,
        {**paired.as_json(), "loop_us_per_delivery": loop, "default": default, "payload": templated},
    )]
