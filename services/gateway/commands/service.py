"""ConversationService: the commands of chat, as the routes call them.

Each method checks its inputs (commands/inputs.py), lets the domain decide against the conversation's
state (commands/domain.py), and appends through the executor (commands/executor.py: lock, cache,
expected version, retry). Errors are services.gateway.errors; store errors (StoreUnavailable) pass.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.gateway.auth import Principal
from services.gateway.commands import domain
from services.gateway.commands.executor import DEFAULT_CACHE_SIZE, MAX_ATTEMPTS, Clock, StreamExecutor, utcnow
from services.gateway.commands.inputs import (
    AttachmentInput,
    LinkInput,
    check_attachments,
    check_avatar_color,
    check_client_msg_id,
    check_description,
    check_id,
    check_links,
    check_members,
    check_seq,
    check_text,
    check_title,
)
from services.gateway.commands.results import (
    DetailsChanged,
    MembershipChanged,
    MessageChanged,
    SentMessage,
    StartedConversation,
    WatermarksSet,
)
from services.gateway.commands.state import ConversationState, ConversationView
from services.gateway.errors import NotFound
from shared.events.base import Event
from shared.events.fields import MESSAGE_TEXT_MAX
from shared.store.port import EventStore

# Roles that may remove other people from any group they are in (besides its creator).
MODERATOR_ROLES = frozenset({"admin", "supervisor"})


class ConversationService:
    def __init__(
        self,
        store: EventStore,
        clock: Clock = utcnow,
        *,
        max_text_length: int = MESSAGE_TEXT_MAX,
        cache_size: int = DEFAULT_CACHE_SIZE,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.executor = StreamExecutor(store, clock, cache_size=cache_size, max_attempts=max_attempts)
        self._max_text_length = max_text_length

    async def start_conversation(
        self,
        principal: Principal,
        kind: str,
        members: Sequence[str],
        title: str = "",
        description: str = "",
        avatar_color: str | None = None,
    ) -> StartedConversation:
        """A new group, or the pair's direct conversation (`created=False` when it existed)."""
        started = domain.start(
            principal.user_id,
            kind,
            check_members(principal.user_id, kind, members),
            check_title(title),
            check_description(description),
            None if avatar_color is None else check_avatar_color(avatar_color),
        )

        def decide(state: ConversationState) -> list[Event]:
            return [] if state.exists else [started]

        def answer(state: ConversationState, position: int) -> StartedConversation:
            if principal.user_id not in state.members:  # defensive: a direct id includes the caller
                raise NotFound("conversation", state.conversation_id)
            return StartedConversation(state.view(), created=position > 0, position=position)

        return await self.executor.execute(
            principal.user_id, started.conversation_id, decide, answer, new=kind == "group"
        )

    async def get_conversation(self, principal: Principal, conversation_id: str) -> ConversationView:
        """The conversation as the write side knows it, up to date with the store; members only."""
        check_id("conversation_id", conversation_id)

        def answer(state: ConversationState) -> ConversationView:
            if not state.exists or principal.user_id not in state.members:
                raise NotFound("conversation", conversation_id)
            return state.view()

        return await self.executor.current(conversation_id, answer)

    async def add_member(self, principal: Principal, conversation_id: str, user_id: str) -> MembershipChanged:
        check_id("conversation_id", conversation_id)
        check_id("user_id", user_id)
        return await self.executor.execute(
            principal.user_id,
            conversation_id,
            lambda state: domain.add_member(state, principal.user_id, user_id),
            lambda _, position: MembershipChanged(conversation_id, user_id, position > 0, position),
        )

    async def remove_member(self, principal: Principal, conversation_id: str, user_id: str) -> MembershipChanged:
        """Leave (`user_id` is the caller) or remove someone (the group's creator, admins, supervisors)."""
        check_id("conversation_id", conversation_id)
        check_id("user_id", user_id)
        moderator = bool(principal.roles & MODERATOR_ROLES)
        return await self.executor.execute(
            principal.user_id,
            conversation_id,
            lambda state: domain.remove_member(state, principal.user_id, user_id, moderator=moderator),
            lambda _, position: MembershipChanged(conversation_id, user_id, position > 0, position),
        )

    async def change_details(
        self,
        principal: Principal,
        conversation_id: str,
        title: str | None = None,
        description: str | None = None,
        avatar_color: str | None = None,
    ) -> DetailsChanged:
        """Change what is given (None: unchanged) of a group's title, description and avatar colour."""
        check_id("conversation_id", conversation_id)
        title = None if title is None else check_title(title)
        description = None if description is None else check_description(description)
        avatar_color = None if avatar_color is None else check_avatar_color(avatar_color)
        return await self.executor.execute(
            principal.user_id,
            conversation_id,
            lambda state: domain.change_details(state, principal.user_id, title, description, avatar_color),
            lambda state, position: DetailsChanged(state.view(), position > 0, position),
        )

    async def send_message(
        self,
        principal: Principal,
        conversation_id: str,
        client_msg_id: str,
        text: str = "",
        attachments: Sequence[AttachmentInput] = (),
        links: Sequence[LinkInput] = (),
        reply_to: str | None = None,
    ) -> SentMessage:
        """Send, or answer the original when this sender sent `client_msg_id` here before."""
        check_id("conversation_id", conversation_id)
        sender, client_id = principal.user_id, check_client_msg_id(client_msg_id)
        text = check_text("text", text, self._max_text_length)
        parts = check_attachments(attachments), check_links(links)
        reply_to = None if reply_to is None else check_id("reply_to", reply_to)

        def answer(state: ConversationState, position: int) -> SentMessage:
            sent = state.sent[(sender, client_id)]
            return SentMessage(sent.message_id, sent.seq, sent.sent_at, position or sent.position, position == 0)

        return await self.executor.execute(
            sender,
            conversation_id,
            lambda state: domain.send_message(state, sender, client_id, text, *parts, reply_to),
            answer,
        )

    async def edit_message(
        self, principal: Principal, conversation_id: str, message_id: str, text: str
    ) -> MessageChanged:
        check_id("conversation_id", conversation_id)
        check_id("message_id", message_id)
        text = check_text("text", text, self._max_text_length)
        return await self.executor.execute(
            principal.user_id,
            conversation_id,
            lambda state: domain.edit_message(state, principal.user_id, message_id, text),
            lambda state, position: _message_changed(state, message_id, position),
        )

    async def retract_message(self, principal: Principal, conversation_id: str, message_id: str) -> MessageChanged:
        check_id("conversation_id", conversation_id)
        check_id("message_id", message_id)
        return await self.executor.execute(
            principal.user_id,
            conversation_id,
            lambda state: domain.retract_message(state, principal.user_id, message_id),
            lambda state, position: _message_changed(state, message_id, position),
        )

    async def mark_delivered(self, principal: Principal, conversation_id: str, up_to_seq: int) -> WatermarksSet:
        return await self._mark(principal, conversation_id, "delivered", up_to_seq)

    async def mark_read(self, principal: Principal, conversation_id: str, up_to_seq: int) -> WatermarksSet:
        """Read up to `up_to_seq` (which implies delivered); not above the current one: nothing."""
        return await self._mark(principal, conversation_id, "read", up_to_seq)

    async def _mark(
        self, principal: Principal, conversation_id: str, receipt: domain.Receipt, up_to_seq: int
    ) -> WatermarksSet:
        check_id("conversation_id", conversation_id)
        up_to = check_seq("up_to_seq", up_to_seq)
        user = principal.user_id

        def answer(state: ConversationState, position: int) -> WatermarksSet:
            marks = state.watermarks_of(user)
            return WatermarksSet(conversation_id, user, marks.delivered, marks.read, position > 0, position)

        return await self.executor.execute(
            user, conversation_id, lambda state: domain.mark(state, user, receipt, up_to), answer
        )


def _message_changed(state: ConversationState, message_id: str, position: int) -> MessageChanged:
    return MessageChanged(state.conversation_id, message_id, state.messages[message_id].seq, position > 0, position)
