"""Fan-out: 100 webhooks, every event matching 3 of them (groups of three share a
sending_node filter). Deliveries/s, against the one-webhook figure measured in the same
run with the same number of deliveries, in rounds alternating between the two."""

from __future__ import annotations

from benchmarks.delivery import GROUP, measure
from benchmarks.harness import Paired, Row, Scale, rate_text, ratio_text


async def run(scale: Scale) -> list[Row]:
    deliveries, rounds = scale.pick((9000, 3), (3000, 1))
    single, many = [], []
    for _ in range(rounds):
        single += await measure(deliveries)
        many += await measure(deliveries // GROUP, webhooks=100)
    paired = Paired([figure["per_s"] for figure in many], [figure["per_s"] for figure in single])
    return [Row(
        "fan-out, 100 webhooks, 3 match each event", rate_text(paired.figure, "deliveries/s"),
        f"1 webhook {rate_text(paired.limit, 'deliveries/s')}", ratio_text(paired.ratio),
        "≥ 0.80× 1 webhook", paired.ratio >= 0.80,
        {**paired.as_json(), "fanout": many, "single": single},
    )]
