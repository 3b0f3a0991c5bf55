"""Caregiver choice (3 = aidant): key in, read back, confirm, callback scheduled."""

from callflow.core.channel import Caller, DigitInput, PlayResult, TapInput
from callflow.core.handoff import HandoffResult
from callflow.flows.caregiver import CaregiverTimers, caregiver_callback


class ScriptedChannel:
    """Only what the flow may use: play, next_input, flush_input. Each next_input takes the next scripted answer."""

    id = "chan-1"
    caller = Caller("+33612345678")

    def __init__(self, *inputs):
        self.inputs = list(inputs)
        self.played = []
        self.t = 0.0

    async def play(self, prompt, *, language=None, barge_in=True):
        self.played.append(prompt)
        return PlayResult(completed=True)

    async def next_input(self, timeout, *, accept_taps=True):
        if not self.inputs:
            return None
        item = self.inputs.pop(0)
        if item is None:
            return None
        self.t += 0.3
        if isinstance(item, int):
            return TapInput(item, self.t)
        return DigitInput(item, self.t)

    def flush_input(self):
        pass


def keyed(number):
    return list(number)


class FakeHandoffs:
    def __init__(self, result=HandoffResult(True, message_id="cb-1")):
        self.result = result
        self.callbacks = []

    async def schedule_callback(self, call_id, number, *, delay_seconds, reason, target="agents"):
        self.callbacks.append((call_id, number, reason, target, delay_seconds))
        return self.result


def readback(played):
    start = played.index("caregiver_number_is") + 1
    end = played.index("caregiver_confirm", start)
    return "".join(p.removeprefix("digit_") for p in played[start:end])


async def test_keyed_number_is_read_back_then_scheduled():
    channel = ScriptedChannel(*keyed("0698765432#"), "1")
    handoffs = FakeHandoffs()
    outcome = await caregiver_callback(channel, "call-1", handoffs)
    assert outcome.scheduled and outcome.number == "+33698765432"
    assert readback(channel.played) == "0698765432"
    assert handoffs.callbacks == [("call-1", "+33698765432", "caregiver", "caregiver", CaregiverTimers().callback_delay)]
    assert channel.played[-1] == "caregiver_scheduled"


async def test_two_means_key_it_again_and_a_pause_ends_the_number():
    channel = ScriptedChannel(*keyed("0698765431#"), "2", *keyed("0698765432"), None, 1)  # 1 tap = oui
    handoffs = FakeHandoffs()
    outcome = await caregiver_callback(channel, "call-1", handoffs)
    assert outcome.number == "+33698765432"
    assert channel.played.count("caregiver_enter_number") == 2
    assert [c[1] for c in handoffs.callbacks] == ["+33698765432"]


async def test_a_key_pressed_twice_counts_twice():
    # (a press the network reported twice is one press before the flow sees it: tests/unit/test_input_filter.py)
    channel = ScriptedChannel(*keyed("0698765433#"), "1")
    outcome = await caregiver_callback(channel, "call-1", FakeHandoffs())
    assert outcome.number == "+33698765433"
    assert readback(channel.played) == "0698765433"


async def test_star_starts_over():
    channel = ScriptedChannel("0", "6", "9", "*", *keyed("0145678901#"), "1")
    outcome = await caregiver_callback(channel, "call-1", FakeHandoffs())
    assert outcome.number == "+33145678901"  # a caregiver's landline is fine for a call


async def test_contact_on_file_can_be_picked_without_keying():
    channel = ScriptedChannel("1")
    handoffs = FakeHandoffs()
    outcome = await caregiver_callback(channel, "call-1", handoffs, contact_on_file="06 11 22 33 44")
    assert outcome.number == "+33611223344"
    assert "caregiver_enter_number" not in channel.played


async def test_invalid_or_overlong_numbers_never_schedule_anything():
    channel = ScriptedChannel(*keyed("123#"), *keyed("9" * 30), None, *keyed("0000#"))
    handoffs = FakeHandoffs()
    outcome = await caregiver_callback(channel, "call-1", handoffs)
    assert (outcome.scheduled, outcome.reason) == (False, "no_number")
    assert handoffs.callbacks == []
    assert channel.played.count("caregiver_number_invalid") == 3


async def test_silence_gives_up_after_the_allowed_entries():
    channel = ScriptedChannel()
    outcome = await caregiver_callback(channel, "call-1", FakeHandoffs())
    assert (outcome.scheduled, outcome.reason) == (False, "no_number")
    assert channel.played.count("caregiver_enter_number") == 3


async def test_refused_callback_is_said_and_reported():
    channel = ScriptedChannel(*keyed("0698765432#"), "1")
    outcome = await caregiver_callback(channel, "call-1", FakeHandoffs(HandoffResult(False, "internal_error")))
    assert (outcome.scheduled, outcome.reason) == (False, "internal_error")
    assert channel.played[-1] == "caregiver_failed"


async def test_prompts_exist_in_the_prompt_source():
    from callflow.prompts import load_prompts

    prompts = load_prompts()
    channel = ScriptedChannel(*keyed("0123456789#"), "2", *keyed("0698765432#"), "1")
    await caregiver_callback(channel, "call-1", FakeHandoffs(HandoffResult(False, "x")), contact_on_file="0611223344")
    for prompt in set(channel.played) | {f"digit_{d}" for d in "0123456789"}:
        assert prompts[prompt]["fr"] and prompts[prompt]["en"], prompt
