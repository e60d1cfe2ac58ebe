"""`mailhooks test ID`: against the running daemon, or from a directory's files (a working
copy tried before it is deployed); and every command's directory handled the same way."""

from __future__ import annotations

import json
from pathlib import Path

from tests.utils import LOOPBACK, Receiver, run_cli


def _config(root: Path) -> Path:
    config = root / "mailhooks.yaml"
    config.write_text(json.dumps({"allow_http": True, "egress": {"allow": LOOPBACK}}))
    return config


async def test_a_working_copy_is_tested_from_its_files(receiver: Receiver, tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    (hooks / "crm").mkdir(parents=True)
    (hooks / "crm" / "opens.yaml").write_text(json.dumps({
        "name": "CRM", "events": ["newsletter_opened"],
        "channel": {"type": "web", "url": receiver.url, "secret": "${env:SIGNING}"},
    }))
    env = {"SIGNING": "a-signing-secret-of-enough-bytes"}
    code, out, err = await run_cli("test", "crm/opens", "--webhooks", str(hooks),
                                   "--config", str(_config(tmp_path)), env=env)
    assert code == 0, err
    assert "crm/opens: newsletter_opened delivered: HTTP 200" in out
    [request] = receiver.requests
    assert request.json()["test"] is True and request.json()["event"] == "newsletter_opened"
    assert "webhook-signature" in request.headers
    # This host's secrets, sent where the files say: with nothing to limit that, it says so.
    assert err == (f"mailhooks test: secrets: not scoped (no secrets.grants in {_config(tmp_path)}); "
                   "crm/opens's secrets go where its file says\n")
    scoped = tmp_path / "scoped.yaml"
    scoped.write_text(json.dumps({**json.loads(_config(tmp_path).read_text()), "secrets": {
        "grants": [{"secrets": ["${env:SIGNING}"], "webhooks": ["crm/*"]}]}}))
    code, _, err = await run_cli("test", "crm/opens", "--webhooks", str(hooks), "--config", str(scoped),
                                 env=env)
    assert (code, err) == (0, "")
    # The positional DIR means the same as --webhooks.
    code, out, _ = await run_cli("test", "crm/opens", str(hooks), "--config", str(_config(tmp_path)),
                                 "--event", "bounced", env=env)
    assert code == 0 and "bounced delivered" in out


async def test_a_missing_secret_or_webhook_is_one_line(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "crm.yaml").write_text(json.dumps({
        "name": "CRM", "events": "all",
        "channel": {"type": "web", "url": "https://crm.example.com/hook", "secret": "${env:UNSET_X}"},
    }))
    code, _, err = await run_cli("test", "crm", "--webhooks", str(hooks))
    assert code == 1 and err.count("\n") == 1 and "UNSET_X is not set" in err
    code, _, err = await run_cli("test", "nope", "--webhooks", str(hooks))
    assert code == 1 and "no webhook 'nope'" in err


async def test_a_directory_that_cannot_be_read_is_a_usage_error(tmp_path: Path) -> None:
    for argv in (["validate", "/no/such/dir"], ["list", "/no/such/dir"],
                 ["test", "crm", "--webhooks", "/no/such/dir"], ["explain", "-", "/no/such/dir"]):
        event = {"event": "delivered", "email": "a@example.com", "message_id": "m1"}
        code, out, err = await run_cli(*argv, stdin=json.dumps(event).encode())
        assert code == 2, argv
        assert out == "" and err == f"mailhooks {argv[0]}: webhooks directory /no/such/dir does not exist\n"
