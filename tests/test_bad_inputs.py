"""Any input to any command: one line on stderr, a non-zero exit, no partial file (issue 15).

The property tests drive `edgevid generate`'s whole validation (flags, then the model's rules and
the memory estimate, without running the model) and SceneSpec.from_dict with random junk, and
allow no exception but the project's clear ones. Deterministic (derandomize) and fast.
"""
import json
import math
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_tiny_pipeline
from edgevid.cli import CLIError, build_parser, check_generate_args, check_generate_resources, main, \
    resolve_generate_args
from edgevid.data.splits import sample_spec
from edgevid.data.world import SceneSpec

FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
RATES = {"unet": 1e10, "vae": 1e10}  # FLOP/s: fixed, so that no test measures this machine
REACHED = []  # examples that passed every check: the property covers the whole path, not only argparse


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(pipeline, folder) of the tiny model; traces cached in a private folder."""
    cache = tmp_path_factory.mktemp("edgevid_cache")
    old = os.environ.get("EDGEVID_CACHE")
    os.environ["EDGEVID_CACHE"] = str(cache)
    pipe = make_tiny_pipeline()
    folder = tmp_path_factory.mktemp("tiny_bad_inputs")
    pipe.save_pretrained(folder)
    yield pipe, folder
    if old is None:
        os.environ.pop("EDGEVID_CACHE", None)
    else:
        os.environ["EDGEVID_CACHE"] = old


# ----------------------------------------------------------------------------- property tests
VALID = st.sampled_from(["1", "2", "5", "9", "32", "64"])  # half the values: so that examples also pass every check
NUMBERS = VALID | st.sampled_from(["0", "-1", "nan", "inf", "-inf", "1e308", "99999999999999999999999", "3.5", "", "x",
                           "0x10", "1_000"]) | st.integers(-10**30, 10**30).map(str) | st.integers(1, 300).map(str)
FLAGS = ["--num-frames", "--height", "--width", "--fps", "--steps", "--seed", "--threads", "--window", "--overlap",
         "--first-window", "--guidance", "--shift"]
PROMPTS = st.sampled_from(["a red circle moving left", "two blue squares"]) | st.text(max_size=60) | st.text(alphabet=st.sampled_from(["\udcff", "\x1b", "\x00", "a", "🔴", "\n", " ", "é",
                                                                   "-"]), max_size=12)


@FAST
@given(prompt=PROMPTS, output=st.sampled_from(["o.mp4", "o.gif"]) | st.sampled_from(["o.txt", "", "missing/o.mp4",
                                                                                    "o.MP4", "."]),
       flags=st.lists(st.tuples(st.sampled_from(FLAGS), NUMBERS), max_size=4), stream=st.booleans(),
       extra=st.sampled_from([[], [], ["--negative-prompt", "\udcfe"], ["--encoder-preset", "nope"], ["--quiet"]]))
def test_generate_validation_lets_only_clear_errors_escape(tiny, tmp_path_factory, prompt, output, flags, stream,
                                                           extra):
    pipe, _ = tiny
    argv = ["generate", prompt, "-o", output, *[x for pair in flags for x in pair], *extra, *(["--stream"] * stream)]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse's own one-line usage error
        assert e.code == 2
        return
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.getbasetemp())
    try:
        out, preset = check_generate_args(args)
        kw = resolve_generate_args(pipe, args)
        est = check_generate_resources(pipe, kw, args.stream, out.suffix.lower(), preset, rates=RATES)
        assert est.peak_bytes > 0 and math.isfinite(est.seconds)
        REACHED.append(len(argv))
    except (CLIError, ValueError):
        pass
    finally:
        os.chdir(cwd)


def test_generate_validation_property_reached_the_estimate():
    assert len(REACHED) >= 5  # runs after the property test (file order)


JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=10)


def _valid_scene_dict(seed: int) -> dict:
    import numpy as np

    return sample_spec(np.random.default_rng(seed)).to_dict()


@FAST
@given(junk=JSON)
def test_scene_spec_from_junk_is_a_value_error(junk):
    try:
        SceneSpec.from_dict(junk)
    except ValueError:
        pass


@FAST
@given(seed=st.integers(0, 50), where=st.sampled_from(["scene", "object"]), key=st.text(max_size=12) | st.sampled_from(
    ["colour", "shape", "motion", "x", "y", "size", "speed", "angle", "background", "background_colour", "camera",
     "camera_speed", "duration", "seed", "objects"]), value=JSON, drop=st.booleans())
def test_scene_spec_with_one_field_broken_is_a_value_error_or_a_spec(seed, where, key, value, drop):
    data = _valid_scene_dict(seed)
    target = data if where == "scene" else data["objects"][0]
    if drop:
        target.pop(key, None)
    else:
        target[key] = value
    try:
        spec = SceneSpec.from_dict(json.loads(json.dumps(data)))
    except ValueError:
        return
    assert isinstance(spec, SceneSpec)


def test_scene_spec_round_trip_still_holds():
    for seed in range(5):
        d = _valid_scene_dict(seed)
        assert SceneSpec.from_dict(json.loads(json.dumps(d))).to_dict() == d


# ----------------------------------------------------------------------------- the CLI, one line each
SMALL = ["--num-frames", "5", "--height", "32", "--width", "32", "--steps", "1", "--threads", "1"]


def _corrupt_model(folder, tmp_path, how):
    import shutil

    bad = tmp_path / f"model_{how}"
    shutil.copytree(folder, bad)
    if how == "truncated-weights":
        f = bad / "unet" / "model.safetensors"
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif how == "wrong-type":
        cfg = json.loads((bad / "vae" / "config.json").read_text())
        cfg["latent_channels"] = 1.5
        (bad / "vae" / "config.json").write_text(json.dumps(cfg))
    elif how == "text-encoder-wrong-type":  # the packaged MiniLM's folder, its max_length a string
        (bad / "text_encoder" / "model.safetensors").unlink()
        (bad / "text_encoder" / "config.json").write_text(json.dumps({"kind": "minilm-l6-v2", "max_length": "64"}))
    elif how == "index-is-folder":
        (bad / "model_index.json").unlink()
        (bad / "model_index.json").mkdir()
    return bad


BAD_GENERATE = [  # (label, prompt, extra argv, expected words of the one-line error)
    ("not UTF-8", "\udcff\udcfe bad", [], "not valid UTF-8"),
    ("control character", "a red\x1b[31m circle", [], "control character U+001B"),
    ("only emoji", "🔴🟦", [], "at least one letter or digit"),
    ("0 frames", "a red circle", ["--num-frames", "0"], "--num-frames must be in"),
    ("negative steps", "a red circle", ["--steps", "-2"], "--steps must be in"),
    ("NaN guidance", "a red circle", ["--guidance", "nan"], "--guidance must be"),
    ("inf shift", "a red circle", ["--shift", "inf"], "--shift must be"),
    ("huge steps", "a red circle", ["--steps", "10000000000"], "--steps must be in"),
    ("huge seed", "a red circle", ["--seed", str(2**80)], "--seed must be in"),
    ("huge threads", "a red circle", ["--threads", "100000"], "--threads must be in"),
    ("GIF fps", "a red circle", ["--fps", "60", "-o", "{tmp}/o.gif"], "--fps must be in [1, 50]"),
    ("32000x32000 MP4", "a red circle", ["--height", "32000", "--width", "32000"], "libx264's limit"),
    ("frames not 1+4k", "a red circle", ["--num-frames", "6"], "1 + 4*k"),
    ("overlap >= window", "a red circle", ["--window", "2", "--overlap", "2"], "--overlap must be smaller"),
    ("missing model", "a red circle", ["--model", "{tmp}/nope"], "does not exist"),
    ("model is a file", "a red circle", ["--model", "{tmp}/file.mp4"], "does not exist"),
    ("truncated safetensors", "a red circle", ["--model", "{truncated-weights}"], "corrupt weights file"),
    ("config with a wrong type", "a red circle", ["--model", "{wrong-type}"], "latent_channels must be int"),
    ("text encoder config with a wrong type", "a red circle", ["--model", "{text-encoder-wrong-type}"],
     "max_length must be int, got '64'"),
    ("model_index.json a folder", "a red circle", ["--model", "{index-is-folder}"], "Is a directory"),
    ("output is a folder", "a red circle", ["-o", "{tmp}/adir.mp4"], "is a directory"),
    ("output folder missing", "a red circle", ["-o", "{tmp}/nope/o.mp4"], "does not exist"),
]


@pytest.mark.parametrize("label, prompt, extra, expected", BAD_GENERATE, ids=[b[0] for b in BAD_GENERATE])
def test_generate_bad_input_is_one_line(tiny, tmp_path, capsys, label, prompt, extra, expected):
    _, folder = tiny
    (tmp_path / "adir.mp4").mkdir()
    (tmp_path / "file.mp4").write_text("not a video")
    subs = {"tmp": str(tmp_path)}
    for how in ("truncated-weights", "wrong-type", "text-encoder-wrong-type", "index-is-folder"):
        if any("{" + how + "}" in x for x in extra):
            subs[how] = str(_corrupt_model(folder, tmp_path, how))
    extra = [x.format(**subs) for x in extra]
    out = tmp_path / "o.mp4"
    argv = ["generate", prompt, "-o", str(out), "--model", str(folder), *SMALL, *extra]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("edgevid: error: ") and expected in err, err
    assert "Traceback" not in err
    assert not out.exists() and not (tmp_path / "o.gif").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o.")]  # no temporary file left either


def test_long_prompt_is_truncated_with_a_warning(tiny, tmp_path, capsys):
    _, folder = tiny
    out = tmp_path / "o.mp4"
    assert main(["generate", "a red circle moving left " * 40, "-o", str(out), "--model", str(folder), *SMALL,
                 "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning: the prompt is 201 tokens long; the text encoder reads only the first 64" in err
    assert out.is_file()


def test_other_commands_refuse_bad_numbers_in_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    cases = [
        (["train", "vae", "--run-dir", str(tmp_path / "r"), "--steps", "0"], "--steps must be in"),
        (["train", "vae", "--run-dir", str(tmp_path / "r"), "--lr", "nan"], "--lr must be"),
        (["train", "vae", "--run-dir", str(tmp_path / "r"), "--kl-weight", "inf"], "--kl-weight must be"),
        (["train", "vae", "--run-dir", str(tmp_path / "file")], "is a file"),
        (["train", "vae", "--run-dir", str(tmp_path / "r"), "--buckets", "1x100000x100000"], "of memory"),
        (["dataset", "preview", "-o", str(tmp_path / "p.mp4"), "--size", "100000"], "--size must be in"),
        (["dataset", "preview", "-o", str(tmp_path / "p.mp4"), "--num", "64", "--size", "4096", "--frames", "500"],
         "of memory"),
        (["compile", "--threads", "100000"], "--threads must be in"),
    ]
    for argv, expected in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, (argv, err)
    assert not (tmp_path / "p.mp4").exists() and not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- every config load is type-checked
def test_config_from_dict_names_a_wrong_type_a_missing_and_an_unknown_key():
    from edgevid.config import VAEConfig, config_from_dict, config_to_dict
    from edgevid.data.world import ObjectSpec

    good = config_to_dict(VAEConfig())
    assert config_from_dict(VAEConfig, good) == VAEConfig()
    for data, words in [({**good, "latent_channels": 1.5}, "VAEConfig: latent_channels must be int, got 1.5"),
                        ({**good, "encoder_channels": [16, "32"]}, "encoder_channels must be a list of int"),
                        ({**good, "scaling_factor": float("nan")}, "scaling_factor must be a finite number"),
                        ({**good, "lattent": 4}, "unknown config keys ['lattent']"),
                        ([1, 2], "expected a JSON object")]:
        with pytest.raises(ValueError, match=re.escape(words)):
            config_from_dict(VAEConfig, data)
    with pytest.raises(ValueError, match=re.escape("obj: missing config keys ['y', 'size']")):
        config_from_dict(ObjectSpec, {"colour": "red", "shape": "circle", "motion": "still", "x": 0.5}, "obj")


@pytest.mark.parametrize("which", ["vae", "init-from"])
def test_train_t2v_with_a_wrongly_typed_config_is_one_line(tiny, tmp_path, capsys, which):
    """`train t2v --vae DIR` and `--init-from DIR` load through models.weights.load_component, not
    from_pretrained: config_from_dict's type check must stop a float where an int belongs there too."""
    import shutil

    _, folder = tiny
    model = tmp_path / "model"
    shutil.copytree(folder, model)
    component = model / ("vae" if which == "vae" else "unet")
    cfg = json.loads((component / "config.json").read_text())
    field = "latent_channels" if which == "vae" else "in_channels"
    cfg[field] = 1.5
    (component / "config.json").write_text(json.dumps(cfg))
    vae = model / "vae" if which == "vae" else folder / "vae"
    argv = ["train", "t2v", "--vae", str(vae), "--run-dir", str(tmp_path / "run"), "--preset", "tiny",
            "--text-encoder", "tiny", "--steps", "1", "--buckets", "1x32x32", "--threads", "1", "--no-progress",
            *(["--init-from", str(model)] if which == "init-from" else [])]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{field} must be int, got 1.5" in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()
