"""Checks requests our providers sent against the providers' official Python SDKs.

Reads a JSON document on stdin, {"checks": [{"check": NAME, ...}, ...]}, validates each request
with the SDK's own types (pydantic models, TypedDicts, Literal enums, method signatures and the
query parameters its clients build), and prints one line per problem. Exit status 0 when every
request passes, 1 otherwise. Run by tests/providers_contracts.rs with the venv scripts/setup.sh
makes from tests/contracts/requirements.txt.
"""

import inspect
import json
import re
import sys
import typing


def literals(tp):
    """The values of a Literal, or of the Literals in a Union (Fern's `Union[Literal[...], Any]`)."""
    if typing.get_origin(tp) is typing.Literal:
        return set(typing.get_args(tp))
    values = set()
    for arg in typing.get_args(tp):
        values |= literals(arg)
    return values


def query_names(function):
    """The query parameter names an SDK client puts in a WebSocket URL (the keys of the dict
    literal it encodes), read from its source."""
    source = inspect.getsource(function)
    block = source[source.index("encode_query") : source.index("ws_url = ws_url")] if "ws_url = ws_url" in source else source
    return set(re.findall(r'"([A-Za-z_\-]+)":', block))


def parameters(function):
    skip = {"self", "request_options"}
    return {name: p for name, p in inspect.signature(function).parameters.items() if name not in skip}


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


class Checker:
    def __init__(self):
        self.problems = []
        self.checked = 0

    def problem(self, where, why):
        self.problems.append(f"{where}: {why}")

    def keys(self, where, got, allowed):
        for key in sorted(set(got) - set(allowed)):
            self.problem(where, f"`{key}` is not a field the SDK knows")

    def member(self, where, value, allowed, name):
        """A value the request gives must be one the SDK lists; a field left out is fine."""
        if value is not None and value not in allowed:
            self.problem(where, f"{name} {value!r} is not one of the SDK's {sorted(allowed)[:12]}")

    def validate(self, where, model, value):
        try:
            model.model_validate(value)
        except Exception as error:  # pydantic's ValidationError, whatever its version
            self.problem(where, f"{model.__name__} refuses it: {error}")

    # ---- Sarvam (sarvamai)

    def sarvam_tts_rest(self, body):
        from sarvamai.text_to_speech.client import TextToSpeechClient
        from sarvamai.types.text_to_speech_language import TextToSpeechLanguage
        from sarvamai.types.text_to_speech_model import TextToSpeechModel
        from sarvamai.types.text_to_speech_speaker import TextToSpeechSpeaker

        where = "sarvam POST /text-to-speech"
        params = parameters(TextToSpeechClient.convert)
        self.keys(where, body, params)
        for name, param in params.items():
            if param.default is inspect.Parameter.empty and name not in body:
                self.problem(where, f"`{name}` is required")
        self.member(where, body.get("language_code"), literals(TextToSpeechLanguage), "language_code")
        self.member(where, body.get("model"), literals(TextToSpeechModel), "model")
        self.member(where, body.get("speaker"), literals(TextToSpeechSpeaker), "speaker")
        if "speech_sample_rate" in body and not is_int(body["speech_sample_rate"]):
            self.problem(where, "speech_sample_rate is not an integer (SpeechSampleRate = int)")

    def sarvam_voices(self, models, mock):
        """Our catalog per model, and the mock's speaker list, against the SDK's."""
        from sarvamai.text_to_speech.client import TextToSpeechClient
        from sarvamai.types.text_to_speech_speaker import TextToSpeechSpeaker

        where = "sarvam voices"
        every = literals(TextToSpeechSpeaker)
        doc = inspect.getdoc(TextToSpeechClient.convert)
        section = doc[doc.index("Model Compatibility") :]
        v3_line = section[section.index("**bulbul:v3:**") :].splitlines()[1]
        v3 = {name.replace("(default)", "").strip(" -") for name in v3_line.split(",")}
        v2_block = section[section.index("**bulbul:v2:**") :].splitlines()[1:3]
        v2 = {name.strip() for line in v2_block for name in line.split(":", 1)[1].split(",")}
        expected = {"bulbul:v2": v2, "bulbul:v3": v3, "bulbul:v4-flash": every - v2 - v3}
        for model, voices in models.items():
            if set(voices) != expected[model]:
                missing = sorted(expected[model] - set(voices))[:8]
                extra = sorted(set(voices) - expected[model])[:8]
                self.problem(where, f"{model}: missing {missing}, not the SDK's {extra}")
        if set(mock) != every:
            self.problem(where, "the mock's speakers are not the SDK's TextToSpeechSpeaker")

    def sarvam_tts_ws(self, query, messages):
        from sarvamai.text_to_speech_streaming.raw_client import RawTextToSpeechStreamingClient
        from sarvamai.text_to_speech_streaming.types.text_to_speech_streaming_model import TextToSpeechStreamingModel
        from sarvamai.types.configure_connection import ConfigureConnection
        from sarvamai.types.configure_connection_data import ConfigureConnectionData
        from sarvamai.types.flush_signal import FlushSignal
        from sarvamai.types.send_text import SendText

        where = "sarvam /text-to-speech/ws"
        self.keys(where + " query", query, query_names(RawTextToSpeechStreamingClient.connect))
        self.member(where, query.get("model"), literals(TextToSpeechStreamingModel), "model")
        for message in messages:
            kind = message.get("type")
            if kind == "config":
                self.validate(where, ConfigureConnection, message)
                self.keys(where + " config", message.get("data", {}), ConfigureConnectionData.model_fields)
                rate = message.get("data", {}).get("speech_sample_rate")
                if rate is not None and not is_int(rate):
                    self.problem(where, "speech_sample_rate is not an integer")
            elif kind == "text":
                self.validate(where, SendText, message)
            elif kind == "flush":
                self.validate(where, FlushSignal, message)
            else:
                self.problem(where, f"message type {kind!r} is not one the SDK sends")

    def sarvam_stt_ws(self, query, messages):
        from sarvamai.speech_to_text_streaming.raw_client import RawSpeechToTextStreamingClient
        from sarvamai.speech_to_text_streaming.types import (
            speech_to_text_streaming_input_audio_codec as codec,
            speech_to_text_streaming_language_code as language,
            speech_to_text_streaming_mode as mode,
            speech_to_text_streaming_model as model,
        )
        from sarvamai.types.audio_message import AudioMessage
        from sarvamai.types.stt_flush_signal import SttFlushSignal

        where = "sarvam /speech-to-text/ws"
        self.keys(where + " query", query, query_names(RawSpeechToTextStreamingClient.connect))
        self.member(where, query.get("model"), literals(model.SpeechToTextStreamingModel), "model")
        self.member(where, query.get("mode"), literals(mode.SpeechToTextStreamingMode), "mode")
        self.member(where, query.get("language-code"), literals(language.SpeechToTextStreamingLanguageCode), "language-code")
        self.member(where, query.get("input_audio_codec"), literals(codec.SpeechToTextStreamingInputAudioCodec), "input_audio_codec")
        for message in messages:
            if "audio" in message:
                self.validate(where, AudioMessage, message)
                if not is_int(message["audio"].get("sample_rate")):
                    self.problem(where, "audio.sample_rate is not an integer")
            elif message.get("type") == "flush":
                self.validate(where, SttFlushSignal, message)
            else:
                self.problem(where, f"message {message} is not one the SDK sends")

    def sarvam_stt_rest(self, fields):
        from sarvamai.speech_to_text.client import SpeechToTextClient
        from sarvamai.types.mode import Mode
        from sarvamai.types.speech_to_text_language import SpeechToTextLanguage
        from sarvamai.types.speech_to_text_model import SpeechToTextModel

        where = "sarvam POST /speech-to-text"
        self.keys(where, fields, parameters(SpeechToTextClient.transcribe))
        self.member(where, fields.get("model"), literals(SpeechToTextModel), "model")
        self.member(where, fields.get("mode"), literals(Mode), "mode")
        self.member(where, fields.get("language_code"), literals(SpeechToTextLanguage), "language_code")

    # ---- Deepgram (deepgram-sdk)

    def deepgram_listen(self, query, messages):
        from deepgram.listen.v1.raw_client import RawV1Client
        from deepgram.listen.v1.types.listen_v1close_stream import ListenV1CloseStream
        from deepgram.listen.v1.types.listen_v1finalize import ListenV1Finalize
        from deepgram.listen.v1.types.listen_v1keep_alive import ListenV1KeepAlive
        from deepgram.types.listen_v1encoding import ListenV1Encoding
        from deepgram.types.listen_v1interim_results import ListenV1InterimResults
        from deepgram.types.listen_v1model import ListenV1Model

        where = "deepgram /v1/listen"
        self.keys(where + " query", query, query_names(RawV1Client.connect))
        self.member(where, query.get("model"), literals(ListenV1Model), "model")
        self.member(where, query.get("encoding"), literals(ListenV1Encoding), "encoding")
        self.member(where, query.get("interim_results"), literals(ListenV1InterimResults), "interim_results")
        models = {"KeepAlive": ListenV1KeepAlive, "Finalize": ListenV1Finalize, "CloseStream": ListenV1CloseStream}
        for message in messages:
            model = models.get(message.get("type"))
            if model is None:
                self.problem(where, f"message {message} is not one the SDK sends")
                continue
            self.validate(where, model, message)
            self.keys(where, message, model.model_fields)

    # ---- ElevenLabs (elevenlabs)

    def elevenlabs_stream_input(self, query, messages):
        from elevenlabs.types.close_connection import CloseConnection
        from elevenlabs.types.initialize_connection import InitializeConnection
        from elevenlabs.types.send_text import SendText
        from elevenlabs.types.text_to_speech_output_format_enum import TextToSpeechOutputFormatEnum

        where = "elevenlabs stream-input"
        # The SDK's realtime client sets model_id and output_format; the others are the
        # WebSocket reference's (providers.md §5b).
        documented = {"model_id", "output_format", "language_code", "enable_logging", "enable_ssml_parsing",
                      "inactivity_timeout", "sync_alignment", "auto_mode", "apply_text_normalization"}
        self.keys(where + " query", query, documented)
        self.member(where, query.get("output_format"), literals(TextToSpeechOutputFormatEnum), "output_format")
        aliases = lambda model: {f.alias or name for name, f in model.model_fields.items()}
        for index, message in enumerate(messages):
            if index == 0:
                self.validate(where, InitializeConnection, message)
                self.keys(where + " first message", message, aliases(InitializeConnection))
            elif message.get("text") == "":
                self.validate(where, CloseConnection, message)
                self.keys(where + " last message", message, aliases(CloseConnection))
            else:
                self.validate(where, SendText, message)
                self.keys(where + " text", message, aliases(SendText))
                if not message.get("text", "").endswith(" "):
                    self.problem(where, "a text chunk should end with a space")

    # ---- OpenAI (openai)

    def openai_speech(self, body):
        from openai.types.audio.speech_create_params import SpeechCreateParams, Voice
        from openai.types.audio.speech_model import SpeechModel

        where = "openai POST /audio/speech"
        self.keys(where, body, SpeechCreateParams.__annotations__)
        for name in SpeechCreateParams.__required_keys__:
            if name not in body:
                self.problem(where, f"`{name}` is required")
        self.member(where, body.get("model"), literals(SpeechModel), "model")
        self.member(where, body.get("voice"), literals(Voice), "voice")
        hints = typing.get_type_hints(SpeechCreateParams)
        self.member(where, body.get("response_format"), literals(hints["response_format"]), "response_format")

    def openai_transcription(self, fields):
        from openai.types.audio.transcription_create_params import TranscriptionCreateParamsNonStreaming
        from openai.types.audio_model import AudioModel
        from openai.types.audio_response_format import AudioResponseFormat

        where = "openai POST /audio/transcriptions"
        self.keys(where, set(fields) | {"file"}, TranscriptionCreateParamsNonStreaming.__annotations__)
        self.member(where, fields.get("model"), literals(AudioModel), "model")
        self.member(where, fields.get("response_format"), literals(AudioResponseFormat), "response_format")
        language = fields.get("language")
        if language is not None and not re.fullmatch(r"[a-z]{2}", language):
            self.problem(where, f"language {language!r} is not ISO-639-1")

    def openai_chat(self, body):
        from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming
        from openai.types.shared.reasoning_effort import ReasoningEffort

        where = "chat POST /chat/completions"
        self.keys(where, body, CompletionCreateParamsStreaming.__annotations__)
        if body.get("stream") is not True:
            self.problem(where, "stream must be true")
        if "reasoning_effort" in body:
            self.member(where, body["reasoning_effort"], literals(ReasoningEffort), "reasoning_effort")
        for message in body.get("messages", []):
            self.member(where, message.get("role"), {"system", "developer", "user", "assistant", "tool"}, "role")


def main():
    document = json.load(sys.stdin)
    checker = Checker()
    for check in document["checks"]:
        name = check.pop("check")
        getattr(checker, name)(**check)
        checker.checked += 1
    for problem in checker.problems:
        print(problem)
    if checker.problems:
        sys.exit(1)
    print(f"ok: {checker.checked} requests match the SDKs")


if __name__ == "__main__":
    main()
