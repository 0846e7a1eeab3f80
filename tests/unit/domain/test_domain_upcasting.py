"""The event-evolution recipe documented on TracedAggregate works as written."""

from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import event
from eventsourcing.persistence import StoredEvent

from domain.traced_aggregate import Trace, TracedAggregate


class Note(TracedAggregate):
    @event("Created")
    def __init__(self, *, text: str, actor: str, correlation_id: str) -> None:
        self.text = text
        self.language = "und"

    def retitle(self, *, text: str, language: str, actor: str, correlation_id: str) -> None:
        self._retitled(text=text, language=language, actor=actor, correlation_id=correlation_id)

    class Retitled(TracedAggregate.Event):
        class_version = 2
        text: str
        language: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["language"] = "en"

    @event(Retitled)
    def _retitled(self, *, text: str, language: str, actor: str, correlation_id: str) -> None:
        self.text = text
        self.language = language


def test_a_stored_v1_event_is_upcast_when_read(trace: Trace) -> None:
    app: Application[UUID] = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    note = Note(text="draft", **trace)
    note.retitle(text="final", language="fr", **trace)
    app.save(note)
    current = app.recorder.select_events(note.id)[1]
    v1_state = app.mapper.transcoder.decode(current.state)
    del v1_state["language"], v1_state["class_version"]
    stored_v1 = StoredEvent(
        originator_id=current.originator_id,
        originator_version=current.originator_version,
        topic=current.topic,
        state=app.mapper.transcoder.encode(v1_state),
    )

    upcast = app.mapper.to_domain_event(stored_v1)

    assert isinstance(upcast, Note.Retitled)
    assert (upcast.text, upcast.language, upcast.actor) == ("final", "en", trace["actor"])
    assert app.repository.get(note.id).language == "fr"
