"""``mmml-bench`` as users run it: real subprocesses, real tiny encoders, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_dists import FIRST_PARTY
from harness_data import make_learnable_mosi

from mmml_core.data import demo_root

pytestmark = pytest.mark.plugins(*FIRST_PARTY)  # the README names every first-party plugin

BENCH = str(Path(sys.executable).with_name("mmml-bench"))
TINY = [
    "text.checkpoint=random:tiny",
    "audio.checkpoint=random:tiny",
    "fusion.layers=1",
    "fusion.heads=2",
    "head.hidden=32",
    "head.hidden2=16",
    "train.lr=1e-3",
    "train.batch_size=8",
]


def bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BENCH, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def train_args(data: Path, out: Path, epochs: int = 3) -> list[str]:
    return [
        "--dataset",
        str(data),
        "--dataset-kind",
        "mosi",
        "--seeds",
        "1",
        "--out",
        str(out),
        "--no-progress",
        *TINY,
        f"train.max_epochs={epochs}",
    ]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_learnable_mosi(tmp_path_factory.mktemp("mosi"))


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("run") / "run"
    proc = bench(*train_args(dataset, out))
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_train_writes_every_output(trained):
    out, proc = trained
    assert "| checkpoint | head | Has0_Acc2" in proc.stdout
    assert "lowest valid loss | M (fused)" in proc.stdout and "highest valid Acc2" in proc.stdout
    for name in ("config.json", "summary.md", "summary.csv", "results.json"):
        assert (out / name).is_file(), name
    seed = out / "seed-1"
    assert (seed / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((seed / "results.json").read_text())
    assert results["epochs"] == 3 and len(results["history"]) == 3
    assert set(results["selection"]) == {"best_loss", "best_acc"}
    assert set(results["selection"]["best_loss"]["test"]) == {"M", "T", "A"}
    for sel in ("best_loss", "best_acc"):
        cfg = json.loads((seed / sel / "config.json").read_text())
        assert (seed / sel / "model.safetensors").is_file()
        comps = cfg["components"]
        assert comps["fusion"]["name"] == "cross_attn"
        assert (
            comps["fusion"]["distribution"] == "mmml-fusion-transformer"
            and comps["fusion"]["version"]
        )
        assert comps["encoder.text"]["distribution"] == "mmml-encoders-hf"
    csv_lines = (out / "summary.csv").read_text().splitlines()
    assert csv_lines[0].startswith("checkpoint,head,Has0_Acc2_mean,Has0_Acc2_std")
    assert len(csv_lines) == 1 + 2 * 3  # two selections x three heads


def test_predict_cli_all_heads_and_single_modality(trained, dataset):
    out, _ = trained
    ckpt = out / "seed-1" / "best_loss"
    wav = next((dataset / "wav").rglob("*.wav"))
    both = bench(
        "predict", str(ckpt), "--text", "the film was great", "--audio", str(wav), "--json"
    )
    assert both.returncode == 0, both.stderr
    assert set(json.loads(both.stdout)) == {"M", "T", "A"}
    text = bench("predict", str(ckpt), "--text", "the film was great", "--json")
    assert text.returncode == 0 and set(json.loads(text.stdout)) == {"T"}
    audio = bench("predict", str(ckpt), "--audio", str(wav))
    assert audio.returncode == 0 and audio.stdout.startswith("A (audio subnet): ")
    missing = bench("predict", str(ckpt), "--audio", str(dataset / "nope.wav"))
    assert missing.returncode == 2 and "nope.wav" in missing.stderr


def test_predict_from_python_in_one_call(trained, dataset):
    from mmml_core.predict import predict

    out, _ = trained
    wav = next((dataset / "wav").rglob("*.wav"))
    preds = predict(out / "seed-1" / "best_acc", text="the film was awful", audio=wav)
    assert set(preds) == {"M", "T", "A"} and all(len(v) == 1 for v in preds.values())
    cli = bench(
        "predict",
        str(out / "seed-1" / "best_acc"),
        "--text",
        "the film was awful",
        "--audio",
        str(wav),
        "--json",
    )
    assert json.loads(cli.stdout) == pytest.approx({h: v[0] for h, v in preds.items()}, abs=1e-6)


def test_bad_dataset_path(tmp_path):
    proc = bench(
        "--dataset",
        str(tmp_path / "no-such-dataset"),
        "--dataset-kind",
        "mosi",
        "--out",
        str(tmp_path / "o"),
        *TINY,
    )
    assert proc.returncode == 2
    assert "no-such-dataset" in proc.stderr and "does not exist" in proc.stderr


def test_bad_component_name_lists_available():
    proc = bench("--fusion", "cross_atn", "--dry-run")
    assert proc.returncode == 2
    assert "no fusion named 'cross_atn' (did you mean 'cross_attn'?)" in proc.stderr
    assert "available fusions: concat, cross_attn, tfn" in proc.stderr


def test_bad_override_key_lists_fields():
    proc = bench("--dry-run", "fusion.layerz=2")
    assert proc.returncode == 2
    assert "unknown key 'layerz'" in proc.stderr and "layers" in proc.stderr
    proc = bench("--dry-run", "train.lr=fast")
    assert proc.returncode == 2 and "train.lr" not in proc.stdout and "lr='fast'" in proc.stderr
    proc = bench("--dry-run", "optimizer.lr=1")
    assert proc.returncode == 2 and "unknown key" in proc.stderr and "train fields" in proc.stderr


def test_dry_run_resolves_demo_defaults():
    proc = bench("--encoder", "data2vec", "--fusion", "cross_attn", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    assert cfg["data"]["kind"] == "demo"
    assert cfg["model"]["encoders"]["audio"]["name"] == "data2vec"
    assert cfg["model"]["encoders"]["text"]["config"]["checkpoint"] == "random:tiny"
    assert cfg["model"]["fusion"]["name"] == "cross_attn" and cfg["model"]["heads"] == [
        "M",
        "T",
        "A",
    ]
    assert cfg["loss"]["config"]["weights"] == {"M": 1.0, "T": 1.0, "A": 1.0}


def test_killed_run_resumes_to_the_uninterrupted_result(dataset, trained, tmp_path):
    ref, _ = trained  # the uninterrupted run: the same arguments but --out
    epochs = 3
    run = tmp_path / "killed"
    proc = subprocess.Popen(
        [BENCH, *train_args(dataset, run, epochs)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    state = run / "seed-1" / "state" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if state.is_file() and json.loads(state.read_text())["epoch"] >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "seed-1" / "results.json").exists()
    killed_at = json.loads(state.read_text())["epoch"]
    assert 1 <= killed_at < epochs
    resumed = bench(*train_args(dataset, run, epochs), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((ref / "seed-1" / "results.json").read_text())
    b = json.loads((run / "seed-1" / "results.json").read_text())
    assert b["history"] == a["history"]
    assert b["selection"] == a["selection"]
    # the speed counts the epochs each attempt finished: all three, none twice
    assert b["throughput"]["train_samples"] == a["throughput"]["train_samples"] > 0
    assert b["throughput"]["train_samples_per_s"] > 0


def _readme_commands() -> list[str]:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    commands, in_bash = [], False
    for line in readme.splitlines():
        if line.startswith("```"):
            in_bash = line.strip() == "```bash"
            continue
        if in_bash and line.startswith("mmml-bench"):
            commands.append(line.split("  #")[0].strip())
    return commands


#: The README's documented way to make a training line short (one seed, one epoch, 16 rows
#: of each split); appended to every training line, which otherwise runs exactly as written.
SHORT = ["--seeds", "1", "train.max_epochs=1", "data.max_items=16", "--no-progress"]


def test_readme_commands_work_as_written(dataset, tmp_path):
    """Every `mmml-bench` line of the README, in order, as a user runs it from a fresh folder:
    listings run; training lines train for real on the bundled demo set (made short the
    documented way); predict lines use the checkpoint the README's own training made;
    extract-audio and extract-frames run on a real (empty) dataset folder; clip.mp4 is a demo
    clip's video. The paper-setting line needs the
    pretrained checkpoints, which no hub here provides: it runs on a small MOSI-like folder
    with the documented `random:tiny` replacements."""
    import shlex

    wav = next((dataset / "wav").rglob("*.wav"))
    video = next((demo_root() / "Raw").rglob("*.mp4"))  # the demo set's clips have video
    commands = _readme_commands()
    assert len(commands) >= 10, commands
    assert "mmml-bench --encoder data2vec --fusion cross_attn" in commands
    work = tmp_path / "user"
    work.mkdir()
    for command in commands:
        argv = shlex.split(command)[1:]
        if "runs/<run>/seed-1/best_loss" in argv:
            # the first training line's run: the main job, multi-loss, so it has subnet heads
            made = sorted(work.glob("runs/*/seed-1/best_loss"), key=lambda p: p.stat().st_mtime)
            assert made, "the README's training lines made no checkpoint"
            argv = [str(made[0]) if a == "runs/<run>/seed-1/best_loss" else a for a in argv]
        argv = [str(wav) if a == "clip.wav" else a for a in argv]
        argv = [str(video) if a == "clip.mp4" else a for a in argv]
        if argv and argv[0] in ("extract-audio", "extract-frames"):
            (tmp_path / "MOSI" / "Raw").mkdir(parents=True, exist_ok=True)
            argv = [argv[0], str(tmp_path / "MOSI")]
        elif argv and argv[0] not in ("plugins", "list", "predict") and "--help" not in argv:
            if "~/data/MOSI" in argv:
                argv = [str(dataset) if a == "~/data/MOSI" else a for a in argv]
                argv += ["text.checkpoint=random:tiny", "audio.checkpoint=random:tiny"]
            argv += SHORT
        proc = subprocess.run([BENCH, *argv], capture_output=True, text=True, timeout=600, cwd=work)
        assert proc.returncode == 0, f"{command}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr, f"{command}\n{proc.stderr}"


def test_unavailable_device_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = bench("--device", "cuda", "--dry-run")
    assert proc.returncode == 2 and "CUDA is not available" in proc.stderr


def test_config_file_then_flags_then_overrides(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        'seeds = [2, 3]\n[model]\nfusion = { name = "cross_attn", config = { layers = 3 } }\n'
        "[train]\nlr = 0.0002\nmax_epochs = 7\n"
    )
    proc = bench(
        "--config", str(cfg), "--seeds", "5", "fusion.heads=2", "train.lr=3e-4", "--dry-run"
    )
    assert proc.returncode == 0, proc.stderr
    resolved = json.loads(proc.stdout)
    assert resolved["seeds"] == [5]  # flag over file
    assert resolved["model"]["fusion"]["name"] == "cross_attn"
    fusion = resolved["model"]["fusion"]["config"]
    assert fusion["layers"] == 3 and fusion["heads"] == 2  # file, then key=value
    assert resolved["train"]["lr"] == 3e-4 and resolved["train"]["max_epochs"] == 7
    bad = tmp_path / "bad.toml"
    bad.write_text("[optimiser]\nlr = 1\n")
    proc = bench("--config", str(bad), "--dry-run")
    assert proc.returncode == 2 and "optimiser [set by --config" in proc.stderr
    assert "unknown section" in proc.stderr


def test_encoder_overrides_follow_the_dataset_language(tmp_path):
    from mmml_core.runconfig import Layer, override_layer, resolve

    flags = Layer("flags", {"data": {"dataset": str(tmp_path), "kind": "sims"}})
    over, problems = override_layer(["audio.max_seconds=4"], [flags])
    assert problems == []
    cfg = resolve([flags, over])
    assert cfg.model.encoders["audio"].name == "hubert"  # CH-SIMS: the Chinese default
    assert cfg.model.encoders["audio"].config == {"language": "zh", "max_seconds": 4.0}
    assert cfg.model.encoders["text"].name == "roberta"
    assert cfg.model.encoders["text"].config == {"language": "zh"}
    assert cfg.origins["model.encoders.audio.config.max_seconds"] == "audio.max_seconds=4"
    # checked for real, the Chinese checkpoints are named (no hub here: both unreachable)
    proc = bench("--dataset", str(tmp_path), "--dataset-kind", "sims", "--dry-run")
    assert proc.returncode == 2
    assert "hfl/chinese-roberta-wwm-ext" in proc.stderr
    assert "TencentGameMate/chinese-hubert-base" in proc.stderr
