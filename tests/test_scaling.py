"""Sharded sampling and FID statistics across processes: byte-identical shards for 1 and 2 gloo processes,
restarts that skip finished shards, refusals that name what is wrong, and float64 statistics reduced exactly."""
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from scoresde import fid, metrics, shards
from scoresde.config import load_config
from scoresde.distributed import Distributed
from scoresde.run import load_run
from scoresde.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def cli(*args, torchrun: int = 0, timeout=600):
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}",
                 "-m", "scoresde"] if torchrun else [sys.executable, "-m", "scoresde"])
    return subprocess.run([*launcher, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=ENV)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """An untrained 8×8 U-Net run (step 0): sampling it exercises every path that a trained one does."""
    pytest.importorskip("sklearn")
    workdir = tmp_path_factory.mktemp("digits")
    config = load_config(str(ROOT / "configs/vp/digits.py"))
    config.model.update(ch=8, attn_resolutions=())
    config.training.update(device="cpu", batch_size=8)
    config.data.n_eval = 16
    trainer = Trainer(config, workdir, progress_bar=False)
    trainer.save()
    trainer.close()
    return workdir


def folder_bytes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


SAMPLE = ["--sampler", "ddim", "--steps", "3", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def one_process(image_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "samples"
    result = cli("sample", "--workdir", str(image_run), *SAMPLE, "--seeds", "0-22", "--shard-size", "5",
                 "--batch-size", "3", "--png", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


# --- the seeds -------------------------------------------------------------------------------------------------------

def test_parse_and_format_seeds():
    assert shards.parse_seeds("0-3,7,10-11") == [0, 1, 2, 3, 7, 10, 11]
    assert shards.format_seeds([0, 1, 2, 3, 7, 10, 11]) == "0-3,7,10-11"
    assert shards.shards(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]  # the last shard is short


@pytest.mark.parametrize("text, named", [("", "--seeds"), ("0-", "'0-'"), ("5-2", "'5-2'"), ("a", "'a'"),
                                         ("-1", "'-1'"), ("0-9,5", "seed 5 more than once"),
                                         ("0-9,9-12", "seed 9 more than once")])
def test_malformed_or_overlapping_seeds_are_refused(text, named):
    with pytest.raises(ValueError, match=named):
        shards.parse_seeds(text)


# --- sharded sampling --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_gloo_processes_write_the_files_of_one(image_run, one_process, tmp_path):
    """23 seeds in shards of 5 (the last one short) over 2 processes: shards 0, 2, 4 on rank 0 and 1, 3 on rank 1;
    every file, index, shards and PNGs, equals the one-process folder's, byte for byte."""
    out = tmp_path / "samples"
    result = cli("sample", "--workdir", str(image_run), *SAMPLE, "--seeds", "0-22", "--shard-size", "5",
                 "--batch-size", "3", "--png", "--out", str(out), torchrun=2)
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = folder_bytes(one_process), folder_bytes(out)
    assert sorted(one) == sorted(two) and len([k for k in one if k.endswith(".png")]) == 23
    assert all(one[k] == two[k] for k in one), [k for k in one if one[k] != two[k]]
    assert result.stdout.count("23 samples of seeds 0-22") == 1  # rank 0 alone reports
    with np.load(out / "shard_00004.npz") as f:
        assert f["seeds"].tolist() == [20, 21, 22] and f["images"].shape == (3, 8, 8, 1)


def test_shards_hold_what_run_sample_draws_for_those_seeds(image_run, one_process):
    """Sample i of a shard is Run.sample with seeds=[i], alone in its batch: the seed, not the batch, fixes it."""
    run = load_run(image_run, "cpu")
    x, _ = run.sample(2, "ddim", steps=3, seeds=[6, 21])
    expected = shards.to_uint8(run, x)
    with np.load(one_process / "shard_00001.npz") as a, np.load(one_process / "shard_00004.npz") as b:
        got = np.stack([a["images"][1], b["images"][1]])
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1  # float32 kernels differ with batch size


def test_png_files_decode_to_the_shard_images(one_process):
    pil = pytest.importorskip("PIL.Image")
    with np.load(one_process / "shard_00002.npz") as f:
        images, seeds = f["images"], f["seeds"].tolist()
    for seed, image in zip(seeds, images):
        decoded = np.asarray(pil.open(one_process / "images" / "000000" / f"{seed:06d}.png"))
        assert np.array_equal(decoded, image[..., 0])


def test_png_bytes_rgb_round_trip():
    pil = pytest.importorskip("PIL.Image")
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(pil.open(io.BytesIO(shards.png_bytes(image)))), image)
    with pytest.raises(ValueError, match="uint8 images"):
        shards.png_bytes(image.astype(np.float32))


@pytest.mark.slow
def test_killed_job_restarted_skips_finished_shards(image_run, one_process, tmp_path):
    """SIGKILL once the first shards exist; the same command then writes only the missing shards (the finished
    files keep their inode and mtime) and the folder equals a clean run's."""
    out = tmp_path / "samples"
    args = ["sample", "--workdir", str(image_run), *SAMPLE, "--seeds", "0-22", "--shard-size", "5", "--batch-size",
            "3", "--png", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, *args], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not (out / "shard_00001.npz").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("shard_*.npz")}
    assert 2 <= len(done) < 5, f"the kill should land mid-run; finished: {sorted(done)}"
    result = cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{5 - len(done)} written now, {len(done)} already there" in result.stdout
    for name, stamp in done.items():
        path = out / name
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp, f"{name} was rewritten"
    assert folder_bytes(out) == folder_bytes(one_process)
    again = cli(*args)
    assert "0 written now, 5 already there" in again.stdout


# One process of the CLI, slowed after each shard so that a kill lands between shards.
KILLABLE = """
import sys, time
from scoresde import shards, cli
write = shards._atomic_write_bytes
def slow_write(data, path):
    write(data, path)
    time.sleep(1.0)
shards._atomic_write_bytes = slow_write
cli.main(sys.argv[1:])
"""


def test_other_settings_and_foreign_shards_are_refused(image_run, one_process, tmp_path):
    run = load_run(image_run, "cpu")
    sampler = run.sampler("ddim", 3)
    base = json.loads((one_process / "index.json").read_text())
    settings = {k: base[k] for k in ("sampler", "steps", "options", "classifier", "classifier_scale", "autoguide")}
    with pytest.raises(ValueError, match="other settings.*steps: 3 there, 4 now"):
        shards.sample_to_folder(run, run.sampler("ddim", 4), list(range(23)), one_process, batch_size=3,
                                shard_size=5, png=True, settings={**settings, "steps": 4}, progress_bar=False)
    with pytest.raises(ValueError, match="seeds: '0-22' there, '0-23' now"):
        shards.sample_to_folder(run, sampler, list(range(24)), one_process, batch_size=3, shard_size=5, png=True,
                                settings=settings, progress_bar=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "shard_00000.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="holds shards .*shard_00000.npz.* but no index.json"):
        shards.sample_to_folder(run, sampler, [0, 1], foreign, progress_bar=False)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "index.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a scoresde shard index"):
        shards.sample_to_folder(run, sampler, [0, 1], tmp_path / "bad", progress_bar=False)


def test_cli_refusals_are_one_line(image_run, tmp_path):
    for extra, named in [(["--seeds", "3-1"], "--seeds item '3-1'"), (["--seeds", "0-3", "--n", "4"], "leave out --n"),
                         (["--png"], "--png is for sharded sampling")]:
        result = cli("sample", "--workdir", str(image_run), *SAMPLE, *extra, "--out", str(tmp_path / "x"))
        assert result.returncode == 2 and named in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_incomplete_folder_is_named(one_process, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "index.json").write_bytes((one_process / "index.json").read_bytes())
    (partial / "shard_00000.npz").write_bytes((one_process / "shard_00000.npz").read_bytes())
    with pytest.raises(ValueError, match="has 1 of its 5 shards .shard_00001.npz is missing"):
        shards.read_index(partial)


# --- FID statistics ----------------------------------------------------------------------------------------------

def features_of(seed, n=300, dim=6):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    return 3.0 + torch.randn(n, dim, generator=g, dtype=torch.float64) @ mix


def test_batched_statistics_equal_numpy():
    f = features_of(0)
    stats = fid.FeatureStats()
    for chunk in f.split(37):
        stats.update(chunk)
    mu, sigma, n = stats.reduce()
    assert n == 300
    scale = float(np.abs(np.cov(f.numpy(), rowvar=False)).max())
    np.testing.assert_allclose(mu, f.mean(0).numpy(), rtol=0, atol=300 * 2**-52 * 10)
    np.testing.assert_allclose(sigma, np.cov(f.numpy(), rowvar=False), rtol=0, atol=300 * 2**-52 * scale)


WORKER = """
import sys, numpy as np, torch
sys.path.insert(0, sys.argv[2])
from test_scaling import features_of
from scoresde import fid
from scoresde.distributed import Distributed
dist = Distributed(torch.device("cpu"))
f = features_of(0)
stats = fid.FeatureStats()
for i, chunk in enumerate(f.split(int(sys.argv[3]))):  # rank r takes chunks r, r + 2, ... (unequal shares)
    if i % dist.world == dist.rank:
        stats.update(chunk)
mu, sigma, n = stats.reduce(dist)
if dist.main:
    np.savez(sys.argv[1], mu=mu, sigma=sigma, n=n)
dist.close()
"""


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [37, 300])  # 5 and 4 chunks of 37; all 300 on rank 0 and none on rank 1
def test_sharded_statistics_equal_single_process_to_1e_10(tmp_path, chunk):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "two.npz"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(out), str(ROOT / "tests"), str(chunk)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = fid.FeatureStats()
    stats.update(features_of(0))
    mu, sigma, n = stats.reduce()
    with np.load(out) as two:
        assert int(two["n"]) == n == 300
        assert np.abs(two["mu"] - mu).max() < 1e-10 and np.abs(two["sigma"] - sigma).max() < 1e-10


def test_reference_files_round_trip_and_refusals(tmp_path):
    stats = fid.FeatureStats()
    stats.update(features_of(1))
    mu, sigma, n = stats.reduce()
    path = fid.save_reference(tmp_path / "ref.npz", mu, sigma, n, "test")
    ref = fid.load_reference(path, dim=6)
    assert np.array_equal(ref["mu"], mu) and np.array_equal(ref["sigma"], sigma) and ref["n"] == 300
    value, problems = fid.fid((mu, sigma, n), ref)
    assert abs(value) < 1e-9 and problems == []
    np.savez(tmp_path / "pytorch_fid.npz", mu=mu.astype(np.float32), sigma=sigma)  # another library's: no n
    assert fid.load_reference(tmp_path / "pytorch_fid.npz")["n"] is None
    np.savez(tmp_path / "nomu.npz", sigma=sigma)
    with pytest.raises(ValueError, match="nomu.npz has no mu .it holds .'sigma'"):
        fid.load_reference(tmp_path / "nomu.npz")
    with pytest.raises(ValueError, match="6-dimensional statistics, but the features are 2048-dimensional"):
        fid.load_reference(path, dim=2048)
    np.savez(tmp_path / "shape.npz", mu=mu, sigma=sigma[:3])
    with pytest.raises(ValueError, match="sigma .F, F."):
        fid.load_reference(tmp_path / "shape.npz")
    with pytest.raises(FileNotFoundError, match="fid-ref"):
        fid.load_reference(tmp_path / "missing.npz")


def test_fid_flags_too_few_samples():
    stats = fid.FeatureStats()
    stats.update(features_of(2, n=5))
    mu, sigma, n = stats.reduce()
    _, problems = fid.fid((mu, sigma, n), {"mu": mu, "sigma": np.eye(6)})
    assert any("5 samples in 6 dimensions" in p for p in problems)


def test_summary_of_seed_sets():
    s = fid.summarize([2.0, 3.0, 4.0])
    assert s["mean"] == 3.0 and s["sd"] == 1.0 and s["min"] == 2.0
    assert fid.get_protocol("edm").samples == 50_000 and fid.get_protocol("edm").seed_sets == 3
    with pytest.raises(ValueError, match="--protocol must be one of .'edm', 'fid10k', 'fid50k'"):
        fid.get_protocol("fid5k")


def test_image_batches_shard_an_npz_between_ranks(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
    np.savez(tmp_path / "samples.npz", arr_0=images)  # ADM's and EDM's key

    class Rank:
        def __init__(self, rank):
            self.rank, self.world = rank, 2

    got = [torch.cat(list(fid.image_batches(tmp_path / "samples.npz", 3, Rank(r)))) for r in (0, 1)]
    assert len(got[0]) + len(got[1]) == 10
    seen = sorted(map(bytes, (u.numpy().tobytes() for part in got for u in part)))
    assert seen == sorted(map(bytes, (torch.from_numpy(images).permute(0, 3, 1, 2)[i].numpy().tobytes()
                                      for i in range(10))))
    np.savez(tmp_path / "floats.npz", images=images.astype(np.float32))
    with pytest.raises(ValueError, match="uint8 images"):
        next(fid.image_batches(tmp_path / "floats.npz", 3, Rank(0)))


def test_fid_of_a_shard_folder_with_pixel_features(one_process):
    """statistics() reads a shard folder; with the pixels as features, μ is the mean image."""
    mu, sigma, n = fid.statistics(one_process, lambda u: u.reshape(len(u), -1).double(), batch_size=4,
                                  dist=Distributed(torch.device("cpu")))
    pixels = np.concatenate([np.load(p)["images"].reshape(-1, 64) for p in shards.shard_files(one_process)])
    assert n == 23 and np.allclose(mu, pixels.mean(0), rtol=0, atol=1e-12 * 255)
    assert metrics.frechet_distance(mu, sigma, mu, sigma) < 1e-6 * 255**2


# --- scoresde fid and fid-ref ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def classifier_run(image_run):
    """The image run with a cached (random) feature classifier, so that --features classifier trains nothing."""
    from scoresde.features import Classifier
    torch.manual_seed(0)
    torch.save(Classifier(1, 10).state_dict(), image_run / "feature_classifier.pt")
    return image_run


FEATURES = ["--features", "classifier", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def reference(classifier_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "digits_train.npz"
    result = cli("fid-ref", "--workdir", str(classifier_run), "--out", str(path), *FEATURES)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "128 dimensions" in result.stdout
    return path


@pytest.mark.slow
def test_fid_of_a_run_over_seed_sets_resumes_and_reports(classifier_run, reference, tmp_path):
    args = ["fid", "--workdir", str(classifier_run), "--sampler", "ddim", "--steps", "3", "--seeds", "0-9",
            "--seeds", "10-19", "--ref", str(reference), "--out", str(tmp_path / "fid.json"), *FEATURES]
    first = cli(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((tmp_path / "fid.json").read_text())
    assert [s["n"] for s in report["sets"]] == [10, 10] and report["sd"] > 0
    assert "(sd over 2 sets)" in first.stdout and "10 samples in 128 dimensions" in first.stdout  # flagged
    again = cli(*args)  # the samples are kept: nothing is sampled twice, and the numbers repeat exactly
    assert "0 shards sampled now, 1 already there" in again.stdout
    assert json.loads((tmp_path / "fid.json").read_text())["values"] == report["values"]
    # the folder fid sampled holds what scoresde sample --seeds writes for the same seeds
    folder = classifier_run / "fid" / "ddim_3" / "seeds0-9"
    with np.load(folder / "shard_00000.npz") as f:
        assert f["seeds"].tolist() == list(range(10))


@pytest.mark.slow
def test_fid_of_samples_is_the_same_over_two_processes(classifier_run, reference, one_process, tmp_path):
    args = ["fid", "--workdir", str(classifier_run), "--samples", str(one_process), "--ref", str(reference),
            *FEATURES]
    one = cli(*args, "--out", str(tmp_path / "one.json"))
    two = cli(*args, "--out", str(tmp_path / "two.json"), torchrun=2)
    assert one.returncode == 0 and two.returncode == 0, (one.stderr + two.stderr)[-3000:]
    a, b = (json.loads((tmp_path / f"{k}.json").read_text()) for k in ("one", "two"))
    assert a["sets"][0]["n"] == b["sets"][0]["n"] == 23 and b["processes"] == 2
    # The statistics agree to ~1e-16 (test above); 23 samples in 128 dimensions leave Σ singular, where the square
    # root turns a round-off δ into √δ: √(128 · 2⁻⁵²) ≈ 2e-7 of the scale bounds the difference of the FIDs.
    assert abs(a["mean"] - b["mean"]) <= 2e-7 * a["mean"]
    assert two.stdout.count(": FID ") == 1 and two.stdout.count("report:") == 1  # rank 0 alone prints


def test_fid_refuses_bad_references_in_one_line(classifier_run, one_process, tmp_path):
    np.savez(tmp_path / "nomu.npz", sigma=np.eye(3))
    np.savez(tmp_path / "dim6.npz", mu=np.zeros(6), sigma=np.eye(6))
    for ref, named in [(tmp_path / "nomu.npz", "has no mu"), (tmp_path / "missing.npz", "do not exist"),
                       (tmp_path / "dim6.npz", "6-dimensional statistics, but the features are 128-dimensional")]:
        result = cli("fid", "--workdir", str(classifier_run), "--samples", str(one_process), "--ref", str(ref),
                     *FEATURES)
        assert result.returncode == 2 and named in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    result = cli("fid", "--samples", str(one_process), "--ref", str(tmp_path / "dim6.npz"), "--device", "cpu")
    assert result.returncode == 2 and "needs --inception-path" in result.stderr


def test_scoresde_inception_equals_torch_fidelity(tmp_path):
    """With the same (random) weights, scoresde's Inception-v3 features equal torch-fidelity's at 299 and at 32
    pixels (resized inside). float32 through ~100 layers: a relative tolerance of 1e-5 (~100 ulps)."""
    import importlib.util
    import types
    spec = importlib.util.find_spec("torch_fidelity")
    if spec is None:
        pytest.skip("torch-fidelity is not installed (pip install --no-deps torch-fidelity)")
    # its package __init__ imports torchvision (for CLIP); the Inception module itself needs only torch
    package = types.ModuleType("torch_fidelity")
    package.__path__ = list(spec.submodule_search_locations)
    saved = {k: v for k, v in sys.modules.items() if k == "torch_fidelity" or k.startswith("torch_fidelity.")}
    sys.modules["torch_fidelity"] = package
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    finally:
        for k in [k for k in sys.modules if k == "torch_fidelity" or k.startswith("torch_fidelity.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    from scoresde.features import inception_pixel_features
    from scoresde.inception import FIDInceptionV3
    torch.manual_seed(0)
    net = FIDInceptionV3()
    for m in net.modules():  # non-trivial batch-norm statistics, so that a mismatch there would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5), m.bias.data.uniform_(-0.1, 0.1)
    torch.save(net.state_dict(), tmp_path / "weights.pth")
    theirs = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                         feature_extractor_weights_path=str(tmp_path / "weights.pth")).eval()
    ours = inception_pixel_features(str(tmp_path / "weights.pth"), "cpu")
    for size in (299, 32):
        u = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            a, b = theirs(u)[0], ours(u)
        assert (a - b).abs().max() <= 1e-5 * a.abs().max()


def test_gpu_benchmark_runs_on_a_cpu_and_says_what_it_skips(tmp_path):
    script = str(ROOT / "benchmarks" / "gpu.py")
    bare = subprocess.run([sys.executable, script], cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV)
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: benchmarks/gpu.py measures for real (run it by hand)")
    assert bare.returncode == 0 and "skipped: training images/s" in bare.stdout, bare.stderr[-2000:]
    smoke = subprocess.run([sys.executable, script, "--smoke", "--out", str(tmp_path / "gpu.md")], cwd=ROOT,
                           capture_output=True, text=True, timeout=600, env=ENV)
    assert smoke.returncode == 0, smoke.stderr[-3000:]
    table = (tmp_path / "gpu.md").read_text()
    assert "| train fp32 | 4 |" in table and "| sample ddim | 4 |" in table
    assert "skipped: the CUDA variants of the tests" in smoke.stdout
