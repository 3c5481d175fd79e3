"""Conversation memory: earlier turns of one session, for one clinician, in memory.

The runtime builds a fresh agent per invocation; to let a follow-up ("stop her
metformin") share the context of the turns before it, the Strands messages of a
finished invocation are kept here and given to the next invocation's ``Agent``.

Whose memory it is: the key is the runtime session id
(``X-Amzn-Bedrock-AgentCore-Runtime-Session-Id``) AND the clinician a validated
access token names (:mod:`trustloop.agent.clinician`), so a clinician who sends
another's session id starts an empty conversation. A request whose token cannot be
validated gets no memory at all. The token is never part of a key or a message.

Bounds: at most ``max_sessions`` conversations (the least recently used goes first),
``max_messages`` messages each (older turns dropped whole, so a tool call is never
separated from its result), and a conversation idle for ``idle_ttl_s`` is forgotten.
Memory lives in this process only and holds chart data: it is never written out.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trustloop.agent.clinician import ClinicianId, ClinicianVerifier
    from trustloop.settings import Settings

MAX_SESSIONS = 256
MAX_MESSAGES = 60
IDLE_TTL_S = 30 * 60.0

Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class ConversationKey:
    session_id: str
    issuer: str
    sub: str

    @classmethod
    def of(cls, session_id: str, clinician: ClinicianId) -> ConversationKey:
        return cls(session_id, clinician.issuer, clinician.sub)


@dataclass
class _Entry:
    messages: Messages
    used_at: float


class ConversationStore:
    """Bounded, thread-safe memory of conversations by :class:`ConversationKey`."""

    def __init__(
        self,
        *,
        max_sessions: int = MAX_SESSIONS,
        max_messages: int = MAX_MESSAGES,
        idle_ttl_s: float = IDLE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1 or max_messages < 1 or idle_ttl_s <= 0:
            raise ValueError("conversation memory bounds must be positive")
        self._max_sessions = max_sessions
        self._max_messages = max_messages
        self._idle_ttl_s = idle_ttl_s
        self._clock = clock
        self._entries: OrderedDict[ConversationKey, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._entries)

    def recall(self, key: ConversationKey) -> Messages:
        """A copy of the conversation's messages (empty if none or expired)."""
        with self._lock:
            self._expire()
            entry = self._entries.get(key)
            if entry is None:
                return []
            entry.used_at = self._clock()
            self._entries.move_to_end(key)
            return copy.deepcopy(entry.messages)

    def keep(self, key: ConversationKey, messages: Sequence[Mapping[str, Any]]) -> None:
        """Remember ``messages`` (a copy, trimmed to whole turns) for ``key``."""
        kept = copy.deepcopy(_whole_turns(messages, self._max_messages))
        with self._lock:
            self._expire()
            self._entries[key] = _Entry(kept, self._clock())
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_sessions:
                self._entries.popitem(last=False)

    def forget(self, key: ConversationKey) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def _expire(self) -> None:
        cutoff = self._clock() - self._idle_ttl_s
        while self._entries:
            oldest_key, oldest = next(iter(self._entries.items()))
            if oldest.used_at > cutoff:
                return
            del self._entries[oldest_key]


def _whole_turns(messages: Sequence[Mapping[str, Any]], limit: int) -> Messages:
    """The last ``limit`` messages or fewer, starting at a clinician's question."""
    items = [dict(m) for m in messages]
    for start in range(max(0, len(items) - limit), len(items)):
        if _is_question(items[start]):
            return items[start:]
    return []


def _is_question(message: Mapping[str, Any]) -> bool:
    content = message.get("content")
    blocks = (
        [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
    )
    return (
        message.get("role") == "user"
        and any("text" in b for b in blocks)
        and not any("toolResult" in b for b in blocks)
    )


class ConversationMemory:
    """The store, and the check that decides which conversation a request may see."""

    def __init__(self, verifier: ClinicianVerifier, store: ConversationStore) -> None:
        self._verifier = verifier
        self.store = store

    @classmethod
    def for_settings(cls, settings: Settings) -> ConversationMemory:
        from trustloop.agent.clinician import ClinicianVerifier

        verifier = ClinicianVerifier(settings.idp_issuer, settings.mcp_resource)
        return cls(verifier, ConversationStore())

    async def key_for(
        self, session_id: str | None, token: str
    ) -> ConversationKey | None:
        """The conversation of this session and this clinician; None: no memory."""
        if not session_id:
            return None
        clinician = await self._verifier.identify(token)
        return None if clinician is None else ConversationKey.of(session_id, clinician)
