"""Loading a webhooks directory: the edge cases a directory in git and on a host can have."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

import pytest

from mailhooks.config_file import ConfigError, load_settings
from mailhooks.documents.yaml import MAX_NODES
from mailhooks.settings import Settings
from mailhooks.webhooks.load import (
    LoadResult,
    apply_limit,
    load_directory,
    load_webhooks,
)

from .conftest import WriteFile, settings_with, webhook_yaml


def messages(result: LoadResult, directory: Path) -> list[str]:
    """Problems as `relative/path:line:col: message`."""
    return [str(problem).replace(f"{directory}/", "") for problem in result.problems]


# --- files that must be refused without hurting the process ---------------------------------


def test_a_50_mb_file_is_refused_by_its_size_without_being_read(
    hooks_dir: Path, write: WriteFile, settings: Settings
) -> None:
    big = hooks_dir / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # sparse: cheap to make, 50 MB to read
    write("ok.yaml")
    tracemalloc.start()
    try:
        result = load_webhooks(hooks_dir, settings)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert messages(result, hooks_dir) == [
        "big.yaml:1:1: file too large: over 65536 bytes (limits.max_file_bytes in the config)"
    ]
    assert sorted(result.webhooks) == ["ok"]
    assert peak < 5 * 1024 * 1024, f"{peak} bytes allocated: the file was read whole"


def test_the_file_size_limit_comes_from_the_config(hooks_dir: Path, write: WriteFile) -> None:
    write("padded.yaml", webhook_yaml("Padded") + "#" * 300 + "\n")
    assert load_webhooks(hooks_dir, Settings()).ok
    result = load_webhooks(hooks_dir, settings_with(max_file_bytes=256))
    assert messages(result, hooks_dir) == [
        "padded.yaml:1:1: file too large: over 256 bytes (limits.max_file_bytes in the config)"
    ]


def test_an_alias_bomb_is_an_error_not_a_hang(
    hooks_dir: Path, write: WriteFile, settings: Settings
) -> None:
    # "Billion laughs": 9 levels of 9 aliases each expand to 9**9 strings.
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        previous, current = "abcdefghi"[level - 1], "abcdefghi"[level]
        lines.append(f"{current}: &{current} [" + ", ".join([f"*{previous}"] * 9) + "]")
    write("bomb.yaml", "\n".join(lines) + "\n")
    result = load_webhooks(hooks_dir, settings)
    assert messages(result, hooks_dir) == [
        f"bomb.yaml:1:1: document expands to more than {MAX_NODES} values "
        "(aliases that repeat each other: an alias bomb?)"
    ]


def test_a_self_referencing_alias_is_an_error(
    hooks_dir: Path, write: WriteFile, settings: Settings
) -> None:
    write("self.yaml", "&top\nname: Self\nevents: all\nchannel: *top\n")
    result = load_webhooks(hooks_dir, settings)
    assert len(result.problems) == 1
    assert "nested too deeply" in result.problems[0].message


def test_an_alias_inside_its_own_list_is_an_error(
    hooks_dir: Path, write: WriteFile, settings: Settings
) -> None:
    # ruamel.yaml builds the inner alias as null; the webhook must still be refused.
    write("self.yaml", webhook_yaml("Self", events="&e [delivered, *e]"))
    result = load_webhooks(hooks_dir, settings)
    assert not result.webhooks
    assert result.problems
    assert {p.position.line for p in result.problems} == {2}


def test_non_utf8_bytes_point_at_the_bad_byte(
    hooks_dir: Path, write: WriteFile, settings: Settings
) -> None:
    write("latin1.yaml", webhook_yaml("Caf\xe9").encode("latin-1"))
    result = load_webhooks(hooks_dir, settings)
    assert messages(result, hooks_dir) == [
        "latin1.yaml:1:10: not UTF-8: byte 0xe9 cannot be decoded"
    ]


def test_a_utf8_byte_order_mark_is_accepted(
    hooks_dir: Path, write: WriteFile, settings: Settings
) -> None:
    write("bom.yaml", b"\xef\xbb\xbf" + webhook_yaml("With BOM").encode())
    result = load_webhooks(hooks_dir, settings)
    assert result.ok
    assert result.webhooks["bom"].webhook.name == "With BOM"


def test_an_empty_file_is_an_error(hooks_dir: Path, write: WriteFile, settings: Settings) -> None:
    write("empty.yaml", b"")
    assert messages(load_webhooks(hooks_dir, settings), hooks_dir) == [
        "empty.yaml:1:1: file is empty"
    ]


# --- what the walk finds ----------------------------------------------------------------------


def test_a_directory_symlink_loop_is_walked_once(
    hooks_dir: Path, write: WriteFile, settings: Settings
) -> None:
    write("sub/hook.yaml")
    (hooks_dir / "sub" / "up").symlink_to("..")
    (hooks_dir / "sideways").symlink_to("sub")
    result = load_webhooks(hooks_dir, settings)
    assert result.ok, result.problems
    assert len(result.webhooks) == 1


def test_a_symlink_to_itself_is_a_problem_not_a_hang(
    hooks_dir: Path, write: WriteFile, settings: Settings
) -> None:
    (hooks_dir / "loop.yaml").symlink_to("loop.yaml")
    (hooks_dir / "a").symlink_to("b")
    (hooks_dir / "b").symlink_to("a")
    write("ok.yaml")
    result = load_webhooks(hooks_dir, settings)
    assert sorted(result.webhooks) == ["ok"]
    reported = {Path(p.file).name: p.message for p in result.problems}
    assert set(reported) == {"loop.yaml", "a", "b"}
    assert all(message.startswith("cannot read: ") for message in reported.values())


def test_a_dangling_symlink_is_a_problem(
    hooks_dir: Path, settings: Settings
) -> None:
    (hooks_dir / "gone.yaml").symlink_to("nowhere.yaml")
    assert messages(load_webhooks(hooks_dir, settings), hooks_dir) == [
        "gone.yaml:1:1: cannot read: No such file or directory"
    ]


def test_a_directory_named_like_a_file_is_walked_not_read(
    hooks_dir: Path, write: WriteFile, settings: Settings
) -> None:
    (hooks_dir / "x.yaml").mkdir()
    write("x.yaml/inner.yaml")
    result = load_webhooks(hooks_dir, settings)
    assert result.ok, result.problems
    assert sorted(result.webhooks) == ["x.yaml/inner"]


@pytest.mark.parametrize("name", [
    ".x.yaml", "x.yaml~", "#x.yaml#", ".#x.yaml", ".x.yaml.swp", "x.yaml.swp", "x.yaml.orig",
    "x.json", "x.yaml.bak", "4913", ".hidden/x.yaml", ".git/hooks/x.yaml",
])
def test_hidden_and_temporary_files_are_ignored(
    name: str, hooks_dir: Path, write: WriteFile, settings: Settings
) -> None:
    write(name, "this: [is not valid\n")
    write("real.yaml")
    result = load_webhooks(hooks_dir, settings)
    assert result.ok, result.problems
    assert sorted(result.webhooks) == ["real"]


def test_ids_come_from_paths_relative_to_the_directory(
    hooks_dir: Path, write: WriteFile, settings: Settings
) -> None:
    write("crm/opens.yaml", webhook_yaml("Opens"))
    write("crm/eu/clicks.yml", webhook_yaml("Clicks"))
    write("top.yaml", webhook_yaml("Top"))
    result = load_webhooks(hooks_dir, settings)
    assert result.ok, result.problems
    assert sorted(result.webhooks) == ["crm/eu/clicks", "crm/opens", "top"]
    loaded = result.webhooks["crm/opens"]
    assert loaded.path == hooks_dir / "crm" / "opens.yaml"
    assert loaded.webhook.name == "Opens"
    assert loaded.digest == hashlib.sha256(loaded.path.read_bytes()).hexdigest()


def test_a_file_name_that_cannot_be_an_id_is_a_problem(
    hooks_dir: Path, write: WriteFile, settings: Settings
) -> None:
    write("my hook.yaml")
    result = load_webhooks(hooks_dir, settings)
    assert not result.webhooks
    assert "file name 'my hook' cannot make a webhook id" in result.problems[0].message


def test_yaml_and_yml_with_the_same_id_clash(
    hooks_dir: Path, write: WriteFile, settings: Settings
) -> None:
    write("a.yaml", webhook_yaml("First"))
    write("a.yml", webhook_yaml("Second"))
    result = load_webhooks(hooks_dir, settings)
    assert sorted(result.webhooks) == ["a"]
    assert messages(result, hooks_dir) == [
        "a.yml:1:1: webhook id 'a' is already taken by another file"
    ]


def test_an_id_clash_with_an_invalid_file_is_still_a_clash(
    hooks_dir: Path, write: WriteFile, settings: Settings
) -> None:
    write("a.yaml", "name: [\n")
    write("a.yml", webhook_yaml("Second"))
    result = load_webhooks(hooks_dir, settings)
    assert not result.webhooks
    assert result.failed_ids == {"a"}
    assert [Path(p.file).name for p in result.problems] == ["a.yaml", "a.yml"]


def test_names_are_unique_across_files_case_insensitively(
    hooks_dir: Path, write: WriteFile, settings: Settings
) -> None:
    write("a.yaml", webhook_yaml("CRM Opens"))
    write("b.yaml", "# the same name, in other case\n" + webhook_yaml("crm opens"))
    result = load_webhooks(hooks_dir, settings)
    assert sorted(result.webhooks) == ["a"]
    assert result.failed_ids == {"b"}
    assert messages(result, hooks_dir) == [
        "b.yaml:2:7: name: 'crm opens' is already used by a.yaml"
    ]


def test_every_error_of_every_file_in_one_pass(
    hooks_dir: Path, write: WriteFile, settings: Settings
) -> None:
    write("good.yaml")
    write("one.yaml", webhook_yaml("One", events="[opened]"))
    write("two.yaml", webhook_yaml("Two", url="http://plain.example.com/", extra="colour: red\n"))
    write("deep/three.yaml", "name: Three\n")
    result = load_webhooks(hooks_dir, settings)
    assert sorted(result.webhooks) == ["good"]
    assert result.failed_ids == {"one", "two", "deep/three"}
    assert sorted(messages(result, hooks_dir)) == [
        "deep/three.yaml:1:1: missing required key 'events', 'channel'",
        'one.yaml:2:10: events[0]: "opened" is not one of received, delivered, bounced, '
        "rejected, delayed, newsletter_opened, newsletter_clicked, transactional_opened, "
        "transactional_clicked, complaint",
        "two.yaml:3:1: colour: unknown key; allowed here: channel, event_type, events, "
        "filters, name, status",
        "two.yaml:6:8: channel.url: plain http is not allowed; use https, or set "
        "allow_http: true in the daemon's config",
    ]


def test_allow_http_in_the_config_allows_plain_http(hooks_dir: Path, write: WriteFile) -> None:
    write("plain.yaml", webhook_yaml("Plain", url="http://plain.example.com/"))
    assert not load_webhooks(hooks_dir, Settings()).ok
    assert load_webhooks(hooks_dir, Settings(allow_http=True)).ok


def test_a_missing_directory_is_one_problem(tmp_path: Path, settings: Settings) -> None:
    result = load_webhooks(tmp_path / "nope", settings)
    assert [p.message for p in result.problems] == ["webhooks directory does not exist"]


# --- limits ----------------------------------------------------------------------------------


def test_max_webhooks_defaults_to_100(hooks_dir: Path, write: WriteFile) -> None:
    for number in range(101):
        write(f"hook-{number:03}.yaml")
    result = load_webhooks(hooks_dir, Settings())
    assert Settings().limits.max_webhooks == 100
    assert len(result.webhooks) == 100
    assert "hook-100" not in result.webhooks
    assert result.failed_ids == {"hook-100"}
    assert messages(result, hooks_dir) == [
        "hook-100.yaml:1:1: webhook limit reached: 101 webhooks, the limit is 100 "
        "(limits.max_webhooks in the config); this one is refused"
    ]


def test_max_webhooks_from_the_config(hooks_dir: Path, write: WriteFile) -> None:
    for name in "abcd":
        write(f"{name}.yaml")
    result = load_webhooks(hooks_dir, settings_with(max_webhooks=3))
    assert sorted(result.webhooks) == ["a", "b", "c"]
    assert len(result.problems) == 1


def test_apply_limit_keeps_the_running_webhooks_first(hooks_dir: Path, write: WriteFile) -> None:
    for name in "abcd":
        write(f"{name}.yaml")
    result = apply_limit(load_directory(hooks_dir, Settings()), 2, frozenset({"d", "c"}))
    assert sorted(result.webhooks) == ["c", "d"]
    assert result.failed_ids == {"a", "b"}
    assert [Path(p.file).name for p in result.problems] == ["a.yaml", "b.yaml"]


def test_apply_limit_under_the_limit_changes_nothing(hooks_dir: Path, write: WriteFile) -> None:
    write("a.yaml")
    result = apply_limit(load_directory(hooks_dir, Settings()), 1)
    assert sorted(result.webhooks) == ["a"]
    assert result.ok


# --- the config file -------------------------------------------------------------------------


def test_no_config_file_means_the_defaults() -> None:
    assert load_settings(None) == Settings()


def test_an_empty_config_file_means_the_defaults(tmp_path: Path) -> None:
    config = tmp_path / "mailhooks.yaml"
    config.write_text("# nothing set\n")
    assert load_settings(config) == Settings()


def test_config_errors_have_file_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "mailhooks.yaml"
    config.write_text(
        "webhooks_dir: hooks\n"
        "limits:\n"
        "  max_webhooks: 0\n"
        "  max_hooks: 3\n"
        "log: {format: xml}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    assert [str(problem) for problem in raised.value.problems] == [
        f"{config}:3:17: limits.max_webhooks: 0 is less than the minimum of 1",
        f"{config}:4:3: limits.max_hooks: unknown key; allowed here: max_batch_events, "
        "max_body_bytes, max_connections, max_file_bytes, max_webhooks",
        f'{config}:5:15: log.format: "xml" is not one of json, console',
    ]


@pytest.mark.parametrize(("text", "where", "message"), [
    ("allow_http: true\nallow_http: false\n", "2:1", "duplicate key 'allow_http'"),
    ("limits: [1, 2]\n", "1:9", "limits: [1, 2] is not of type object"),
    ("- webhooks_dir: x\n", "1:1", "expected a mapping"),
    ("http: localhost\n", "1:7", "is not HOST:PORT"),
    ("egress: {deny: [10.0.0.0/33]}\n", "1:17", "is not an IP address or CIDR range"),
])
def test_config_problems_each_with_a_position(
    tmp_path: Path, text: str, where: str, message: str
) -> None:
    config = tmp_path / "mailhooks.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    problem = raised.value.problems[0]
    assert f"{problem.position.line}:{problem.position.column}" == where, problem
    assert message in problem.message


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(tmp_path / "absent.yaml")
    assert str(raised.value.problems[0]) == (
        f"{tmp_path / 'absent.yaml'}:1:1: cannot read: No such file or directory"
    )


def test_relative_paths_in_the_config_are_taken_from_its_directory(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "mailhooks"
    etc.mkdir(parents=True)
    config = etc / "mailhooks.yaml"
    config.write_text(
        "webhooks_dir: webhooks.d\nstate_dir: ../../var/lib/mailhooks\n"
        "socket: /run/mailhooks/mailhooks.sock\nlimits: {max_webhooks: 7}\n"
    )
    cwd = Path.cwd()
    os.chdir(tmp_path)  # not the config's directory: the result must not depend on it
    try:
        settings = load_settings(Path("etc/mailhooks/mailhooks.yaml"))
    finally:
        os.chdir(cwd)
    assert settings.webhooks_dir == Path("etc/mailhooks/webhooks.d")
    assert settings.state_dir == Path("etc/mailhooks/../../var/lib/mailhooks")
    assert settings.socket == Path("/run/mailhooks/mailhooks.sock")
    assert settings.limits.max_webhooks == 7
