"""How LLM text is cut into pieces for TTS: the first piece of each reply early, then sentences.

Speech can only start once TTS has a piece of text. Waiting for a full first sentence costs the
time the LLM needs to write it (a 15-word sentence is ~250 ms at 60 tokens/s locally), so the
first piece of a reply is released at the first clause break (``,;:``) after a few words, or
after ``max_words`` words without one. Later pieces are whole sentences, which synthesize with
better prosody and are ready long before the first piece has finished playing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from pipecat.utils.text.base_text_aggregator import Aggregation, TextType
from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator

CLAUSE_BREAKS = ",;:"


class FirstClauseAggregator(SimpleTextAggregator):
    def __init__(self, *, min_words: int = 2, max_words: int = 5) -> None:
        super().__init__()
        self._min_words = min_words
        self._max_words = max_words
        self._first = True

    async def aggregate(self, text: str) -> AsyncIterator[Aggregation]:
        if not self._first:
            async for agg in super().aggregate(text):
                yield agg
            return
        for i, char in enumerate(text):
            self._text += char
            words = len(self._text.split())
            clause = char in CLAUSE_BREAKS and words >= self._min_words
            # A space after max_words words: the word before it is complete.
            too_long = char == " " and words > self._max_words
            if clause or too_long:
                piece = self._text.strip()
                self._text = ""
                self._first = False
                yield Aggregation(text=piece, type=TextType.SENTENCE)
                async for agg in super().aggregate(text[i + 1 :]):
                    yield agg
                return
            # A whole short sentence came first: the sentence rules handle it.
            result = await self._check_sentence_with_lookahead(char)
            if result:
                self._first = False
                yield result

    def _new_reply(self) -> None:
        self._first = True

    async def flush(self) -> Aggregation | None:
        self._new_reply()
        return await super().flush()

    async def handle_interruption(self) -> None:
        self._new_reply()
        await super().handle_interruption()

    async def reset(self) -> None:
        self._new_reply()
        await super().reset()
