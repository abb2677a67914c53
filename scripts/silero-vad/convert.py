"""Converts Silero VAD's 16 kHz model into the weight file the Rust detector embeds, and records
the reference probabilities its unit test compares against.

One-off tool, not run by the build or the tests. Reproduce with:

    python3 -m venv /tmp/silero && . /tmp/silero/bin/activate
    pip install numpy onnx onnxruntime
    pip download --no-deps silero-vad==6.2.3 -d /tmp/silero && unzip -o -q /tmp/silero/silero_vad-6.2.3-py3-none-any.whl -d /tmp/silero
    python3 scripts/silero-vad/convert.py /tmp/silero/silero_vad/data/silero_vad_16k_op15.onnx

The weights come from `silero_vad_16k_op15.onnx`, whose tensors are byte-identical to those of
`silero_vad.jit` (the model `load_silero_vad()` returns) and of every other ONNX export in the
6.2.3 package. The package's `silero_vad_16k.safetensors` holds different weights (its outputs
differ from the ONNX model's by up to 0.74 on tests/fixtures/speech.wav), so it is not used.

The STFT basis is not stored: it is a periodic Hann window times the DFT's cosines and sines
(checked below to 1e-7), which the Rust code computes with an FFT instead.
"""

import sys
import wave

import numpy as np
import onnx
import onnxruntime
from onnx import numpy_helper

ONNX_PATH = sys.argv[1]
REPO = __file__.rsplit("/scripts/", 1)[0]
WEIGHTS_OUT = f"{REPO}/crates/silero-vad/model/silero_vad_16k.bin"
PROBABILITIES_OUT = f"{REPO}/tests/fixtures/silero-vad-speech.txt"

# The order the Rust loader reads them in; every tensor is little-endian f32, row-major.
ORDER = [
    "model.encoder.0.reparam_conv.weight",  # [128][129][3]
    "model.encoder.0.reparam_conv.bias",  # [128]
    "model.encoder.1.reparam_conv.weight",  # [64][128][3]
    "model.encoder.1.reparam_conv.bias",  # [64]
    "model.encoder.2.reparam_conv.weight",  # [64][64][3]
    "model.encoder.2.reparam_conv.bias",  # [64]
    "model.encoder.3.reparam_conv.weight",  # [128][64][3]
    "model.encoder.3.reparam_conv.bias",  # [128]
    "model.decoder.rnn.weight_ih",  # [512][128], gates i, f, g, o
    "model.decoder.rnn.weight_hh",  # [512][128]
    "model.decoder.rnn.bias_ih",  # [512]
    "model.decoder.rnn.bias_hh",  # [512]
    "model.decoder.decoder.2.weight",  # [1][128][1]
    "model.decoder.decoder.2.bias",  # [1]
]

model = onnx.load(ONNX_PATH)
tensors = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}

basis = tensors["model.stft.forward_basis_buffer"][:, 0, :]
n = np.arange(256)
window = 0.5 - 0.5 * np.cos(2 * np.pi * n / 256)
cosines = np.array([window * np.cos(2 * np.pi * k * n / 256) for k in range(129)])
sines = np.array([-window * np.sin(2 * np.pi * k * n / 256) for k in range(129)])
assert np.abs(basis[:129] - cosines).max() < 1e-6 and np.abs(basis[129:] - sines).max() < 1e-6

with open(WEIGHTS_OUT, "wb") as out:
    for name in ORDER:
        out.write(tensors[name].astype("<f4").tobytes())

with wave.open(f"{REPO}/tests/fixtures/speech.wav") as fixture:
    assert fixture.getframerate() == 16000 and fixture.getnchannels() == 1
    audio = np.frombuffer(fixture.readframes(fixture.getnframes()), "<i2").astype(np.float32) / 32768

session = onnxruntime.InferenceSession(ONNX_PATH)
state = np.zeros((2, 1, 128), np.float32)
context = np.zeros(64, np.float32)
lines = []
for start in range(0, len(audio) - 511, 512):
    chunk = np.concatenate([context, audio[start : start + 512]])
    feeds = {"input": chunk[None, :], "state": state, "sr": np.array(16000, dtype=np.int64)}
    probability, state = session.run(None, feeds)
    lines.append(f"{probability[0, 0]:.9f}")
    context = chunk[-64:]
with open(PROBABILITIES_OUT, "w") as out:
    out.write("\n".join(lines) + "\n")
print(f"wrote {WEIGHTS_OUT} and {len(lines)} probabilities to {PROBABILITIES_OUT}")
