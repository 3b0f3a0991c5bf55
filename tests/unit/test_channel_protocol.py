"""Every adapter implements the whole `Channel` protocol (core/channel.py): flows and the guard talk only to
it. `continue_to_listen` (the AudioSocket path's move, Guard.listen_out_of_stasis) was on the ARI adapter
only, not in the protocol."""

from __future__ import annotations

import inspect

import pytest

from callflow.core.channel import Channel
from callflow.telephony.agi.channel import AgiChannel
from callflow.telephony.ari.channel import AriChannel
from callflow.telephony.fake import FakeChannel

PROTOCOL = sorted(name for name, value in vars(Channel).items()
                  if not name.startswith("_") and (callable(value) or isinstance(value, property)))


def test_the_protocol_has_the_audiosocket_move():
    assert "continue_to_listen" in PROTOCOL and "continue_in_dialplan" in PROTOCOL and "hang_up" in PROTOCOL


@pytest.mark.parametrize("adapter", [AriChannel, AgiChannel, FakeChannel])
def test_every_adapter_implements_every_method_with_the_protocols_parameters(adapter):
    for name in PROTOCOL:
        assert hasattr(adapter, name), f"{adapter.__name__} has no {name}"
        wanted = getattr(Channel, name)
        if isinstance(wanted, property):
            continue
        got = inspect.signature(getattr(adapter, name))
        assert list(got.parameters)[: len(inspect.signature(wanted).parameters)] == list(inspect.signature(wanted).parameters), \
            f"{adapter.__name__}.{name}{got} differs from the protocol's {inspect.signature(wanted)}"


async def test_a_fastagi_caller_is_never_moved_to_the_audiosocket_context():
    with pytest.raises(RuntimeError):
        await AgiChannel.continue_to_listen(object.__new__(AgiChannel), "callflow-listen")
