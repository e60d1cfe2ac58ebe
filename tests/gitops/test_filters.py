"""`mailhooks diff` on a change of a webhook's filters, its destination unchanged: events
may newly reach it (a filter removed, a value added, a range widened) or may stop (the
reverse), in every format and in `--estimate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailhooks.gitops.filters import narrowed, widened
from mailhooks.webhooks.models import Filters
from tests.gitops.conftest import ANALYTICS, CRM, GitRepo, Run, diff_schema, markdown_parser
from tests.gitops.test_formats import parse_annotation, tables

ALL = ["received", "delivered", "bounced", "rejected", "delayed", "newsletter_opened",
       "newsletter_clicked", "transactional_opened", "transactional_clicked", "complaint"]


def effects(run: Run, repo: GitRepo) -> list[tuple[Any, ...]]:
    ran = run("--webhooks", str(repo.hooks), "HEAD", "--format", "json")
    assert ran.code == 0, ran.err
    found = ran.json()
    diff_schema().validate(found)
    return [(e["change"], e["destination"], e["webhook"], e["because"], e.get("filters"),
             e.get("filters_changed")) for e in found["effects"]]


def analytics_filter(repo: GitRepo, line: str | None) -> None:
    """ANALYTICS with its `sending_domain: ["*.example.org"]` line replaced, or removed."""
    old = '  sending_domain: ["*.example.org"]\n'
    repo.write("analytics.yaml", ANALYTICS.replace("filters:\n" + old, "") if line is None
               else ANALYTICS.replace(old, f"  {line}\n"))


def test_a_filter_removed_may_send_more_events_to_the_same_destination(repo: GitRepo, run: Run) -> None:
    analytics_filter(repo, None)
    ran = run("--webhooks", str(repo.hooks), "HEAD", "--format", "json")
    [effect] = ran.json()["effects"]
    assert effect == {
        "change": "may start", "destination": "https://analytics.example.com", "events": ALL,
        "webhook": "analytics", "file": "webhooks.d/analytics.yaml", "line": 1,
        "because": "filters widened", "filters_changed": ["sending_domain"],
    }
    text = run("--webhooks", str(repo.hooks), "HEAD").out
    assert "Effects:\n  +? https://analytics.example.com may newly receive all events via analytics " \
           "(filters widened: sending_domain; now unfiltered)\n" in text


@pytest.mark.parametrize(("line", "found"), [
    # A value added.
    ('sending_domain: ["*.example.org", "*.example.net"]',
     [("may start", "from *.example.org, *.example.net", ["sending_domain"])]),
    # A value narrowed: mail.example.org was one of *.example.org's.
    ('sending_domain: ["mail.example.org"]', [("may stop", "from mail.example.org", ["sending_domain"])]),
    # One swapped for another: some start, some stop.
    ('sending_domain: ["*.example.net"]', [("may start", "from *.example.net", ["sending_domain"]),
                                           ("may stop", "from *.example.net", ["sending_domain"])]),
    # A wider wildcard, in other case and with a final dot.
    ('sending_domain: ["*.Example.ORG.", "example.org"]',
     [("may start", "from *.Example.ORG., example.org", ["sending_domain"])]),
    # The same events: a value its wildcard matched dropped, a covered one added.
    ('sending_domain: ["*.example.org", "a.b.example.org", "*.mail.example.org"]', []),
    # Another filter added beside it.
    ('sending_domain: ["*.example.org"]\n  bridge: [b1]',
     [("may stop", "from *.example.org; via bridge b1", ["bridge"])]),
])
def test_values_added_removed_or_swapped(
    repo: GitRepo, run: Run, line: str, found: list[tuple[str, str, list[str]]]
) -> None:
    analytics_filter(repo, line)
    because = {"may start": "filters widened", "may stop": "filters narrowed"}
    assert effects(run, repo) == [
        (change, "https://analytics.example.com", "analytics", because[change], filters, fields)
        for change, filters, fields in found
    ]


def test_an_ip_range_widened_narrowed_or_merged(repo: GitRepo, run: Run) -> None:
    def crm_from(*ranges: str) -> str:
        return CRM + f"filters:\n  dedicated_ip: [{', '.join(ranges)}]\n"

    repo.write("crm/opens.yaml", crm_from("192.0.2.0/25", "2001:db8::/48"))
    repo.commit("crm from half a range")
    repo.write("crm/opens.yaml", crm_from("192.0.2.0/24", "2001:db8::/48"))
    assert [(e[0], e[5]) for e in effects(run, repo)] == [("may start", ["dedicated_ip"])]
    repo.write("crm/opens.yaml", crm_from("192.0.2.10", "2001:db8::/64"))
    assert [(e[0], e[5]) for e in effects(run, repo)] == [("may stop", ["dedicated_ip"])]
    # Two halves are the whole: nothing starts or stops.
    repo.write("crm/opens.yaml",
               crm_from("192.0.2.0/26", "192.0.2.64/26", "2001:db8::/49", "2001:db8:0:8000::/49"))
    assert effects(run, repo) == []


def test_a_filter_added_to_an_unfiltered_webhook(repo: GitRepo, run: Run) -> None:
    repo.write("crm/opens.yaml", CRM + "filters:\n  sending_node: [smtp1]\n")
    assert effects(run, repo) == [("may stop", "https://crm.example.com", "crm/opens", "filters narrowed",
                                   "on node smtp1", ["sending_node"])]


def test_new_events_start_and_the_kept_ones_may_stop(repo: GitRepo, run: Run) -> None:
    repo.write("crm/opens.yaml", CRM.replace("[delivered, newsletter_opened]", "[delivered, bounced]")
               + "filters:\n  sending_domain: [mail.example.com]\n")
    ran = run("--webhooks", str(repo.hooks), "HEAD", "--format", "json")
    assert [(e["change"], e["events"], e.get("filters")) for e in ran.json()["effects"]] == [
        ("starts", ["bounced"], "from mail.example.com"),
        ("stops", ["newsletter_opened"], None),
        ("may stop", ["delivered"], "from mail.example.com"),
    ]


def test_a_new_destination_or_an_inactive_webhook_has_no_filter_line(repo: GitRepo, run: Run) -> None:
    # Moved and unfiltered: every event starts there and stops at the old one; no "may".
    repo.write("analytics.yaml", ANALYTICS.replace("analytics.example.com", "stats.example.com")
               .replace('filters:\n  sending_domain: ["*.example.org"]\n', ""))
    assert [(e[0], e[1]) for e in effects(run, repo)] == [
        ("starts", "https://stats.example.com"), ("stops", "https://analytics.example.com")]
    paused = ANALYTICS.replace("name: Analytics\n", "name: Analytics\nstatus: inactive\n")
    repo.write("analytics.yaml", paused)
    repo.commit("pause analytics")
    repo.write("analytics.yaml", paused.replace('"*.example.org"', '"*.example.org", "*.example.net"'))
    assert effects(run, repo) == []


def test_every_format_says_it(
    repo: GitRepo, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    analytics_filter(repo, 'sending_domain: ["*.example.net"]')
    repo.commit("analytics for example.net")
    line = ("https://analytics.example.com may newly receive all events via analytics "
            "(filters widened: sending_domain; now from *.example.net)")
    text = run("--webhooks", str(repo.hooks), "HEAD~1", "HEAD").out
    assert f"  +? {line}\n  -? https://analytics.example.com may stop receiving all events via " \
           "analytics (filters narrowed: sending_domain; now from *.example.net)\n" in text

    html = markdown_parser().render(run("--webhooks", str(repo.hooks), "HEAD~1", "HEAD", "--format",
                                        "markdown").out)
    assert "<li>➕ <code>https://analytics.example.com</code> may newly receive <code>all events</code> " \
           "via <code>analytics</code> (filters widened: <code>sending_domain</code>; now " \
           "<code>from *.example.net</code>)</li>" in html
    assert "<li>➖ <code>https://analytics.example.com</code> may stop receiving" in html

    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    ran = run("--webhooks", str(repo.hooks), "HEAD~1", "HEAD", "--format", "github")
    notices = [parse_annotation(out) for out in ran.out.splitlines() if out.startswith("::notice")]
    assert {"level": "notice", "file": "webhooks.d/analytics.yaml", "line": "3",
            "title": "mailhooks diff%3A effect", "message": line} in notices




def test_the_estimate_says_what_the_counters_cannot_tell(repo: GitRepo, run: Run, metrics: Path) -> None:
    analytics_filter(repo, None)
    ran = run("--webhooks", str(repo.hooks), "HEAD", "--format", "json", f"--estimate={metrics}")
    estimate = ran.json()["estimate"]
    diff_schema().validate(ran.json())
    # At most every event of the types (7200 + 360 + 36 an hour), how many of them is unknown.
    assert estimate["destinations"] == [{
        "destination": "https://analytics.example.com", "added_per_hour": 7596, "removed_per_hour": 0,
        "upper_bound": True, "unknown": ["filters widened"],
    }]
    assert any("cannot tell how many events" in note for note in estimate["notes"])

    text = run("--webhooks", str(repo.hooks), "HEAD", f"--estimate={metrics}").out
    assert "  https://analytics.example.com: +7596.0/h (at most; unknown: filters widened)\n" in text
    assert "no destination gains or loses events" not in text
    markdown = run("--webhooks", str(repo.hooks), "HEAD", "--format", "markdown", f"--estimate={metrics}").out
    assert tables(markdown_parser().parse(markdown))[-1][1] == [
        "`https://analytics.example.com`", "7596.0 (at most; unknown: filters widened)", "0.0"]

    analytics_filter(repo, 'sending_domain: ["*.example.net"]')
    estimate = run("--webhooks", str(repo.hooks), "HEAD", "--format", "json", f"--estimate={metrics}").json()
    assert [(cost["added_per_hour"], cost["removed_per_hour"], cost["unknown"])
            for cost in estimate["estimate"]["destinations"]] == [
        (7596, 7596, ["filters widened", "filters narrowed"])]


@pytest.mark.parametrize(("old", "new", "wider", "narrower"), [
    ({}, {"bridge": ["b1"]}, [], ["bridge"]),
    ({"sending_node": ["a", "b"]}, {"sending_node": ["b", "a"]}, [], []),
    ({"sending_domain": ["*.example.org"]}, {"sending_domain": ["example.org"]}, ["sending_domain"],
     ["sending_domain"]),
    ({"sending_domain": ["*.b.example.org"]}, {"sending_domain": ["*.example.org"]}, ["sending_domain"], []),
    ({"dedicated_ip": ["192.0.2.1"]}, {"dedicated_ip": ["2001:db8::1"]}, ["dedicated_ip"], ["dedicated_ip"]),
    ({"dedicated_ip": ["192.0.2.1", "192.0.2.0/31"]}, {"dedicated_ip": ["192.0.2.0/31"]}, [], []),
    ({"sending_domain": ["a.example.org"], "bridge": ["b1"]}, {"sending_domain": ["a.example.org"]},
     ["bridge"], []),
])
def test_which_filters_widened_and_narrowed(
    old: dict[str, list[str]], new: dict[str, list[str]], wider: list[str], narrower: list[str]
) -> None:
    before, after = Filters(**old) if old else None, Filters(**new)
    assert (widened(before, after), narrowed(before, after)) == (wider, narrower)
