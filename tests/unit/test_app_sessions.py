"""Server-side sessions: unguessable ids, expiry, rotation, conversation ownership."""

from __future__ import annotations

from fakeclock import FakeClock

from trustloop.app.sessions import CookiePolicy, SessionStore


def test_session_ids_are_long_random_and_distinct() -> None:
    store = SessionStore()
    ids = {store.create().id for _ in range(50)}

    assert len(ids) == 50
    assert all(len(i) >= 43 for i in ids)  # 32 random bytes, base64url


def test_an_idle_session_expires_and_its_id_stops_working() -> None:
    clock = FakeClock()
    store = SessionStore(clock=clock, idle_timeout_s=60, absolute_timeout_s=3600)
    session = store.create()

    clock.now += 59
    assert store.get(session.id) is session
    clock.now += 61

    assert store.get(session.id) is None
    assert len(store) == 0


def test_a_busy_session_still_ends_at_the_absolute_timeout() -> None:
    clock = FakeClock()
    store = SessionStore(clock=clock, idle_timeout_s=60, absolute_timeout_s=150)
    session = store.create()
    for _ in range(3):
        clock.now += 50
        assert store.get(session.id) is session

    clock.now += 1
    assert store.get(session.id) is None


def test_rotation_gives_a_new_id_and_retires_the_old_one() -> None:
    store = SessionStore()
    session = store.create()
    old = session.id

    store.rotate(session)

    assert session.id != old
    assert store.get(old) is None
    assert store.get(session.id) is session


def test_the_store_drops_the_least_recently_used_session_beyond_its_cap() -> None:
    store = SessionStore(max_sessions=2)
    first, second = store.create(), store.create()
    store.get(first.id)  # first is now the most recently used

    store.create()

    assert store.get(first.id) is first
    assert store.get(second.id) is None


def test_a_conversation_belongs_to_the_session_that_made_it() -> None:
    store = SessionStore()
    mine, theirs = store.create(), store.create()
    conversation = theirs.new_conversation()

    assert theirs.conversation(conversation.id) is conversation
    assert mine.conversation(conversation.id) is None
    assert len(conversation.id) >= 33  # AgentCore's minimum session id length


def test_the_cookie_is_host_prefixed_and_secure_only_over_https() -> None:
    assert CookiePolicy.for_url("https://app.example").name == "__Host-trustloop"
    assert CookiePolicy.for_url("https://app.example").secure
    plain = CookiePolicy.for_url("http://127.0.0.1:3000")
    assert (plain.name, plain.secure) == ("trustloop_session", False)


def test_a_session_repr_shows_no_id() -> None:
    session = SessionStore().create()

    assert session.id not in repr(session)
