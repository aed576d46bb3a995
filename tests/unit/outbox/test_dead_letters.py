"""Dead letters: refused messages kept aside, counted and reported as gaps."""

from __future__ import annotations

from pathlib import Path

from fakes.outbox import assert_accounts_balance, event, open_outbox, seqs

from edge_agent.types import MessageClass

E, T = MessageClass.EVENT, MessageClass.THUMBNAIL


def test_dead_letter_moves_aside_counts_and_reports(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db", dead_letter_max_rows=2)
    stored = box.enqueue_many([event(i, T if i == 1 else E) for i in range(5)])
    claimed = box.claim(5, urgent=False)
    box.dead_letter([(claimed[1], "refused: too large"), (claimed[2], "refused: not authorised")])
    assert seqs(box) == [1, 4, 5]
    letters = box.dead_letters()
    assert [(d.seq, d.message_class, d.reason) for d in letters] == [
        (3, "event", "refused: not authorised"),
        (2, "thumbnail", "refused: too large"),
    ]
    assert letters[1].payload == stored[1].payload
    stats = box.stats()
    assert stats.dead_lettered_by_class == {"event": 1, "thumbnail": 1}
    assert box.gap_ranges() == [(2, 3, {"refused": {"event": 1, "thumbnail": 1}})]
    box.dead_letter([(claimed[3], "refused")])  # the table keeps the newest 2
    assert [d.seq for d in box.dead_letters()] == [4, 3]
    assert box.stats().dead_letter_rows == 2
    assert_accounts_balance(box)


def test_a_refused_notice_puts_its_ranges_back_and_reports_itself(tmp_path: Path) -> None:
    box = open_outbox(tmp_path / "o.db", max_rows=1)
    box.enqueue_many([event(0, T), event(1, T)])  # seq 1 evicted
    notice = box.issue_gap_notice("g")
    assert notice is not None and notice.seq == 3
    box.dead_letter([(notice, "refused: not authorised")])
    assert box.gap_ranges() == [
        (1, 1, {"evicted": {"thumbnail": 1}}),
        (3, 3, {"refused": {"gaps": 1}}),
    ]
    assert box.notice_wanted()
    assert_accounts_balance(box)
