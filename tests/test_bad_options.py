"""Ordinary mistakes on the command line of finetune, predict, validate and compare: each is one line naming the
option or file, exit status 2, and nothing written (run in-process through each tool's ``main(argv)``)."""
from __future__ import annotations

import pytest

from helpers import noise_folder
from mlp_zoo.tools import compare, finetune, predict, validate


def one_error_line(capsys, code: int | None, *names: str) -> str:
    """The tool's error: exit status 2, no traceback, and a last line saying 'error:' and naming ``names``."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "error:" in last and all(n in last for n in names), err
    return last


FINETUNE_MISTAKES = [  # (arguments, {tmp} standing for the test's folder; what the error line names)
    (["--data", "{tmp}/missing"], "--data"),
    (["--data", "{tmp}/empty"], "--data"),
    (["--pretrained", "{tmp}/missing.pth"], "--pretrained"),
    (["--pretrained", "{tmp}/text.pth"], "--pretrained"),
    (["--img-size", "48"], "--img-size 48"),  # not a multiple of Mixer-S/32's patch
    (["--img-size", "0"], "--img-size 0"),
    (["--batch-size", "0"], "--batch-size 0"),
    (["--accum-steps", "0"], "--accum-steps 0"),
    (["--steps", "0"], "--steps 0"),
    (["--epochs", "0"], "--epochs 0"),
    (["--workers", "-1"], "--workers -1"),
    (["--lr", "0"], "--lr 0"),
    (["--lr", "nan"], "--lr nan"),
    (["--warmup-steps", "-2"], "--warmup-steps -2"),
    (["--label-smoothing", "1.5"], "--label-smoothing"),
    (["--ema-decay", "1"], "--ema-decay"),
    (["--clip-grad", "0"], "--clip-grad"),
    (["--log-every", "0"], "--log-every 0"),
    (["--out", "{tmp}/a_file"], "--out"),
    (["--data", "{tmp}/few", "--batch-size", "8"], "make no step"),  # 5 training images, a batch of 8
]


@pytest.mark.parametrize("argv, named", FINETUNE_MISTAKES, ids=[" ".join(a).replace("{tmp}/", "")
                                                                 for a, _ in FINETUNE_MISTAKES])
def test_finetune_mistakes_are_one_line_before_anything_is_written(tmp_path, capsys, argv, named):
    (tmp_path / "empty").mkdir()
    (tmp_path / "text.pth").write_text("not a checkpoint")
    (tmp_path / "a_file").write_text("x")
    noise_folder(tmp_path / "few", 3)
    out = tmp_path / "out"
    base = ["--model", "mixer_s32", "--img-size", "32", "--framework", "torch", "--data",
            str(noise_folder(tmp_path / "good", 4)), "--batch-size", "2", "--workers", "0", "--out", str(out)]
    with pytest.raises(SystemExit) as e:
        finetune.main(base + [a.replace("{tmp}", str(tmp_path)) for a in argv])
    one_error_line(capsys, e.value.code, named)
    assert not out.exists()  # no finetune_args.json, no checkpoint, not even the folder


@pytest.mark.parametrize("tool", [predict, validate])
@pytest.mark.parametrize("size, named", [("0", "--img-size 0"), ("-32", "--img-size -32"), ("48", "--img-size 48")])
def test_predict_and_validate_refuse_a_size_the_model_cannot_take(tmp_path, capsys, tool, size, named):
    folder = noise_folder(tmp_path / "images", 1)
    with pytest.raises(SystemExit) as e:
        tool.main([str(folder), "--model", "mixer_s32", "--img-size", size])
    one_error_line(capsys, e.value.code, named)


def test_predict_fails_when_every_input_is_missing_or_bad(tmp_path, capsys):
    (tmp_path / "text.jpg").write_text("not an image")
    output = tmp_path / "predictions.json"
    code = predict.main([str(tmp_path / "text.jpg"), str(tmp_path / "gone.png"), "--model", "mixer_s32",
                         "--img-size", "32", "--workers", "0", "--json", str(output)])
    line = one_error_line(capsys, code, "none of the 2 input image(s)")
    assert "2 bad" in line and not output.exists()


def test_validate_fails_when_no_image_of_the_folder_can_be_read(tmp_path, capsys):
    for cls in ("a", "b"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        (tmp_path / "data" / cls / "text.jpg").write_text("not an image")
    output = tmp_path / "top1.json"
    code = validate.main([str(tmp_path / "data"), "--model", "mixer_s32", "--img-size", "32", "--workers", "0",
                          "--results-file", str(output)])
    one_error_line(capsys, code, "none of its 2 images could be read")
    assert not output.exists()


def test_compare_refuses_a_size_before_building_anything(capsys):
    with pytest.raises(SystemExit) as e:
        compare.main(["--models", "vip_s14", "--img-size", "100", "--frameworks", "torch"])
    one_error_line(capsys, e.value.code, "--img-size 100", "vip_s14")
