"""The command line: every user error is one line on stderr and exit status 2; recovery paths print what happened."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from scoresde.cli import main
from test_training import ROOT, TINY, _wait_for_step, run_cli

pytestmark = pytest.mark.slow  # trains runs and starts the CLI: left out of the quick loop (-m "not slow")


def cli(capsys, *args):
    """Run `scoresde ARGS` in this process (much faster than a subprocess): (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("cli") / "run"
    main(["train", "--config", "configs/vp/toy.py", "--workdir", str(work), "--no-progress", *TINY])
    return work


def assert_one_line_error(out, *fragments):
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("args, fragments", [
    (["--steps", "0"], ["argument --steps", "must be an integer >= 1, got 0"]),
    (["--n", "0"], ["argument --n", "got 0"]),
    (["--n", "-5"], ["argument --n", "got -5"]),
    (["--batch-size", "0"], ["argument --batch-size", "got 0"]),
    (["--n", "ten"], ["argument --n", "got 'ten'"]),
    (["--sampler", "nope"], ["sampler name must be one of", "got 'nope'"]),
    (["--option", "snr"], ["--option must look like NAME=VALUE, got 'snr'"]),
    (["--option", "colour=3"], ["unknown option(s) ['colour']"]),
    (["--sampler", "pc", "--option", "snr=abc"], ["snr must be", "'abc'"]),
    (["--sampler", "ode", "--option", "rtol=0", "--option", "atol=0"], ["rtol"]),
    (["--device", "nope"], ["device must name a torch device such as 'cpu', 'cuda' or 'cuda:0', got 'nope'"]),
])
def test_sample_rejects_bad_flags_in_one_line(workdir, args, fragments, capsys):
    assert_one_line_error(cli(capsys, "sample", "--workdir", workdir, *args), *fragments)


def test_sample_reports_the_file_it_really_wrote(workdir, tmp_path, capsys):
    out = cli(capsys, "sample", "--workdir", str(workdir), "--sampler", "ddim", "--steps", "3", "--n", "10",
                  "--out", str(tmp_path / "result.txt"))
    assert out.returncode == 0, out.stderr
    assert f"wrote {tmp_path / 'result.txt.npz'}" in out.stdout
    assert np.load(tmp_path / "result.txt.npz")["samples"].shape == (10, 2)


@pytest.mark.parametrize("args, fragments", [
    (["--samplers", ""], ["--samplers must name at least one sampler"]),
    (["--samplers", ","], ["--samplers must name at least one sampler"]),
    (["--steps", "0,5"], ["--steps must be comma-separated integers >= 1", "'0'"]),
    (["--steps", "ten"], ["--steps must be comma-separated integers >= 1", "'ten'"]),
    (["--n", "0"], ["argument --n"]),
    (["--batch-size", "-1"], ["argument --batch-size"]),
])
def test_compare_rejects_bad_flags_in_one_line(workdir, args, fragments, capsys):
    assert_one_line_error(cli(capsys, "compare", "--workdir", workdir, "--samplers", "ddim", *args), *fragments)


def test_missing_workdir_and_bad_workdir_are_one_line_errors(tmp_path, capsys):
    assert_one_line_error(cli(capsys, "sample", "--workdir", tmp_path / "nowhere"), "does not exist", "train first")
    assert_one_line_error(cli(capsys, "eval", "--workdir", tmp_path / "nowhere"), "does not exist")
    (tmp_path / "file").write_text("not a folder")
    out = cli(capsys, "train", "--config", "configs/vp/toy.py", "--workdir", str(tmp_path / "file" / "run"), *TINY)
    assert_one_line_error(out, "Not a directory")


def test_a_run_saved_with_an_unknown_config_key_is_a_one_line_error(workdir, tmp_path, capsys):
    """A run from another scoresde version (a config key this one lacks) is refused by name, not by KeyError."""
    import json
    import shutil

    import torch

    work = tmp_path / "run"
    shutil.copytree(workdir, work)
    saved = json.loads((work / "config.json").read_text())
    saved["optim"]["lookahead"] = 5  # a key this version lacks
    (work / "config.json").write_text(json.dumps(saved))
    out = cli(capsys, "train", "--config", "configs/vp/toy.py", "--workdir", work, "--no-progress", *TINY)
    assert_one_line_error(out, "the saved config sets optim.lookahead", "does not know")
    for name in ("latest.pt", "ckpt_30.pt", "ckpt_20.pt"):
        state = torch.load(work / "checkpoints" / name, weights_only=True)
        state["config"] = json.dumps(saved)
        torch.save(state, work / "checkpoints" / name)
    out = cli(capsys, "sample", "--workdir", work, "--steps", "2", "--n", "4")
    assert_one_line_error(out, "the saved config sets optim.lookahead", "does not know")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_workdir_is_a_one_line_error(tmp_path):
    tmp_path.chmod(0o500)
    try:
        out = run_cli("train", "--config", "configs/vp/toy.py", "--workdir", str(tmp_path / "run"), *TINY)
    finally:
        tmp_path.chmod(0o700)
    assert_one_line_error(out, "Permission denied")


def test_damaged_latest_checkpoint_warns_in_one_line_and_samples_the_snapshot(tmp_path, capsys):
    work = tmp_path / "run"
    assert cli(capsys, "train", "--config", "configs/vp/toy.py", "--workdir", work, "--no-progress", *TINY).returncode == 0
    (work / "checkpoints" / "latest.pt").write_bytes(b"\0" * 1000)
    # A subprocess: pytest would capture the warning in-process.
    out = run_cli("sample", "--workdir", str(work), "--sampler", "ddim", "--steps", "3", "--n", "10")
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().startswith("scoresde: warning: cannot load checkpoint")
    assert "using" in out.stderr and "ckpt_30.pt (step 30)" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "samples from step 30" in out.stdout


def test_a_second_writer_is_refused_while_sampling_still_works(tmp_path, capsys):
    work = tmp_path / "run"
    args = ["train", "--config", "configs/vp/toy.py", "--workdir", str(work), "--no-progress", *TINY,
            "--config.training.n_iters=100000", "--config.training.save_every=1",
            "--config.training.sample_every=100000", "--config.training.eval_every=100000"]
    first = subprocess.Popen([sys.executable, "-m", "scoresde", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        _wait_for_step(work / "checkpoints" / "latest.pt", 2, first)
        second = cli(capsys, *args)
        assert_one_line_error(second, f"is being trained by process {first.pid}", "one run has one writer")
        sample = cli(capsys, "sample", "--workdir", work, "--sampler", "ddim", "--steps", "3", "--n", "10")
        assert sample.returncode == 0, sample.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    out = cli(capsys, *args[:-4], "--config.training.n_iters=3")  # the lock died with the process
    assert out.returncode == 0, out.stderr
