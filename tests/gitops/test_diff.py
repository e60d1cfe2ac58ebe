"""`mailhooks diff`: what it finds between two revisions, a revision and the working tree,
or two directories, on real git repositories; and its exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.gitops.conftest import ALERTS, ANALYTICS, CRM, GitRepo, Run, diff_schema

NEW = """\
name: Complaints to the ESP
events: [complaint]
channel:
  type: web
  url: https://esp.example.net/complaints
"""

RENAME_NOTE = (
    "a new id: its pending deliveries on hosts stay under the old id and are dropped when "
    "the old file goes; metrics and logs change name"
)


def grants_config(tmp_path: Path, destinations: str = '["https://crm.example.com"]') -> Path:
    config = tmp_path / "mailhooks.yaml"
    config.write_text(
        "secrets:\n"
        "  grants:\n"
        "    - secrets: ['${credential:crm-signing-secret}']\n"
        "      webhooks: ['crm/*']\n"
        f"      destinations: {destinations}\n"
        "    - secrets: ['${env:PUSHOVER_USER}', '${credential:pushover-token}']\n"
        "      webhooks: [alerts]\n"
    )
    return config


def test_added_removed_renamed_and_changed_field_by_field(repo: GitRepo, run: Run) -> None:
    base = repo.git("rev-parse", "HEAD")
    repo.move("analytics.yaml", "stats/analytics.yaml")
    repo.remove("alerts.yaml")
    repo.write("esp.yaml", NEW)
    repo.write("crm/opens.yaml", CRM.replace("events: [delivered, newsletter_opened]", "events: [delivered]")
               .replace("hooks?token=not-shown", "v2?token=query-secret")
               + "filters:\n  sending_domain: [mail.example.com]\n")
    head = repo.commit("rename analytics, drop alerts, add esp, narrow crm")

    ran = run("--webhooks", str(repo.hooks), base, head, "--format", "json")
    assert ran.code == 0, ran.err
    found = ran.json()
    diff_schema().validate(found)
    assert found["base"] == {"given": base, "kind": "revision", "commit": base, "directory": "webhooks.d",
                             "webhooks": 3, "invalid_files": 0}
    assert [(a["id"], a["file"], a["events"], a["endpoint"]) for a in found["added"]] == [
        ("esp", "webhooks.d/esp.yaml", ["complaint"], "https://esp.example.net/complaints")]
    assert found["removed"] == [{"id": "alerts", "name": "Bounce Alerts", "file": "webhooks.d/alerts.yaml"}]
    assert found["renamed"] == [{
        "old_id": "analytics", "new_id": "stats/analytics", "old_file": "webhooks.d/analytics.yaml",
        "new_file": "webhooks.d/stats/analytics.yaml", "name": "Analytics",
    }]
    [changed] = found["changed"]
    assert (changed["id"], changed["file"]) == ("crm/opens", "webhooks.d/crm/opens.yaml")
    assert [(c["field"], c.get("old"), c.get("new"), c["line"]) for c in changed["changes"]] == [
        ("events", ["delivered", "newsletter_opened"], ["delivered"], 2),
        ("channel.url", "https://crm.example.com/hooks", "https://crm.example.com/v2", 5),
        ("filters.sending_domain", None, ["mail.example.com"], 8),
    ]
    # A URL's query string may carry a token: it is never shown.
    assert "not-shown" not in ran.out and "query-secret" not in ran.out

    text = run("--webhooks", str(repo.hooks), base, head).out
    assert "  + added esp (webhooks.d/esp.yaml): 'Complaints to the ESP', complaint → " \
           "https://esp.example.net/complaints\n" in text
    assert "  - removed alerts (webhooks.d/alerts.yaml): 'Bounce Alerts'\n" in text
    assert (f"  > renamed analytics → stats/analytics (webhooks.d/stats/analytics.yaml): {RENAME_NOTE}\n"
            in text)
    assert "  ~ changed crm/opens (webhooks.d/crm/opens.yaml):\n" \
           "      events: [delivered, newsletter_opened] → [delivered] (line 2)\n" \
           "      channel.url: https://crm.example.com/hooks → https://crm.example.com/v2 (line 5)\n" \
           "      filters.sending_domain: (not set) → [mail.example.com] (line 8)\n" in text
    assert text.endswith("3 → 3 webhooks: 1 added, 1 removed, 1 renamed, 1 changed; "
                         "0 secret(s) newly sent; 0 error(s)\n")


def test_a_rename_with_changes_is_an_add_and_a_remove_said_similar(repo: GitRepo, run: Run) -> None:
    repo.move("analytics.yaml", "stats.yaml")
    repo.write("stats.yaml", ANALYTICS.replace("events: all", "events: [delivered]"))
    repo.commit("rename and narrow")
    found = run("--webhooks", str(repo.hooks), "HEAD~1", "HEAD", "--format", "json").json()
    assert found["renamed"] == []
    assert [(a["id"], a.get("similar_to")) for a in found["added"]] == [("stats", "analytics")]
    assert [r["id"] for r in found["removed"]] == ["analytics"]


def test_an_event_newly_reaching_a_destination_and_one_no_longer(repo: GitRepo, run: Run) -> None:
    repo.write("crm/opens.yaml", CRM.replace("[delivered, newsletter_opened]", "[delivered, bounced]"))
    repo.write("analytics.yaml", ANALYTICS.replace("analytics.example.com", "stats.example.com"))
    ran = run("--webhooks", str(repo.hooks), "HEAD", "--format", "json")
    effects = [(e["change"], e["destination"], e["events"], e["webhook"], e["because"], e.get("filters"),
                e.get("line")) for e in ran.json()["effects"]]
    assert effects == [
        ("starts", "https://crm.example.com", ["bounced"], "crm/opens", "changed", None, 2),
        ("starts", "https://stats.example.com",
         ["received", "delivered", "bounced", "rejected", "delayed", "newsletter_opened",
          "newsletter_clicked", "transactional_opened", "transactional_clicked", "complaint"],
         "analytics", "changed", "from *.example.org", 5),
        ("stops", "https://analytics.example.com",
         ["received", "delivered", "bounced", "rejected", "delayed", "newsletter_opened",
          "newsletter_clicked", "transactional_opened", "transactional_clicked", "complaint"],
         "analytics", "changed", "from *.example.org", 2),
        ("stops", "https://crm.example.com", ["newsletter_opened"], "crm/opens", "changed", None, 2),
    ]
    text = run("--webhooks", str(repo.hooks), "HEAD").out
    assert "Effects:\n" \
           "  + https://crm.example.com newly receives bounced via crm/opens (changed)\n" \
           "  + https://stats.example.com newly receives all events from *.example.org " \
           "via analytics (changed)\n" \
           "  - https://analytics.example.com no longer receives all events from *.example.org " \
           "via analytics (changed)\n" \
           "  - https://crm.example.com no longer receives newsletter_opened via crm/opens " \
           "(changed)\n" in text


def test_a_webhook_turned_inactive_and_active_again(repo: GitRepo, run: Run) -> None:
    repo.write("analytics.yaml",
               ANALYTICS.replace("name: Analytics\n", "name: Analytics\nstatus: inactive\n"))
    repo.commit("pause analytics")
    found = run("--webhooks", str(repo.hooks), "HEAD~1", "HEAD", "--format", "json").json()
    assert found["status_changes"] == [{"webhook": "analytics", "file": "webhooks.d/analytics.yaml",
                                        "line": 2, "status": "inactive"}]
    [effect] = found["effects"]
    assert (effect["change"], effect["because"], effect["line"]) == ("stops", "turned inactive", 2)
    assert "  ~ analytics turned inactive (webhooks.d/analytics.yaml:2)\n" in \
        run("--webhooks", str(repo.hooks), "HEAD~1", "HEAD").out

    back = run("--webhooks", str(repo.hooks), "HEAD", "HEAD~1", "--format", "json").json()
    assert [s["status"] for s in back["status_changes"]] == ["active"]
    assert [(e["change"], e["because"]) for e in back["effects"]] == [("starts", "active again")]
    assert "  ~ analytics turned active again" in run("--webhooks", str(repo.hooks), "HEAD", "HEAD~1").out


def test_a_secret_sent_to_a_new_host_is_flagged_and_one_moved_between_webhooks_is_not(
    repo: GitRepo, run: Run
) -> None:
    # The same secret to the same host from another webhook: no new destination.
    repo.write("crm/clicks.yaml", CRM.replace("CRM Opens", "CRM Clicks")
               .replace("[delivered, newsletter_opened]", "[newsletter_clicked]"))
    assert run("--webhooks", str(repo.hooks), "HEAD", "--format", "json").json()["secrets_newly_sent"] == []
    repo.write("crm/opens.yaml", CRM.replace("crm.example.com", "collector.example.net"))
    found = run("--webhooks", str(repo.hooks), "HEAD", "--format", "json").json()
    assert found["secrets_newly_sent"] == [{
        "reference": "${credential:crm-signing-secret}", "destination": "https://collector.example.net",
        "webhook": "crm/opens", "file": "webhooks.d/crm/opens.yaml", "line": 6, "active": True,
    }]


def test_a_secret_in_a_new_inactive_webhook_is_flagged_as_configured(repo: GitRepo, run: Run) -> None:
    repo.write("later.yaml", CRM.replace("CRM Opens", "Later").replace("crm.example.com", "later.example.net")
               .replace("events:", "status: inactive\nevents:"))
    ran = run("--webhooks", str(repo.hooks), "HEAD")
    assert ("! SECRET ${credential:crm-signing-secret} newly configured for https://later.example.net by "
            "later (webhooks.d/later.yaml:7); the webhook is inactive: sent once it is active\n") in ran.out


def test_grants_refusing_a_secret_newly_sent_exit_1(repo: GitRepo, run: Run, tmp_path: Path) -> None:
    config = grants_config(tmp_path)
    assert run("--config", str(config), "--webhooks", str(repo.hooks), "HEAD").code == 0
    repo.write("crm/opens.yaml", CRM.replace("crm.example.com", "collector.example.net"))
    ran = run("--config", str(config), "--webhooks", str(repo.hooks), "HEAD", "--format", "json")
    assert ran.code == 1
    found = ran.json()
    refusal = ("crm/opens: ${credential:crm-signing-secret} may not be sent to https://collector.example.net "
               "(secrets.grants[0].destinations)")
    assert found["errors"] == [{"file": "webhooks.d/crm/opens.yaml", "line": 6, "column": 12,
                                "message": refusal}]
    assert found["secrets_newly_sent"][0]["refused"] == refusal
    text = run("--config", str(config), "--webhooks", str(repo.hooks), "HEAD")
    assert text.code == 1
    assert text.out.splitlines()[2] == (
        "! SECRET ${credential:crm-signing-secret} newly sent to https://collector.example.net by crm/opens "
        f"(webhooks.d/crm/opens.yaml:6); refused by the config: {refusal}")
    assert f"error: webhooks.d/crm/opens.yaml:6:12: {refusal}\n" in text.out


def test_a_head_file_that_does_not_validate_is_an_error(repo: GitRepo, run: Run) -> None:
    repo.write("broken.yaml", "name: Broken\nevents: [opened]\nchannel: {type: web, url: https://b.example.com}\n")
    ran = run("--webhooks", str(repo.hooks), "HEAD", "--format", "json")
    assert ran.code == 1
    [error] = ran.json()["errors"]
    assert (error["file"], error["line"]) == ("webhooks.d/broken.yaml", 2)
    # BASE's invalid files are left out, and said: they are not this change's errors.
    repo.commit("broken")
    repo.remove("broken.yaml")
    ran = run("--webhooks", str(repo.hooks), "HEAD")
    assert ran.code == 0
    assert "note: 1 file(s) of BASE do not validate: left out\n" in ran.out


def test_head_defaults_to_the_working_tree_with_uncommitted_changes(repo: GitRepo, run: Run) -> None:
    repo.write("esp.yaml", NEW)  # untracked
    repo.write("crm/opens.yaml", CRM.replace("newsletter_opened", "newsletter_clicked"))  # modified
    found = run("--webhooks", str(repo.hooks), "main", "--format", "json").json()
    assert found["head"] == {"given": str(repo.hooks), "kind": "directory", "directory": "webhooks.d",
                             "webhooks": 4, "invalid_files": 0}
    assert [a["id"] for a in found["added"]] == ["esp"]
    assert [c["field"] for c in found["changed"][0]["changes"]] == ["events"]


def test_two_directories_instead_of_revisions(repo: GitRepo, run: Run, tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(repo.hooks, old)
    shutil.copytree(repo.hooks, new)
    (new / "alerts.yaml").unlink()
    found = run(str(old), str(new), "--format", "json").json()
    assert (found["base"]["kind"], found["head"]["kind"]) == ("directory", "directory")
    assert found["removed"] == [{"id": "alerts", "name": "Bounce Alerts", "file": f"{old}/alerts.yaml"}]
    # In a repository, files are shown from its root.
    found = run(str(repo.hooks), str(new), "--format", "json").json()
    assert found["base"]["directory"] == "webhooks.d"


def test_the_webhooks_directory_below_the_repository_root_or_at_it(tmp_path: Path, run: Run) -> None:
    at_root = GitRepo(tmp_path / "flat")
    at_root.root.mkdir()
    at_root.git("init", "-q")
    (at_root.root / "alerts.yaml").write_text(ALERTS)
    at_root.commit("one")
    (at_root.root / "crm.yaml").write_text(CRM)
    found = run("--webhooks", str(at_root.root), "HEAD", "--format", "json").json()
    assert [(a["id"], a["file"]) for a in found["added"]] == [("crm", "crm.yaml")]
    # A revision before the directory existed: every webhook is new.
    repo = GitRepo(tmp_path / "later")
    repo.root.mkdir()
    repo.git("init", "-q")
    repo.commit("empty")
    repo.write("alerts.yaml", ALERTS)
    repo.commit("alerts")
    found = run("--webhooks", str(repo.hooks), "HEAD~1", "HEAD", "--format", "json").json()
    assert [a["id"] for a in found["added"]] == ["alerts"]


def test_usage_and_io_errors_exit_2(repo: GitRepo, run: Run, tmp_path: Path) -> None:
    ran = run("--webhooks", str(repo.hooks), "no-such-branch")
    assert (ran.code, ran.out) == (2, "")
    assert ran.err == f"mailhooks diff: unknown revision 'no-such-branch' in {repo.root}\n"
    plain = tmp_path / "plain"
    plain.mkdir()
    ran = run("--webhooks", str(plain), "main")
    assert ran.code == 2
    assert "is not in a git repository" in ran.err
    file = repo.hooks / "crm" / "opens.yaml"
    ran = run("--webhooks", str(file), "main")
    assert (ran.code, ran.err) == (2, f"mailhooks diff: {file} is not a directory\n")
    ran = run("--webhooks", str(repo.hooks), "main", str(tmp_path / "missing"))
    assert ran.code == 2


def test_a_revision_that_looks_like_an_option_never_reaches_git(
    repo: GitRepo, run: Run, tmp_path: Path
) -> None:
    target = tmp_path / "written"
    for argument in (f"--output={target}", "-h", "--exec=touch x", "-"):
        ran = run("--webhooks", str(repo.hooks), "--", argument)
        assert ran.code == 2, (argument, ran.out)
        assert ran.err == f"mailhooks diff: {argument!r} is not a revision or a directory\n"
        ran = run("--webhooks", str(repo.hooks), "--", "HEAD", argument)
        assert ran.code == 2
    assert not target.exists()
    # A revision with a control character is refused before git sees it.
    ran = run("--webhooks", str(repo.hooks), "HEAD\n--output=x")
    assert (ran.code, ran.err) == (2, "mailhooks diff: 'HEAD\\n--output=x' is not a revision\n")


def test_comments_and_layout_alone_change_nothing(repo: GitRepo, run: Run) -> None:
    repo.write("alerts.yaml", "# paged at night\n" + ALERTS.replace("events: [bounced, complaint]",
                                                                   "events:\n  - bounced\n  - complaint"))
    ran = run("--webhooks", str(repo.hooks), "HEAD")
    assert ran.code == 0
    assert ran.out.endswith("no webhook changed (3 webhooks); 0 error(s)\n")


def test_a_revision_is_read_from_git_links_and_large_files_as_the_loader_would(
    repo: GitRepo, run: Run, tmp_path: Path
) -> None:
    (repo.hooks / "alias.yaml").symlink_to("alerts.yaml")  # a second file with the same name
    (repo.hooks / "out.yaml").symlink_to("../README.md")
    repo.write("large.yaml", "name: Large\n# " + "x" * 70000 + "\n")
    repo.commit("a link inside, one outside, a large file")
    found = run("--webhooks", str(repo.hooks), "HEAD~1", "HEAD", "--format", "json").json()
    messages = {(error["file"], error["message"].split(":")[0]) for error in found["errors"]}
    assert messages == {
        ("webhooks.d/alias.yaml", "name"),  # the same name as alerts.yaml: the link was followed
        ("webhooks.d/large.yaml", "file too large"),
        ("webhooks.d/out.yaml", "a symbolic link that leads out of the webhooks directory or nowhere"),
    }
