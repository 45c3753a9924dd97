"""Leaks: 100,000 RPCs across connect/disconnect cycles (socket and
channels) leave the gofer's FD and thread counts at their baseline and its
RSS within a small margin of it. The figures are printed."""
import os

from security.rawclient import proc_figures
from security.load import Mix

RPCS = 100_000
CYCLES = 100
RSS_MARGIN_KIB = 16 * 1024          # allocator slack; a leak of 100k objects is far more


def test_100k_rpcs_return_to_baseline(world, capsys):
    server = world.server
    mix = Mix(server.socket, world.name)
    fresh = proc_figures(server.pid)
    mix.cycle(RPCS // CYCLES, channels=2)          # warm up: first-use allocations
    before = mix.settle(server.pid, fresh)
    done = 0
    peak = before
    for i in range(CYCLES):
        done += mix.cycle(RPCS // CYCLES, channels=2 if i % 2 else 0)
        if i % 10 == 0:
            peak = tuple(max(a, b) for a, b in zip(peak, proc_figures(server.pid)))
    after = mix.settle(server.pid, before)
    with capsys.disabled():
        print("\n%d RPCs in %d connections: gofer FDs %d -> %d, threads %d -> %d, "
              "RSS %d -> %d KiB (peak FDs %d, threads %d, RSS %d KiB)"
              % ((done, CYCLES) + (before[0], after[0], before[1], after[1], before[2], after[2])
                 + peak))
    assert done >= RPCS
    assert after[0] <= before[0] and after[1] <= before[1]
    assert after[2] <= before[2] + RSS_MARGIN_KIB
    # The tree matches what was done: each connection's file, no directory left.
    made = sorted(n for n in os.listdir(world.dir) if n.startswith(("c", "tmp")))
    assert made == mix.expected_names()
