"""LiveKit's Python SDK (PyPI `livekit`, on LiveKit's Rust core and libwebrtc) against our dev
server, with a loopback participant in the room: join, publish speech from a WAV file, be told
the track has a subscriber (`track_subscribed`, which LiveKit Agents waits for before it speaks),
hear the speech come back (energy over time, not silence) and exchange a data message.

Usage: python check.py --url ws://HOST:PORT --token JWT --wav FILE --peer IDENTITY
       python check.py --url ... --token-v0 JWT --token JWT --measure-joins N
Prints one JSON line with the measurements; exits 1 on a failed check.
"""

import argparse
import asyncio
import json
import logging
import math
import statistics
import sys
import time
import wave
from array import array

from livekit import rtc

LISTEN_S = 6.0
STEP_TIMEOUT_S = 20.0
RUN_LIMIT_S = 90.0
WINDOW_MS = 50


def read_wav(path):
    with wave.open(path, "rb") as wav:
        if wav.getsampwidth() != 2:
            raise SystemExit(f"{path}: 16-bit PCM expected")
        samples = array("h", wav.readframes(wav.getnframes()))
        return samples, wav.getframerate(), wav.getnchannels()


async def feed(source, samples, rate, channels):
    """Plays the WAV in a loop, 10 ms per frame; capture_frame paces it to real time."""
    step = rate // 100 * channels
    while True:
        for start in range(0, len(samples) - step + 1, step):
            chunk = samples[start : start + step]
            frame = rtc.AudioFrame(chunk.tobytes(), rate, channels, step // channels)
            await source.capture_frame(frame)


async def listen(track, seconds):
    """Levels (dBFS) of 50 ms windows of what the track plays, from its first frame on."""
    stream = rtc.AudioStream(track, sample_rate=48000, num_channels=1)
    levels, energy, count, started = [], 0.0, 0, None
    window = 48000 * WINDOW_MS // 1000
    try:
        async for event in stream:
            if started is None:
                started = time.monotonic()
            for value in event.frame.data:
                energy += (value / 32768.0) ** 2
                count += 1
                if count == window:
                    rms = math.sqrt(energy / count)
                    levels.append(20 * math.log10(rms) if rms > 0 else -120.0)
                    energy, count = 0.0, 0
            if time.monotonic() - started >= seconds:
                break
    finally:
        await stream.aclose()
    return levels


def percentile(sorted_values, share):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * share))]


async def check(args):
    samples, rate, channels = read_wav(args.wav)
    loop = asyncio.get_running_loop()
    result = {"sdk": "livekit (PyPI) " + rtc.__version__}
    failures = []

    room = rtc.Room()
    peer_track = loop.create_future()
    data_back = loop.create_future()

    @room.on("track_subscribed")
    def on_track(track, _publication, participant):
        if participant.identity == args.peer and track.kind == rtc.TrackKind.KIND_AUDIO and not peer_track.done():
            peer_track.set_result(track)

    @room.on("data_received")
    def on_data(packet):
        sender = packet.participant.identity if packet.participant else None
        if sender == args.peer and not data_back.done():
            data_back.set_result({"from": sender, "topic": packet.topic, "text": packet.data.decode("utf-8", "replace")})

    started = time.monotonic()
    await room.connect(args.url, args.token)
    result["join_ms"] = round((time.monotonic() - started) * 1000)

    source = rtc.AudioSource(rate, channels)
    track = rtc.LocalAudioTrack.create_audio_track("speech", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    publication = await room.local_participant.publish_track(track, options)
    feeder = asyncio.create_task(feed(source, samples, rate, channels))
    try:
        try:
            await asyncio.wait_for(publication.wait_for_subscription(), STEP_TIMEOUT_S)
            result["track_subscribed"] = True
        except asyncio.TimeoutError:
            result["track_subscribed"] = False
            failures.append("the server never said the published track has a subscriber (track_subscribed)")

        try:
            remote = await asyncio.wait_for(peer_track, STEP_TIMEOUT_S)
            levels = await asyncio.wait_for(listen(remote, LISTEN_S), LISTEN_S + STEP_TIMEOUT_S)
        except asyncio.TimeoutError:
            failures.append(f"no audio came from {args.peer}")
            levels = []

        await room.local_participant.publish_data("ping from python", reliable=True, topic="loopback-test")
        try:
            result["received"] = await asyncio.wait_for(data_back, STEP_TIMEOUT_S)
        except asyncio.TimeoutError:
            result["received"] = None
    finally:
        feeder.cancel()
        await room.disconnect()

    ordered = sorted(levels)
    loud = sum(1 for db in levels if db > -45) / max(1, len(levels))
    spread = percentile(ordered, 0.95) - percentile(ordered, 0.05) if ordered else 0.0
    result.update(windows=len(levels), loudFraction=round(loud, 3), dynamicRangeDb=round(spread, 1))
    if loud < 0.3:
        failures.append(f"the loopback audio is mostly silent ({loud:.0%} of windows above -45 dBFS)")
    if spread < 15:
        failures.append(f"the loopback audio does not vary like speech ({spread:.1f} dB between quiet and loud windows)")
    expected = {"from": args.peer, "topic": "loopback-test", "text": "ping from python"}
    if result["received"] != expected:
        failures.append(f"the data message did not come back: {result['received']}")
    return result, failures


async def measure_joins(args):
    """Join times with the SDK's default (single peer connection first, /rtc/v1) and with the
    classic path only, alternating: what trying /rtc/v1 costs a join against a server without it."""
    times = {"default": [], "v0_only": []}
    for _ in range(args.measure_joins):
        for mode, options in (("default", rtc.RoomOptions()), ("v0_only", rtc.RoomOptions(single_peer_connection=False))):
            room = rtc.Room()
            started = time.monotonic()
            await room.connect(args.url, args.token, options)
            times[mode].append((time.monotonic() - started) * 1000)
            await room.disconnect()
    return {mode: {"median_ms": round(statistics.median(t), 1), "samples": [round(x) for x in t]} for mode, t in times.items()}


async def main():
    parser = argparse.ArgumentParser()
    for name in ("url", "token"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--wav")
    parser.add_argument("--peer")
    parser.add_argument("--measure-joins", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    if args.measure_joins:
        print(json.dumps(await asyncio.wait_for(measure_joins(args), RUN_LIMIT_S * 3)))
        return 0
    if not args.wav or not args.peer:
        parser.error("--wav and --peer are required for the check")
    result, failures = await asyncio.wait_for(check(args), RUN_LIMIT_S)
    print(json.dumps(result), flush=True)
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
