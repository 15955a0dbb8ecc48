"""The first piece of each reply goes to TTS at the first clause break; then whole sentences."""

from __future__ import annotations

from pipelines.speech_text import FirstClauseAggregator


async def _pieces(agg: FirstClauseAggregator, tokens: list[str]) -> list[str]:
    out = []
    for t in tokens:
        out += [a.text async for a in agg.aggregate(t)]
    tail = await agg.flush()
    return [*out, tail.text] if tail and tail.text else out


def _tokens(text: str) -> list[str]:
    # LLM-like streaming: words with their leading spaces.
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]]


async def test_first_clause_then_sentences() -> None:
    text = "On Saturday, we open at nine. We close at one. Anything else?"
    pieces = await _pieces(FirstClauseAggregator(), _tokens(text))
    assert pieces == ["On Saturday,", "we open at nine.", "We close at one.", "Anything else?"]


async def test_short_clause_is_not_cut_and_long_run_is() -> None:
    agg = FirstClauseAggregator(min_words=3, max_words=5)
    # "Yes," is one word: too short to be spoken alone.
    assert (await _pieces(agg, _tokens("Yes, of course. Bye.")))[0] == "Yes, of course."
    long = "I can book you in for a check up next week if you like."
    first = (await _pieces(agg, _tokens(long)))[0]
    assert first == "I can book you in for"


async def test_each_reply_starts_over() -> None:
    agg = FirstClauseAggregator()
    await _pieces(agg, _tokens("Hello there, friend. How are you?"))
    again = await _pieces(agg, _tokens("Well, that is good to hear."))
    assert again == ["Well, that is good to hear."]  # "Well," is one word: not cut
