"""Pipecat's ``LiveKitTransport`` with a cheaper way in for the caller's audio.

Pipecat reads each remote track at 48 kHz in 10 ms frames, then re-chunks, mixes and resamples
them to the pipeline's rate in Python and passes every frame through two more task queues
before the pipeline sees it. For the usual one-caller room this module instead asks livekit-ffi
for the pipeline's rate in 20 ms frames (resampled natively) and pushes each frame straight
into the input transport: half the FFI events, no Python resampling, two queue hops fewer. With
several remote audio tracks (a transfer, a conference) frames go back through Pipecat's mixer.

It also narrows each audio stream's FFI subscription to its own handle: the SDK delivers every
audio event of the process to every open stream (one cross-thread wake-up each), which grows
with the square of the calls sharing a worker process.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from livekit import rtc
from livekit.rtc._ffi_client import FfiClient
from pipecat.frames.frames import InputAudioRawFrame
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.transports.livekit.transport import (
    LiveKitInputTransport,
    LiveKitTransport,
    LiveKitTransportClient,
)

FRAME_MS = 20


def own_audio_stream(track: rtc.Track, sample_rate: int) -> rtc.AudioStream:
    """A mono ``AudioStream`` at ``sample_rate`` in 20 ms frames that is woken only for its own
    frames."""
    stream = rtc.AudioStream.from_track(
        track=track, sample_rate=sample_rate, num_channels=1, frame_size_ms=FRAME_MS
    )
    # The stream's reader task has not run yet (no await since it was created), so it will
    # wait on the narrowed queue.
    handle = stream._ffi_handle.handle
    queue = FfiClient.instance.queue
    queue.unsubscribe(stream._ffi_queue)
    stream._ffi_queue = queue.subscribe(
        stream._loop,
        filter_fn=lambda e: (
            e.WhichOneof("message") == "audio_stream_event"
            and e.audio_stream_event.stream_handle == handle
        ),
    )
    return stream


def _ready(transport: LiveKitInputTransport | None) -> bool:
    """The input transport takes audio once its audio task runs (it starts with the pipeline;
    a track can be subscribed before that). Until then frames take Pipecat's own queue."""
    return transport is not None and getattr(transport, "_audio_task", None) is not None


class _Client(LiveKitTransportClient):
    direct_input: LiveKitInputTransport | None = None
    on_listening: Callable[[], Coroutine[Any, Any, None]] | None = None

    async def setup(self, setup: FrameProcessorSetup) -> None:
        first = self._task_manager is None  # the input and the output transport both call it
        await super().setup(setup)
        if first:
            # Sent once the first subscriber (the caller) can receive our track: earlier than
            # the caller's announcement, which never comes for 3 s if the caller publishes
            # nothing (livekit-server batches announcements of non-publishers).
            self.room.on("local_track_subscribed", self._local_track_subscribed)

    def _local_track_subscribed(self, _track: rtc.LocalTrack) -> None:
        if self.on_listening is not None and self._task_manager is not None:
            self._task_manager.create_task(self.on_listening(), f"{self}::on_listening")

    async def _process_audio_stream(
        self, audio_stream: rtc.AudioStream, participant_id: str
    ) -> None:
        track = self._audio_tracks.get(participant_id)
        rate = self.direct_input.sample_rate if self.direct_input else 0
        if track is None or not rate:
            await super()._process_audio_stream(audio_stream, participant_id)
            return
        await audio_stream.aclose()  # Pipecat's 48 kHz stream, replaced before its first frame
        stream = own_audio_stream(track, rate)
        entry = self._audio_streams.get(participant_id)
        if entry is not None:  # so unsubscribe/teardown close this stream
            self._audio_streams[participant_id] = (stream, entry[1])
        async for event in stream:
            if not isinstance(event, rtc.AudioFrameEvent):
                continue
            if len(self._audio_streams) == 1 and _ready(self.direct_input):
                assert self.direct_input is not None
                frame = event.frame
                await self.direct_input.push_audio_frame(
                    InputAudioRawFrame(audio=frame.data.tobytes(), sample_rate=rate, num_channels=1)
                )
            else:
                await self._audio_queue.put((event, participant_id))


class ParleyLiveKitTransport(LiveKitTransport):
    """``LiveKitTransport`` whose single-caller audio takes the short path (see module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Same object, narrower audio path: the room's event handlers were bound in __init__
        # and stay as they are.
        client = self._client
        client.__class__ = _Client
        assert isinstance(client, _Client)
        self._register_event_handler("on_caller_listening")  # see agents/runner.py
        client.on_listening = lambda: self._call_event_handler("on_caller_listening")

    def joined_at(self, participant_id: str) -> float | None:
        """When the server says ``participant_id`` joined (epoch seconds, ms precision)."""
        participant = self._client.room.remote_participants.get(participant_id)
        joined = participant.joined_at if participant is not None else None
        return joined.timestamp() if joined is not None else None

    def input(self) -> LiveKitInputTransport:
        transport = super().input()
        if self._params.audio_in_user_tracks is False and isinstance(self._client, _Client):
            self._client.direct_input = transport
        return transport
