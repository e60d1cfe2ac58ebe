"""Event ids mailhooks makes for events that came without one."""

from __future__ import annotations

import multiprocessing
import re
from datetime import UTC, datetime
from multiprocessing.connection import Connection

from mailhooks.events import IDS_PER_DRAW, Event, new_event_id


def test_generated_ids_are_128_bit_hex_and_never_repeat_across_draws() -> None:
    ids = [new_event_id() for _ in range(3 * IDS_PER_DRAW + 7)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", event_id) for event_id in ids)
    assert len(set(ids)) == len(ids)


def test_fill_in_keeps_the_senders_id_and_makes_one_otherwise() -> None:
    now = datetime.now(UTC)
    given = Event(event="delivered", email="a@example.com", message_id="<1@x>", event_id="mine")
    assert given.fill_in(now).event_id == "mine"
    made = Event(event="delivered", email="a@example.com", message_id="<1@x>").fill_in(now)
    assert made.event_id is not None and re.fullmatch(r"[0-9a-f]{32}", made.event_id)


def _ids_in_child(pipe: Connection) -> None:
    pipe.send([new_event_id() for _ in range(IDS_PER_DRAW)])


def test_a_forked_child_does_not_reuse_the_ids_its_parent_holds() -> None:
    new_event_id()  # the parent now holds a draw it has barely used
    parent_end, child_end = multiprocessing.Pipe()
    child = multiprocessing.get_context("fork").Process(target=_ids_in_child, args=(child_end,))
    child.start()
    child_ids = parent_end.recv()
    child.join(timeout=30)
    parent_ids = [new_event_id() for _ in range(IDS_PER_DRAW)]
    assert not set(child_ids) & set(parent_ids)
