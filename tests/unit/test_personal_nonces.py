"""AES-GCM nonces of sealed personal fields (shared/store/personal.py, `_Nonces`): drawn from the OS a
block at a time, each must still be used once — a repeated nonce under one key gives the key's
authentication away — also across block boundaries, threads and a fork."""

from __future__ import annotations

import os
import threading

from shared.store.personal import NONCE_BYTES, _Nonces


def test_nonces_are_distinct_across_blocks() -> None:
    nonces = _Nonces()
    drawn = [nonces.next() for _ in range(3 * 1024 + 7)]  # past three block boundaries
    assert {len(n) for n in drawn} == {NONCE_BYTES}
    assert len(set(drawn)) == len(drawn)


def test_nonces_taken_by_threads_at_once_are_distinct() -> None:
    nonces = _Nonces()
    drawn: list[list[bytes]] = [[] for _ in range(8)]

    def take(into: list[bytes]) -> None:
        into.extend(nonces.next() for _ in range(2_000))

    threads = [threading.Thread(target=take, args=(d,)) for d in drawn]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [n for d in drawn for n in d]
    assert len(every) == 16_000 and len(set(every)) == len(every)


def test_a_forked_child_does_not_reuse_the_parents_block() -> None:
    nonces = _Nonces()
    first = nonces.next()  # the parent now holds a block with 1,023 nonces left
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next nonces, to the parent
        os.close(read)
        os.write(write, b"".join(nonces.next() for _ in range(4)))
        os._exit(0)
    os.close(write)
    child = os.read(read, 4 * NONCE_BYTES)
    os.close(read)
    os.waitpid(pid, 0)
    parents = [nonces.next() for _ in range(1_023)]
    child_nonces = {child[i : i + NONCE_BYTES] for i in range(0, len(child), NONCE_BYTES)}
    assert len(child_nonces) == 4
    assert not child_nonces & {first, *parents}
