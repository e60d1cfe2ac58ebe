"""Fan-out: 100 webhooks, every event matching 3 of them (groups of three share a
sending_node filter). Deliveries/s, against the one-webhook figure measured in the same
run with the same number of deliveries."""

from __future__ import annotations

from benchmarks.delivery import GROUP, measure
from benchmarks.harness import Row, Scale, rate_text, ratio_text


async def run(scale: Scale) -> list[Row]:
    deliveries = scale.pick(12000, 3000)
    [single] = await measure(deliveries)
    [many] = await measure(deliveries // GROUP, webhooks=100)
    ratio = many["per_s"] / single["per_s"]
    return [Row(
        "fan-out, 100 webhooks, 3 match each event", rate_text(many["per_s"], "deliveries/s"),
        f"1 webhook {rate_text(single['per_s'], 'deliveries/s')}", ratio_text(ratio),
        "≥ 0.80× 1 webhook", ratio >= 0.80, {"fanout": many, "single": single},
    )]
