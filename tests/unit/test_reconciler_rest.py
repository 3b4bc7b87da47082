"""The reconciler's passes are rate-bounded: each is followed by a rest proportional to its
cost, so a pass over tens of thousands of apps cannot run back to back when woken constantly."""
import threading
import time
import types

from gaia_master import reconciler as rec


def passes_in(seconds: float, pass_s: float) -> int:
    r = rec.Reconciler(types.SimpleNamespace())
    count = [0]

    def pass_once():
        count[0] += 1
        time.sleep(pass_s)
        r.wake()                 # every grant wakes it: always woken

    r.pass_once = pass_once
    end = time.monotonic() + seconds
    thread = threading.Thread(target=r.run, args=(lambda: time.monotonic() < end,))
    thread.start()
    thread.join(seconds + rec.MAX_PASS_REST + 2)
    assert not thread.is_alive()
    return count[0]


def test_an_expensive_pass_is_followed_by_a_rest_of_four_times_its_cost():
    # 50 ms passes, woken all the time: one pass per 250 ms (back to back would be 20 a second)
    assert 3 <= passes_in(1.0, 0.05) <= 5


def test_cheap_passes_still_follow_every_wake_at_once():
    assert passes_in(0.5, 0.001) >= 25      # 1 ms pass + 4 ms rest: about 100


def test_the_rest_is_capped():
    started = time.monotonic()
    rec.Reconciler._rest(10.0)
    assert time.monotonic() - started < rec.MAX_PASS_REST + 0.5
