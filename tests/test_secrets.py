"""Secret references: resolved at load from env, files and systemd credentials; never shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailhooks.channels.pushover import PushoverChannel
from mailhooks.channels.web import WebChannel
from mailhooks.secrets import (
    MAX_SECRET_BYTES,
    SecretError,
    SecretSources,
    contains_reference,
    is_reference,
    resolve,
    resolve_all,
)


def sources(
    environ: dict[str, str] | None = None, credentials: Path | None = None
) -> SecretSources:
    return SecretSources(environ or {}, str(credentials) if credentials else None)


def test_env_reference() -> None:
    resolved = resolve_all(["${env:CRM_API_KEY}"], sources({"CRM_API_KEY": "k-123"}))
    assert resolved.text("${env:CRM_API_KEY}") == "k-123"
    assert resolved.values() == ["k-123"]


def test_file_reference_trims_one_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "signing"
    secret.write_text("whsec_abc\n")
    resolved = resolve_all([f"${{file:{secret}}}"], sources())
    assert resolved.text(f"${{file:{secret}}}") == "whsec_abc"


def test_file_reference_trims_a_crlf_and_keeps_inner_whitespace(tmp_path: Path) -> None:
    secret = tmp_path / "signing"
    secret.write_bytes(b" two words \r\n")
    assert resolve(f"${{file:{secret}}}", sources()) == " two words "


def test_credential_reference_reads_credentials_directory(tmp_path: Path) -> None:
    (tmp_path / "pushover-token").write_text("azGDORePK8gMaC0QOYAMyEEuzJnyUi\n")
    resolved = resolve_all(["${credential:pushover-token}"], sources(credentials=tmp_path))
    assert resolved.text("${credential:pushover-token}") == "azGDORePK8gMaC0QOYAMyEEuzJnyUi"


def test_credentials_directory_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("MAILHOOKS_TEST_TOKEN", "from-env")
    (tmp_path / "key").write_text("from-credential")
    process = SecretSources.from_process()
    assert resolve("${credential:key}", process) == "from-credential"
    assert resolve("${env:MAILHOOKS_TEST_TOKEN}", process) == "from-env"


def test_a_reference_inside_a_header_value() -> None:
    resolved = resolve_all(["Bearer ${env:T}", "${env:T}"], sources({"T": "tok"}))
    assert resolved.text("Bearer ${env:T}") == "Bearer tok"
    assert resolved.values() == ["tok"]  # resolved once


def test_several_references_in_one_text() -> None:
    assert resolve("${env:A}:${env:B}", sources({"A": "user", "B": "pass"})) == "user:pass"


@pytest.mark.parametrize(("reference", "message"), [
    ("${env:MISSING_VAR}", "${env:MISSING_VAR}: environment variable MISSING_VAR is not set"),
    ("${file:/nonexistent/mailhooks/secret}",
     "${file:/nonexistent/mailhooks/secret}: file /nonexistent/mailhooks/secret does not exist"),
    ("${file:relative/secret}", "${file:relative/secret}: the path must be absolute"),
    ("${credential:absent}", "${credential:absent}: $CREDENTIALS_DIRECTORY is not set"),
])
def test_a_missing_secret_is_a_clear_error_naming_the_reference(
    reference: str, message: str
) -> None:
    with pytest.raises(SecretError) as raised:
        resolve_all(["${env:PRESENT}", reference], sources({"PRESENT": "v"}))
    assert str(raised.value).startswith(message)


def test_a_missing_credential_file_names_the_reference_and_path(tmp_path: Path) -> None:
    with pytest.raises(SecretError) as raised:
        resolve_all(["${credential:crm-signing-secret}"], sources(credentials=tmp_path))
    assert str(raised.value) == (
        f"${{credential:crm-signing-secret}}: file {tmp_path / 'crm-signing-secret'} "
        "does not exist"
    )


@pytest.mark.parametrize("name", ["../escape", ".."])
def test_a_credential_name_cannot_leave_the_directory(tmp_path: Path, name: str) -> None:
    with pytest.raises(SecretError, match="cannot contain"):
        resolve_all([f"${{credential:{name}}}"], sources(credentials=tmp_path))


def test_a_file_reference_reads_only_a_small_regular_file(tmp_path: Path) -> None:
    # Without secrets.dirs any path may be named: a FIFO would hang the load and
    # /dev/zero fill the daemon's memory.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big"
    big.write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
    for path, reason in ((fifo, "not a regular file"), (Path("/dev/zero"), "not a regular file"),
                         (big, f"over {MAX_SECRET_BYTES} bytes"), (tmp_path, "Is a directory")):
        with pytest.raises(SecretError) as raised:
            resolve(f"${{file:{path}}}", sources())
        assert str(raised.value) == f"${{file:{path}}}: cannot read {path}: {reason}"
    big.write_bytes(b"k" * (MAX_SECRET_BYTES - 1) + b"\n")  # at the limit, its newline too: read
    assert len(resolve(f"${{file:{big}}}", sources())) == MAX_SECRET_BYTES - 1


def test_errors_never_carry_a_value(tmp_path: Path) -> None:
    with pytest.raises(SecretError) as raised:
        resolve_all(["${env:SET}", "${env:UNSET}"], sources({"SET": "s3cr3t-value"}))
    assert "s3cr3t-value" not in str(raised.value)


def test_resolved_repr_hides_the_values() -> None:
    resolved = resolve_all(["${env:A}", "${env:B}"], sources({"A": "alpha-secret", "B": "beta"}))
    for shown in (repr(resolved), str(resolved), f"{resolved!r}", f"{[resolved]}"):
        assert "alpha-secret" not in shown
        assert "beta" not in shown
    assert repr(resolved) == "Resolved(2 secret(s))"


@pytest.mark.parametrize(("text", "whole", "inside"), [
    ("${env:NAME}", True, True),
    ("${file:/run/secrets/x}", True, True),
    ("${credential:crm-signing-secret}", True, True),
    ("Bearer ${env:T}", False, True),
    ("${vault:x}", False, False),
    ("${env:1BAD}", False, True),
    ("${file:relative}", False, True),
    ("literal", False, False),
])
def test_what_counts_as_a_reference(text: str, whole: bool, inside: bool) -> None:
    assert is_reference(text) is whole
    assert contains_reference(text) is inside


def test_secret_texts_of_each_channel() -> None:
    web = WebChannel(
        type="web", url="https://a.example.com/",
        headers={"X-Api-Key": "${env:K}", "X-Team": "mail"},
        secret=["${credential:new}", "${credential:old}"],
    )
    assert web.secret_texts() == ["${env:K}", "mail", "${credential:new}", "${credential:old}"]
    pushover = PushoverChannel(type="pushover", user_key="${env:U}", api_token="${env:T}")
    assert pushover.secret_texts() == ["${env:U}", "${env:T}"]
