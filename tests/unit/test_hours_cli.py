"""`callflow hours close|open|auto|status` and `callflow messages list|done` on a real SQLite file."""

from __future__ import annotations

import asyncio
import json

from callflow.cli import main
from callflow.store.messages import Messages


def test_hours_override_then_status(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CALLFLOW_STATE_DIR", str(tmp_path))
    db = str(tmp_path / "c.db")
    assert main(["hours", "close", "--db", db, "--by", "sup"]) == 0
    assert main(["hours", "status", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "now       : closed" in out and "override  : closed" in out
    assert main(["hours", "auto", "--db", db]) == 0
    assert main(["hours", "status", "--db", db]) == 0
    assert "now       : open" in capsys.readouterr().out  # the default calendar is always open


def test_messages_list_and_done(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CALLFLOW_STATE_DIR", str(tmp_path))
    db = str(tmp_path / "c.db")

    async def add():
        store = await Messages.open(db)
        t = await store.add(call_id="c1", number="+33612345678", language="fr", source="closed", motive="urgent",
                            recording="msg-c1", duration=7.0, confirmed=True, summary="parole")
        await store.close()
        return t.id

    ticket = asyncio.run(add())
    assert main(["messages", "list", "--db", db]) == 0
    line = capsys.readouterr().out
    assert ticket in line and "URGENT" in line and "33612345678" not in line  # masked
    assert main(["messages", "list", "--json", "--db", db]) == 0
    assert json.loads(capsys.readouterr().out)[0]["number"] == "+33612345678"
    assert main(["messages", "done", ticket, "--db", db, "--by", "2001"]) == 0
    assert main(["messages", "done", ticket, "--db", db]) == 1
    capsys.readouterr()
    assert main(["messages", "list", "--json", "--db", db]) == 0
    assert json.loads(capsys.readouterr().out) == []
