"""`scoresde restore` on a tiny trained digits run: every method and operator runs and writes its files; bad input
is one line and exit status 2."""
import json

import numpy as np
import pytest

from scoresde.cli import main
from test_cli import assert_one_line_error, cli
from test_training import TINY

pytestmark = pytest.mark.slow  # trains a run


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("restore") / "run"
    main(["train", "--config", "configs/vp/digits.py", "--workdir", str(work), "--no-progress", *TINY])
    return work


@pytest.mark.parametrize("method, operator", [("ddrm", "inpaint"), ("dps", "downsample"), ("pigdm", "blur"),
                                              ("ddnm", "inpaint"), ("smc", "downsample"), ("repaint", "inpaint"),
                                              ("ilvr", "downsample"), ("replacement", "blur")])
def test_restore_writes_images_metrics_and_a_picture(workdir, tmp_path, capsys, method, operator):
    out = cli(capsys, "restore", "--workdir", workdir, "--method", method, "--operator", operator, "--input",
              "heldout", "--n", "6", "--steps", "8", "--sigma-y", "0.05", "--blur-size", "5", "--factor", "2",
              "--out", tmp_path, *(["--option", "particles=3"] if method == "smc" else []))
    assert out.returncode == 0, out.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"psnr", "ssim", "consistency", "nfe", "seconds"} <= set(metrics) and metrics["images"] == 6
    with np.load(tmp_path / "restored.npz") as f:
        assert f["restored"].shape == f["truth"].shape == (6, 1, 8, 8) and np.isfinite(f["restored"]).all()
    assert (tmp_path / "restore.png").exists() and "wrote" in out.stdout


def test_restore_takes_uint8_images_or_observations_from_an_npz(workdir, tmp_path, capsys):
    images = (np.arange(4 * 64).reshape(4, 1, 8, 8) % 256).astype(np.uint8)
    np.savez(tmp_path / "in.npz", images=images)
    assert cli(capsys, "restore", "--workdir", workdir, "--input", tmp_path / "in.npz", "--steps", "5",
               "--out", tmp_path / "a").returncode == 0
    np.savez(tmp_path / "y.npz", y=np.zeros((3, 1, 8, 8), dtype=np.float32))
    out = cli(capsys, "restore", "--workdir", workdir, "--input", tmp_path / "y.npz", "--steps", "5",
              "--out", tmp_path / "b")
    assert out.returncode == 0 and "psnr" not in json.loads((tmp_path / "b" / "metrics.json").read_text())


def test_restore_rejects_bad_input_in_one_line(workdir, tmp_path, capsys):
    np.savez(tmp_path / "bad.npz", pictures=np.zeros((2, 1, 8, 8)))
    np.savez(tmp_path / "shape.npz", images=np.zeros((2, 1, 9, 9), dtype=np.float32))
    np.savez(tmp_path / "y.npz", y=np.zeros((2, 1, 4, 4), dtype=np.float32))
    base = ["restore", "--workdir", workdir, "--steps", "3"]
    for args, fragments in [(["--input", tmp_path / "bad.npz"], ["must hold clean images", "pictures"]),
                            (["--input", tmp_path / "shape.npz"], ["the run's shape (1, 8, 8)"]),
                            (["--input", tmp_path / "y.npz"], ["observations 'y' must have shape [N, 1, 8, 8]"]),
                            (["--input", tmp_path / "none.npz"], ["no such file"]),
                            (["--input", "heldout", "--sigma-y", "-1"], ["--sigma-y must be >= 0"]),
                            (["--input", "heldout", "--operator", "colorize"], ["'colorize' does not fit", "RGB"]),
                            (["--input", "heldout", "--operator", "blur"], ["at least as large as the kernel"]),
                            (["--input", "heldout", "--method", "ddrm", "--option", "zeta=1"],
                             ["unknown option(s) ['zeta'] for method 'ddrm'"]),
                            (["--input", "heldout", "--method", "pigdm", "--sampler", "unipc"],
                             ["cannot wrap sampler 'unipc'"]),
                            (["--input", "heldout", "--method", "smc", "--sampler", "ddim"],
                             ["needs a stochastic move"])]:
        assert_one_line_error(cli(capsys, *base, *args), *fragments)
