import itertools

import numpy as np
import pytest

from edgevid.data.captions import COLOUR_WORDS, MOTION_WORDS, SHAPE_WORDS, canonical_caption, caption
from edgevid.data.splits import HOLDOUT_COMBINATIONS, VALID_COMBINATIONS, contrasts, is_holdout, sample_spec
from edgevid.data.world import COLOURS, MOTIONS, SHAPES, ObjectSpec, SceneSpec, render_video, scene_fits


def test_holdout_set_is_a_fixed_fraction_and_keeps_every_pair_in_training():
    assert 0.10 <= len(HOLDOUT_COMBINATIONS) / len(VALID_COMBINATIONS) <= 0.15
    assert HOLDOUT_COMBINATIONS <= set(VALID_COMBINATIONS)
    assert all(is_holdout(*t) for t in HOLDOUT_COMBINATIONS)
    train = [t for t in VALID_COMBINATIONS if not is_holdout(*t)]
    for a, b in itertools.combinations(range(3), 2):  # (colour, shape), (colour, motion), (shape, motion)
        pairs_all = {(t[a], t[b]) for t in VALID_COMBINATIONS}
        assert pairs_all == {(t[a], t[b]) for t in train}


def test_train_specs_never_use_a_holdout_triple():
    rng = np.random.default_rng(0)
    specs = [sample_spec(rng, "train") for _ in range(2000)]
    objects = [o for s in specs for o in s.objects]
    assert not any(is_holdout(o.colour, o.shape, o.motion) for o in objects)
    assert {o.colour for o in objects} == set(COLOURS) and {o.motion for o in objects} == set(MOTIONS)
    assert {len(s.objects) for s in specs} == {1, 2, 3}
    assert len({s.camera for s in specs}) == 5 and len({s.background for s in specs}) == 5
    for s in specs[:300]:
        assert scene_fits(s)
        assert len({o.colour for o in s.objects}) == len(s.objects)  # one colour per object
        assert all(contrasts(o.colour, s.background_colour, s.background) for o in s.objects)


def test_holdout_specs_lead_with_a_holdout_triple():
    rng = np.random.default_rng(1)
    specs = [sample_spec(rng, "holdout") for _ in range(200)]
    for s in specs:
        main, *others = s.objects
        assert is_holdout(main.colour, main.shape, main.motion)
        assert not any(is_holdout(o.colour, o.shape, o.motion) for o in others)
    assert len({(o.colour, o.shape, o.motion) for s in specs for o in s.objects[:1]}) > 40


def test_sampling_is_deterministic_and_seed_dependent():
    a = [sample_spec(np.random.default_rng(5)) for _ in range(2)]
    assert a[0] == a[1]
    assert sample_spec(np.random.default_rng(6)) != a[0]
    with pytest.raises(ValueError, match="split"):
        sample_spec(np.random.default_rng(0), "test")


@pytest.mark.parametrize("duration", [0.5, 6.0])
def test_long_and_short_scenes_stay_in_frame(duration):
    rng = np.random.default_rng(2)
    for _ in range(12):
        spec = sample_spec(rng, duration=duration)
        frames = render_video(spec, 17, 64, 80, fps=16 / duration).astype(np.float32)  # the whole duration
        for o in spec.objects:  # every object shows its solid interior in every frame
            near = np.linalg.norm(frames - np.asarray(COLOURS[o.colour], np.float32), axis=-1) < 20
            visible = near.sum(axis=(1, 2))
            assert (visible >= 6).all(), (o, visible)
            assert not near[:, [0, -1], :].any() and not near[:, :, [0, -1]].any()  # never at the border


def test_canonical_caption_is_plain_and_fixed():
    spec = SceneSpec(objects=(ObjectSpec("red", "circle", "left", 0.7, 0.5, 0.1, speed=0.2),
                              ObjectSpec("blue", "star", "rotate", 0.3, 0.3, 0.1, speed=2.0)),
                     background="stripes", background_colour="orange", camera="zoom_in", camera_speed=0.1)
    assert canonical_caption(spec) == ("a red circle moving left and a blue star spinning on an orange striped "
                                       "background as the camera zooms in")
    single = SceneSpec(objects=spec.objects[:1])
    assert canonical_caption(single) == "a red circle moving left on a white background"


def test_captions_vary_with_rng_and_use_synonyms():
    spec = SceneSpec(objects=(ObjectSpec("red", "circle", "left", 0.7, 0.5, 0.1, speed=0.2),),
                     background="checker", background_colour="white", camera="pan_right", camera_speed=0.05)
    texts = [caption(spec, np.random.default_rng(i)) for i in range(60)]
    assert texts == [caption(spec, np.random.default_rng(i)) for i in range(60)]  # deterministic
    assert len(set(texts)) > 30
    for text in texts:
        assert any(w in text for w in COLOUR_WORDS["red"])
        assert any(w in text for w in SHAPE_WORDS["circle"])
        assert any(p in text for pair in MOTION_WORDS["left"] for p in pair)
        assert "camera" in text and " a orange" not in text
    used = {w for text in texts for w in COLOUR_WORDS["red"] + SHAPE_WORDS["circle"] if w in text}
    assert {"crimson", "scarlet", "disc", "ball"} <= used


def test_multi_object_captions_mention_every_object():
    rng = np.random.default_rng(3)
    for _ in range(50):
        spec = sample_spec(rng)
        text = caption(spec, rng)
        for o in spec.objects:
            assert any(w in text for w in COLOUR_WORDS[o.colour]) and any(w in text for w in SHAPE_WORDS[o.shape])
        if len(spec.objects) > 1:
            assert " and " in text


def test_every_shape_and_motion_has_caption_words():
    assert set(SHAPE_WORDS) == set(SHAPES) and set(MOTION_WORDS) == set(MOTIONS)
    assert set(COLOURS) <= set(COLOUR_WORDS)
