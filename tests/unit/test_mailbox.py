import threading

import numpy as np

from edge_agent.capture.base import LatestFrameMailbox
from edge_agent.types import Frame


def frame(index: int) -> Frame:
    return Frame("cam", index, 0.0, float(index), np.zeros((2, 2, 3), np.uint8))


def test_newest_frame_wins_and_drops_are_counted() -> None:
    mailbox = LatestFrameMailbox()
    for i in range(5):
        mailbox.put(frame(i))
    got = mailbox.get(timeout_s=0.0)
    assert got is not None and got.index == 4
    assert mailbox.dropped == 4
    assert mailbox.get(timeout_s=0.0) is None


def test_reader_wakes_when_a_frame_arrives() -> None:
    mailbox = LatestFrameMailbox()
    writer = threading.Thread(target=mailbox.put, args=(frame(7),))
    writer.start()
    got = mailbox.get(timeout_s=10.0)
    writer.join()
    assert got is not None and got.index == 7


def test_close_releases_a_waiting_reader() -> None:
    mailbox = LatestFrameMailbox()
    closer = threading.Thread(target=mailbox.close)
    closer.start()
    assert mailbox.get(timeout_s=10.0) is None
    closer.join()
    assert mailbox.closed
