"""tools/ablation_study.py end to end on a tiny setting, and its refusals of bad settings."""
from __future__ import annotations

import csv
import json

import pytest

from mlp_zoo.tools import ablation_study


def test_study_trains_each_setting_and_reports(tmp_path, capsys):
    out = tmp_path / "study"
    assert ablation_study.main(["--settings", "default", "fusion=sum+axial=serial", "--img-size", "32", "--epochs", "1",
                                "--steps", "2", "--batch-size", "8", "--seeds", "0", "--out", str(out)]) == 0
    data = json.loads((out / "ablation_study.json").read_text())
    default, ablated = data["rows"]
    assert default["options"] == {} and ablated["options"] == {"fusion": "sum", "axial": "serial"}
    # the sum drops the fuse conv: 3C^2 parameters per block (sMLPNet-T: C = 80 .. 640, depths 2, 8, 14, 2)
    assert default["params"] - ablated["params"] == sum(3 * d * d * n for d, n in zip((80, 160, 320, 640),
                                                                                        (2, 8, 14, 2)))
    assert default["macs"] > ablated["macs"] > 0
    for row in (default, ablated):
        (run,) = row["runs"]
        assert run["seed"] == 0 and len(run["accuracies"]) == 1 and 0 <= run["accuracies"][0] <= 100
        assert run["images_per_s"] > 0
    # the ablated run's checkpoint rebuilds the ablation
    import models_pytorch
    model = models_pytorch.create_model("smlpnet_t",
                                        pretrained=out / "fusion-sum_axial-serial_seed0" / "smlpnet_t_torch.pth")
    assert (model.build_options.fusion, model.build_options.axial) == ("sum", "serial")
    with open(out / "ablation_study.csv") as f:
        assert [r["setting"] for r in csv.DictReader(f)] == ["default", "fusion=sum+axial=serial"]
    assert (out / "ablation_study.png").stat().st_size > 0
    assert "| fusion=sum+axial=serial |" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--settings", "fusion=max"], "fusion must be one of"),
    (["--settings", "colour=red"], "not KEY=VALUE"),
    (["--settings", "sparse_stages=01x1"], "one 1 or 0 per stage"),
    (["--settings", "default", "default"], "given twice"),
    (["--model", "mixer_s32"], "not an sMLPNet variant"),
    (["--img-size", "48"], "multiple of 32"),
])
def test_bad_settings_exit_2_with_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        ablation_study.main([*argv, "--out", str(tmp_path / "never")])
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
