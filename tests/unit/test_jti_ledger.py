"""The single-use jti ledger the IdP and Vault stand-ins share."""

from __future__ import annotations

import threading

from fakeclock import FakeClock

from trustloop.devstack.jti_ledger import JtiLedger


def test_a_jti_is_refused_until_exp_plus_grace_has_passed() -> None:
    clock = FakeClock()
    ledger = JtiLedger(clock, grace_s=30)
    exp = clock.now + 60

    assert ledger.first_use("a", exp)
    clock.now = exp + 30  # exactly at the end of the grace: still refused
    assert not ledger.first_use("a", exp)
    clock.now = exp + 30.001
    assert ledger.first_use("b", clock.now + 60)
    assert ledger.first_use("a", exp)  # forgotten; its exp check refuses it


def test_expiries_out_of_order_are_each_kept_their_own_time() -> None:
    """A long-lived jti recorded first does not shield a short one behind it."""
    clock = FakeClock()
    ledger = JtiLedger(clock, grace_s=0)
    start = clock.now
    assert ledger.first_use("long", start + 100)
    assert ledger.first_use("short", start + 10)

    clock.now = start + 50
    assert ledger.first_use("short", start + 60)  # forgotten, recorded anew
    assert not ledger.first_use("long", start + 100)  # still remembered
    assert len(ledger) == 2


def test_expired_jtis_are_forgotten_so_the_ledger_stays_small() -> None:
    clock = FakeClock()
    ledger = JtiLedger(clock, grace_s=5)
    for i in range(1000):
        clock.now += 0.1
        assert ledger.first_use(f"jti-{i}", clock.now + 60)

    # 1000 jtis over 100 s, each live 65 s: only the last 650 or so remain.
    assert 640 <= len(ledger) <= 660


def test_one_jti_presented_by_many_threads_at_once_is_accepted_once() -> None:
    clock = FakeClock()
    ledger = JtiLedger(clock, grace_s=30)
    barrier = threading.Barrier(16)
    accepted: list[bool] = []

    def present() -> None:
        barrier.wait()
        accepted.append(ledger.first_use("same", clock.now + 60))

    threads = [threading.Thread(target=present) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(accepted) == [False] * 15 + [True]
