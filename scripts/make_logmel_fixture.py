#!/usr/bin/env python3
"""Writes crates/selfsup/tests/fixtures/logmel_torchaudio.json: power mel spectrograms computed
by torchaudio's MelSpectrogram on fixed inputs, which the Rust front end (data/audio/mel.rs)
must reproduce. Run once with torch and torchaudio installed:

    python3 scripts/make_logmel_fixture.py
"""
import json
import math
import pathlib

import torch
import torchaudio

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/selfsup/tests/fixtures/logmel_torchaudio.json"


def chirp_with_noise(n, rate, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64) / rate
    f0, f1 = 100.0, 0.45 * rate
    phase = 2 * math.pi * (f0 * t + (f1 - f0) * t * t / (2 * t[-1]))
    x = 0.5 * torch.sin(phase) + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)
    return x.float()


def case(name, x, rate, cfg):
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=rate,
        n_fft=cfg["n_fft"],
        win_length=cfg["win_length"],
        hop_length=cfg["hop"],
        f_min=cfg["f_min"],
        f_max=cfg["f_max"],
        n_mels=cfg["n_mels"],
        power=2.0,
        center=True,
        pad_mode="reflect",
        norm=None,
        mel_scale="htk",
    )(x.unsqueeze(0))[0]
    return {
        "name": name,
        "sample_rate": rate,
        "config": cfg,
        "input": [round(v, 7) for v in x.tolist()],
        "mel": mel.tolist(),
    }


def main():
    byol_a_8k = {"n_fft": 512, "win_length": 200, "hop": 80, "n_mels": 64, "f_min": 60.0,
                 "f_max": 3800.0, "log_offset": 1e-6}
    full_band = {"n_fft": 400, "win_length": 400, "hop": 160, "n_mels": 40, "f_min": 0.0,
                 "f_max": 8000.0, "log_offset": 1e-6}
    cases = [
        case("chirp 8 kHz, BYOL-A front end", chirp_with_noise(3000, 8000, 1), 8000, byol_a_8k),
        case("noise burst 8 kHz, odd length", chirp_with_noise(1149, 8000, 2) * torch.hann_window(1149), 8000, byol_a_8k),
        case("chirp 16 kHz, full band, 40 mels", chirp_with_noise(4000, 16000, 3), 16000, full_band),
    ]
    meta = {"torch": torch.__version__, "torchaudio": torchaudio.__version__}
    OUT.write_text(json.dumps({"generated_by": "scripts/make_logmel_fixture.py", "versions": meta, "cases": cases}))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) with {meta}")


if __name__ == "__main__":
    main()
