"""Turn-taking config → Pipecat strategies, checked with Pipecat's frame-level test helper."""

from __future__ import annotations

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    InterruptionFrame,
    UserStartedSpeakingFrame,
    VADUserStartedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_start import MinWordsUserTurnStartStrategy
from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy

from parley.config import TurnTaking
from pipelines.graph import turn_strategies


async def _frames_after_user_speaks(turns: TurnTaking) -> list[type]:
    user = LLMContextAggregatorPair(
        LLMContext(),
        user_params=LLMUserAggregatorParams(user_turn_strategies=turn_strategies(turns)),
    ).user()
    down, up = await run_test(
        user,
        frames_to_send=[BotStartedSpeakingFrame(), SleepFrame(0.05), VADUserStartedSpeakingFrame()],
    )
    return [type(f) for f in [*down, *up]]


async def test_barge_in_interrupts_the_agent() -> None:
    seen = await _frames_after_user_speaks(TurnTaking(interruptions=True))
    assert UserStartedSpeakingFrame in seen and InterruptionFrame in seen


async def test_no_interruptions_policy() -> None:
    seen = await _frames_after_user_speaks(TurnTaking(interruptions=False))
    assert InterruptionFrame not in seen


async def test_min_words_policy_ignores_bare_voice_activity() -> None:
    seen = await _frames_after_user_speaks(TurnTaking(min_words_to_interrupt=3))
    assert InterruptionFrame not in seen and UserStartedSpeakingFrame not in seen


def test_strategy_mapping() -> None:
    s = turn_strategies(TurnTaking(smart_turn=True, min_words_to_interrupt=2))
    assert isinstance(s.start[0], MinWordsUserTurnStartStrategy)  # type: ignore[index]
    stop = s.stop[0]  # type: ignore[index]
    assert isinstance(stop, TurnAnalyzerUserTurnStopStrategy)
    assert type(stop._turn_analyzer).__name__ == "LocalSmartTurnAnalyzerV3"
