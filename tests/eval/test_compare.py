"""edgevid.eval.compare and `edgevid compare`: paired differences of two eval results."""
import json

import numpy as np
import pytest

from edgevid.cli import main
from edgevid.eval.compare import paired_difference


def _result(scores, key="prompt_adherence", captions=None):
    captions = captions or [f"caption {i}" for i in range(len(scores))]
    return {key: float(np.mean(scores)),
            "per_video": [{"index": i, "caption": c, "seed": i, key: s} for i, (s, c) in enumerate(zip(scores, captions))]}


def test_paired_difference_matches_hand_computed_figures():
    a = _result([0.0, 1 / 3, 1.0, 0.5])
    b = _result([1 / 3, 1 / 3, 1.0, 1.0])
    c = paired_difference(a, b, bootstrap=2000)
    d = np.array([1 / 3, 0, 0, 0.5])
    assert c["videos"] == 4 and c["metric"] == "prompt_adherence"
    assert c["difference"] == pytest.approx(d.mean())
    assert c["standard_error"] == pytest.approx(d.std(ddof=1) / 2)
    assert c["ratio"] == pytest.approx(np.mean([1 / 3, 1 / 3, 1, 1]) / np.mean([0, 1 / 3, 1, 0.5]))
    assert c["difference_95"][0] <= c["difference"] <= c["difference_95"][1]
    assert (c["videos_better"], c["videos_worse"]) == (2, 0)
    # A result against itself: no difference, no spread; the limit takes the first videos only.
    same = paired_difference(a, a, limit=2)
    assert (same["difference"], same["standard_error"], same["videos"]) == (0.0, 0.0, 2)
    assert same["difference_95"] == [0.0, 0.0]


def test_paired_difference_refuses_what_is_not_paired():
    a = _result([0.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="caption"):
        paired_difference(a, _result([0.0, 1.0, 0.5], captions=["x", "caption 1", "caption 2"]))
    with pytest.raises(ValueError, match="per_video"):
        paired_difference(a, {"prompt_adherence": 0.5})
    with pytest.raises(ValueError, match="common videos"):
        paired_difference(a, a, limit=5)
    with pytest.raises(ValueError, match="i2v_score"):
        paired_difference(a, a, metric="i2v_score")
    # An image-to-video result compares on its own headline score.
    assert paired_difference(_result([0.1, 0.2], "i2v_score"), _result([0.2, 0.2], "i2v_score"))["metric"] == "i2v_score"


def test_compare_command(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_result([0.0, 0.5, 1.0])))
    b.write_text(json.dumps(_result([0.5, 0.5, 1.0])))
    out = tmp_path / "c.json"
    assert main(["compare", str(a), str(b), "--output", str(out)]) == 0
    assert "b - a: +0.167" in capsys.readouterr().out
    assert json.loads(out.read_text())["videos"] == 3
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["compare", str(a), str(bad)]) == 1
    assert "bad.json" in capsys.readouterr().err
    assert main(["compare", str(a), str(tmp_path / "missing.json")]) == 1
    bad.write_text("[1, 2]")  # JSON, but not a result
    assert main(["compare", str(a), str(bad)]) == 1
    assert "not an eval result" in capsys.readouterr().err
